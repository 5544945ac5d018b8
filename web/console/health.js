// Devices and data quality, over the map: field devices online / offline / never heard from by
// kind (GET /telemetry/health), the offline ones with a click to their last position, and what
// the ingest refused (GET /telemetry/dead-letters): the last day's counts by reason and the
// latest refused messages, filtered by reason and device. Refreshes itself while open.
//
// Everything a device sent is untrusted: the panel is built from DOM nodes and text nodes only,
// never from HTML strings, so a payload like <img onerror=...> shows as the characters it is.

import { api, session, SessionExpired } from './api.js';
import { t, tOr, fmtTime, onLang, applyStatic } from './i18n.js';
import { el } from './dom.js';
import './health-strings.js';

// Who may read it, as web/routers/telemetry.py's Operator dependency says (admins always may).
export const HEALTH_ROLES = ['dispatcher', 'supervisor', 'inspector', 'planner'];
export const REASONS = [
  'bad_json', 'bad_ts', 'bad_value', 'bad_position', 'out_of_area', 'unknown_field',
  'unknown_device', 'wrong_kind', 'bad_topic', 'bad_shape', 'bad_status', 'too_large', 'unsupported',
];
export const REFRESH_MS = 12_000;
const OFFLINE_LIMIT = 200;
const LETTER_LIMIT = 50;
const PREVIEW_CHARS = 240;

export function reasonName(code) {
  return tOr(`hl_reason.${code}`, code);
}

export function fmtDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return t('hl_s', { n: s });
  if (s < 7200) return t('hl_min', { n: Math.round(s / 60) });
  if (s < 172_800) return t('hl_h', { n: Math.round(s / 3600) });
  return t('hl_d', { n: Math.round(s / 86_400) });
}

function fmtBytes(n) {
  return t('hl_bytes', { n: Number(n).toLocaleString('en-US') });
}

export class HealthPanel {
  constructor({ panel, button, wrap, onFocus, onExpired }) {
    this.panel = panel;
    this.button = button;
    this.wrap = wrap;
    this.onFocus = onFocus;
    this.onExpired = onExpired;
    this.allowed = session.hasRole(...HEALTH_ROLES);
    this.open = false;
    this.health = null;
    this.letters = null;
    this.kind = null; // the offline list for one kind only
    this.reason = '';
    this.device = '';
    this.error = null;
    this.updatedAt = null;
    this.timer = null;
    this.seq = 0;
    this.expanded = new Set(); // refused messages shown whole, by id
    this.loads = 0; // finished refreshes, for tests
    if (!this.allowed) return; // no button, no panel, no requests
    this.build();
    button.hidden = false;
    button.addEventListener('click', () => (this.open ? this.close() : this.show()));
    onLang(() => { if (this.open) this.render(); else this.fillReasonOptions(); });
  }

  // ---------------------------------------------------------------- the frame, built once

  build() {
    const p = this.panel;
    p.replaceChildren();
    this.els = {};
    const close = el('button', { class: 'close', type: 'button', 'data-i18n-title': 'close' }, '×');
    close.addEventListener('click', () => this.close());
    const refresh = el('button', { class: 'btn small', type: 'button', i18n: 'hl_refresh', dataset: { action: 'refresh' } });
    refresh.addEventListener('click', () => this.refresh());
    this.els.status = el('span', { class: 'hl-status' });
    const head = el('div', { class: 'hl-head' },
      el('h3', { class: 'hl-title', i18n: 'hl_title' }), refresh, this.els.status);

    this.els.kinds = el('div', { class: 'hl-kinds' });
    this.els.offlineCount = el('span', { class: 'hl-n' });
    this.els.kindChip = el('button', { class: 'btn small hl-chip', type: 'button', hidden: true });
    this.els.kindChip.addEventListener('click', () => this.setKind(null));
    this.els.offline = el('div', { class: 'hl-offline' });

    this.els.reasonTotal = el('span', { class: 'hl-n' });
    this.els.reasons = el('div', { class: 'hl-reasons' });

    this.els.reasonSelect = el('select', { class: 'hl-reason-select', 'aria-label': 'reason' });
    this.fillReasonOptions();
    this.els.reasonSelect.addEventListener('change', () => this.setFilter(this.els.reasonSelect.value, this.device));
    this.els.deviceInput = el('input', { class: 'hl-device-input', type: 'search', 'data-i18n-placeholder': 'hl_dl_device_ph', autocomplete: 'off', spellcheck: 'false' });
    let typing = null;
    this.els.deviceInput.addEventListener('input', () => {
      clearTimeout(typing);
      typing = setTimeout(() => this.setFilter(this.reason, this.els.deviceInput.value.trim()), 450);
    });
    this.els.deviceInput.addEventListener('change', () => {
      clearTimeout(typing);
      this.setFilter(this.reason, this.els.deviceInput.value.trim());
    });
    const clear = el('button', { class: 'btn small', type: 'button', i18n: 'hl_dl_clear', dataset: { action: 'clear-filters' } });
    clear.addEventListener('click', () => this.setFilter('', ''));
    this.els.letters = el('div', { class: 'hl-letters' });

    this.els.message = el('div', { class: 'hl-msg error', role: 'alert' });
    const body = el('div', { class: 'hl-body' },
      this.els.message,
      el('h4', { class: 'hl-h' }, el('span', { i18n: 'hl_devices' })),
      this.els.kinds,
      el('h4', { class: 'hl-h' }, el('span', { i18n: 'hl_offline_list' }), this.els.offlineCount, this.els.kindChip),
      this.els.offline,
      el('h4', { class: 'hl-h' }, el('span', { i18n: 'hl_dl_counts' }), this.els.reasonTotal),
      this.els.reasons,
      el('h4', { class: 'hl-h' }, el('span', { i18n: 'hl_dl_latest' })),
      el('div', { class: 'hl-filters' }, this.els.reasonSelect, this.els.deviceInput, clear),
      this.els.letters);
    p.append(close, head, body);

    // Clicks on rows: an offline device flies the map there; a reason or a device in the
    // refused list filters by it.
    this.els.kinds.addEventListener('click', (ev) => {
      const row = ev.target.closest('[data-kind]');
      if (row) this.setKind(this.kind === row.dataset.kind ? null : row.dataset.kind);
    });
    this.els.offline.addEventListener('click', (ev) => {
      const row = ev.target.closest('[data-device]');
      if (!row) return;
      const d = ((this.health && this.health.offline) || []).find((x) => x.id === row.dataset.device);
      if (d && d.lon != null && this.onFocus) this.onFocus(d);
    });
    this.els.reasons.addEventListener('click', (ev) => {
      const row = ev.target.closest('[data-reason]');
      if (row) this.setFilter(this.reason === row.dataset.reason ? '' : row.dataset.reason, this.device);
    });
    this.els.letters.addEventListener('click', (ev) => {
      const dev = ev.target.closest('[data-filter-device]');
      if (dev) { this.setFilter(this.reason, dev.dataset.filterDevice); return; }
      // A long payload opens in full on a click (the store caps it), and closes again.
      const item = ev.target.closest('.hl-letter.long');
      if (!item || ev.target.closest('button')) return;
      const id = item.dataset.id;
      if (!this.expanded.delete(id)) this.expanded.add(id);
      this.renderLetters();
    });
    applyStatic(p);
  }

  fillReasonOptions() {
    const sel = this.els && this.els.reasonSelect;
    if (!sel) return;
    const seen = Object.keys((this.letters && this.letters.counts_last_day) || {});
    const codes = [...REASONS, ...seen.filter((c) => !REASONS.includes(c)).sort()];
    if (this.reason && !codes.includes(this.reason)) codes.push(this.reason);
    sel.replaceChildren(
      el('option', { value: '' }, t('hl_dl_all_reasons')),
      ...codes.map((c) => el('option', { value: c }, `${reasonName(c)} · ${c}`)),
    );
    sel.value = this.reason;
  }

  // ---------------------------------------------------------------- open, close, load

  show() {
    this.open = true;
    this.panel.hidden = false;
    this.wrap.classList.add('health-open');
    this.button.classList.add('active');
    this.render();
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  close() {
    this.open = false;
    clearInterval(this.timer);
    this.timer = null;
    this.seq += 1; // answers still on their way are dropped
    this.panel.hidden = true;
    this.wrap.classList.remove('health-open');
    this.button.classList.remove('active');
  }

  setKind(kind) {
    this.kind = kind;
    this.render();
    this.refresh();
  }

  setFilter(reason, device) {
    this.reason = reason || '';
    this.device = device || '';
    if (this.els.deviceInput.value.trim() !== this.device) this.els.deviceInput.value = this.device;
    this.els.reasonSelect.value = this.reason;
    this.refresh();
  }

  async refresh() {
    if (!this.open) return;
    const seq = ++this.seq;
    const hp = new URLSearchParams({ limit: String(OFFLINE_LIMIT) });
    if (this.kind) hp.set('kind', this.kind);
    const lp = new URLSearchParams({ limit: String(LETTER_LIMIT) });
    if (this.reason) lp.set('reason', this.reason);
    if (this.device) lp.set('device_id', this.device);
    this.els.status.textContent = t('hl_loading');
    try {
      const [health, letters] = await Promise.all([
        api(`/telemetry/health?${hp}`),
        api(`/telemetry/dead-letters?${lp}`),
      ]);
      if (seq !== this.seq) return; // a newer request (or a close) overtook this one
      this.health = health;
      this.letters = letters;
      this.error = null;
      this.updatedAt = Date.now();
    } catch (err) {
      if (err instanceof SessionExpired) { this.close(); this.onExpired(err.message); return; }
      if (seq !== this.seq) return;
      this.error = err.message; // the last good figures stay on screen under the message
    }
    this.loads += 1;
    this.render();
  }

  // ---------------------------------------------------------------- drawing

  render() {
    if (!this.els) return;
    applyStatic(this.panel);
    this.fillReasonOptions();
    this.els.message.textContent = this.error ? `${t('hl_error')}${this.error}` : '';
    this.els.status.textContent = this.updatedAt
      ? `${t('hl_updated', { t: fmtTime(this.updatedAt) })} · ${t('hl_auto', { s: REFRESH_MS / 1000 })}`
      : t('hl_loading');
    this.renderKinds();
    this.renderOffline();
    this.renderReasons();
    this.renderLetters();
  }

  renderKinds() {
    const h = this.health;
    if (!h) { this.els.kinds.replaceChildren(); return; }
    const bar = (k) => {
      const total = Math.max(1, k.total);
      return el('div', { class: 'hl-bar' },
        ...['online', 'offline', 'never'].map((s) => (k[s]
          ? el('i', { class: `hl-${s}`, style: `width:${(100 * k[s]) / total}%` })
          : null)));
    };
    const num = (n, cls) => el('td', { class: `hl-num ${n ? cls : 'zero'}` }, String(n));
    const rows = h.kinds.map((k) => el('tr', {
      class: `hl-kind-row${this.kind === k.kind ? ' selected' : ''}`,
      dataset: { kind: k.kind },
      title: t('hl_kind_click'),
    },
    el('th', { scope: 'row' }, tOr(`kind.${k.kind}`, k.kind)),
    num(k.online, 'hl-online'), num(k.offline, 'hl-offline'), num(k.never, 'hl-never'),
    el('td', { class: 'hl-num' }, String(k.total)),
    el('td', { class: 'hl-bar-cell' }, bar(k))));
    const tot = h.totals;
    this.els.kinds.replaceChildren(el('table', { class: 'hl-table' },
      el('thead', {}, el('tr', {},
        el('th', {}, t('hl_kind')), el('th', {}, t('hl_online')), el('th', {}, t('hl_offline')),
        el('th', {}, t('hl_never')), el('th', {}, t('hl_total')), el('th', {}))),
      el('tbody', {}, rows),
      el('tfoot', {}, el('tr', { class: 'hl-totals' },
        el('th', { scope: 'row' }, t('hl_total')),
        num(tot.online, 'hl-online'), num(tot.offline, 'hl-offline'), num(tot.never, 'hl-never'),
        el('td', { class: 'hl-num' }, String(tot.total)),
        el('td', { class: 'hl-bar-cell' }, bar(tot))))));
  }

  renderOffline() {
    const h = this.health;
    this.els.kindChip.hidden = !this.kind;
    this.els.kindChip.textContent = this.kind ? `${tOr(`kind.${this.kind}`, this.kind)} ×` : '';
    this.els.kindChip.title = t('hl_kind_filter_clear');
    if (!h) { this.els.offline.replaceChildren(); this.els.offlineCount.textContent = ''; return; }
    const list = h.offline || [];
    this.els.offlineCount.textContent = list.length < h.offline_total
      ? t('hl_shown', { n: list.length, total: h.offline_total })
      : `(${h.offline_total})`;
    if (!list.length) {
      this.els.offline.replaceChildren(el('div', { class: 'hl-empty' }, t('hl_no_offline')));
      return;
    }
    const now = Date.now();
    this.els.offline.replaceChildren(...list.map((d) => {
      const heard = d.received_at ? Date.parse(d.received_at) : null;
      const where = d.lon != null;
      return el('div', {
        class: `hl-dev${where ? ' has-pos' : ''}`,
        dataset: { device: d.id },
        role: where ? 'button' : null,
        tabindex: where ? '0' : null,
      },
      el('div', { class: 'hl-dev-main' },
        el('span', { class: 'hl-id' }, d.id),
        el('span', { class: 'hl-name' }, d.name_zh || ''),
        el('span', { class: 'hl-kind' }, tOr(`kind.${d.kind}`, d.kind)),
        el('span', { class: `hl-tag${where ? ' locate' : ''}` }, where ? t('hl_locate') : t('hl_no_position'))),
      el('div', { class: 'hl-dev-meta' },
        el('span', {}, `${t('hl_last_seen')} `,
          el('time', { datetime: d.received_at || '' }, fmtTime(heard, true)),
          heard != null ? ` (${t('hl_ago', { d: fmtDuration((now - heard) / 1000) })})` : ''),
        el('span', {}, `${t('hl_interval')} ${t('hl_every', { d: fmtDuration(d.expected_interval_s) })}`),
        el('span', { class: 'hl-why' }, d.reported_online === false ? t('hl_reported_offline') : t('hl_silent'))));
    }));
  }

  renderReasons() {
    const counts = (this.letters && this.letters.counts_last_day) || null;
    if (!counts) { this.els.reasons.replaceChildren(); this.els.reasonTotal.textContent = ''; return; }
    const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const total = entries.reduce((s, [, n]) => s + n, 0);
    this.els.reasonTotal.textContent = entries.length ? t('hl_dl_total', { n: total.toLocaleString('en-US') }) : '';
    if (!entries.length) {
      this.els.reasons.replaceChildren(el('div', { class: 'hl-empty ok' }, t('hl_dl_none')));
      return;
    }
    const top = entries[0][1];
    this.els.reasons.replaceChildren(...entries.map(([code, n]) => el('div', {
      class: `hl-reason${this.reason === code ? ' selected' : ''}`,
      dataset: { reason: code },
      role: 'button',
      tabindex: '0',
    },
    el('span', { class: 'hl-reason-name' }, reasonName(code), el('code', {}, code)),
    el('span', { class: 'hl-reason-bar' }, el('i', { style: `width:${Math.max(2, (100 * n) / top)}%` })),
    el('span', { class: 'hl-reason-n' }, n.toLocaleString('en-US')))));
  }

  renderLetters() {
    const items = (this.letters && this.letters.items) || null;
    if (!items) { this.els.letters.replaceChildren(); return; }
    if (!items.length) {
      this.els.letters.replaceChildren(el('div', { class: 'hl-empty' }, t('hl_dl_empty')));
      return;
    }
    this.els.letters.replaceChildren(...items.map((d) => {
      const payload = d.payload == null ? '' : String(d.payload);
      const long = payload.length > PREVIEW_CHARS;
      const whole = long && this.expanded.has(String(d.id));
      const who = d.device_id
        ? el('button', { class: 'hl-letter-dev', type: 'button', title: t('hl_dl_filter_device'), dataset: { filterDevice: d.device_id } }, d.device_id)
        : el('span', { class: 'hl-letter-dev none' }, t('hl_dl_no_device'));
      const row = el('div', { class: 'hl-letter', dataset: { id: String(d.id), reason: d.reason } },
        el('div', { class: 'hl-letter-main' },
          el('time', { datetime: d.received_at }, fmtTime(Date.parse(d.received_at), true)),
          who,
          el('span', { class: 'hl-pill', title: d.reason }, reasonName(d.reason)),
          el('span', { class: 'hl-size' }, fmtBytes(d.payload_bytes))),
        d.detail ? el('div', { class: 'hl-detail' }, d.detail) : null,
        el('div', { class: 'hl-topic' }, d.topic || ''),
        el('code', { class: 'hl-payload' }, long && !whole ? `${payload.slice(0, PREVIEW_CHARS)}…` : payload));
      if (long) row.classList.add('long');
      if (whole) row.classList.add('expanded');
      return row;
    }));
  }
}

// Mounted by the shell through panels.js's ctx, as any application's panel is. The button shows
// only for the roles that may read it; the panel shares the map's right side with others.
export function mount(ctx) {
  const panel = ctx.el('div', { id: 'health-panel', class: 'floating health-panel', hidden: true });
  ctx.overlay().append(panel);
  const button = ctx.toolbarButton('btn-health', 'hl_button');
  button.hidden = true;
  const health = new HealthPanel({
    panel,
    button,
    wrap: ctx.overlay(),
    onExpired: ctx.onExpired,
    onFocus: (d) => ctx.focus({ lon: d.lon, lat: d.lat, id: d.id }),
  });
  const opened = ctx.sharePlace('map-right', () => { if (health.open) health.close(); });
  button.addEventListener('click', () => { if (health.open) opened(); });
  return health;
}

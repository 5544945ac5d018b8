// The alarm list: newest first, the most severe first within the same minute (as the API
// orders them), acknowledged from any console and gone from all of them. Only the rows in
// view exist in the DOM, so a burst of thousands of alarms keeps the page responsive.
// During a replay the list shows the replayed window's alarms instead (read-only), while the
// live ones keep arriving underneath for the return to live.

import { t, tOr, lang, fmtTime, onLang } from './i18n.js';
import { el } from './dom.js';

const SEVERITY = { 1: 'info', 2: 'minor', 3: 'major', 4: 'critical' };
const RENDER_EVERY_MS = 200;

function toMs(v) {
  if (v == null) return Date.now();
  return typeof v === 'number' ? v : Date.parse(v);
}

export class AlarmList {
  constructor({ scroller, counter, canAck, onAck, onFocus, onChange }) {
    this.scroller = scroller;
    this.counter = counter;
    this.canAck = canAck;
    this.onAck = onAck;
    this.onFocus = onFocus;
    this.onChange = onChange || (() => {});
    this.items = new Map();
    this.mode = 'live';
    this.replayItems = new Map();
    this.sorted = [];
    this.rowHeight = 0;
    this.scheduled = false;
    this.sortNeeded = true;
    this.spacer = document.createElement('div');
    this.spacer.className = 'al-spacer';
    this.rows = document.createElement('div');
    this.rows.className = 'al-rows';
    this.empty = document.createElement('div');
    this.empty.className = 'al-empty';
    scroller.append(this.spacer, this.rows, this.empty);
    scroller.addEventListener('scroll', () => this.schedule(false), { passive: true });
    scroller.addEventListener('click', (ev) => this.click(ev));
    window.addEventListener('resize', () => this.schedule(false));
    onLang(() => this.schedule(false));
  }

  load(list) {
    this.items.clear();
    for (const a of list) this.put(a);
    this.schedule();
  }

  put(a, into = this.items) {
    const item = {
      id: a.id,
      kind: a.kind,
      rule: a.rule,
      severity: a.severity || 2,
      device_id: a.device_id,
      message_zh: a.message_zh,
      message_en: a.message_en,
      lon: a.lon,
      lat: a.lat,
      raised: toMs(a.raised_at ?? a.at),
      cleared: Boolean(a.cleared_at),
    };
    item.minute = Math.floor(item.raised / 60000);
    into.set(item.id, item);
    this.sortNeeded = true;
  }

  // The replayed alarms raised up to the replay's time (cleared ones say so).
  showReplay(list) {
    this.mode = 'replay';
    this.replayItems = new Map();
    this.sortNeeded = true;
    for (const a of list) this.put(a, this.replayItems);
    this.schedule(false);
  }

  showLive() {
    this.mode = 'live';
    this.replayItems = new Map();
    this.sortNeeded = true;
    this.schedule();
  }

  event(ev) {
    if (ev.event === 'raised') {
      this.put(ev);
    } else if (ev.event === 'cleared') {
      const item = this.items.get(ev.id);
      if (item) item.cleared = true;
    } else if (ev.event === 'acknowledged') {
      this.items.delete(ev.id);
      this.sortNeeded = true;
    }
    this.schedule();
  }

  remove(id) {
    this.items.delete(id);
    this.sortNeeded = true;
    this.schedule();
  }

  count() { return this.items.size; }

  schedule(changed = true) {
    if (changed) this.changed = true;
    if (this.scheduled) return;
    this.scheduled = true;
    // Live bursts are batched; a replay's list keeps time with its clock.
    setTimeout(() => requestAnimationFrame(() => { this.scheduled = false; this.render(); }),
      changed && this.mode === 'live' ? RENDER_EVERY_MS : 0);
  }

  render() {
    if (this.sortNeeded) {
      const source = this.mode === 'replay' ? this.replayItems : this.items;
      this.sorted = [...source.values()].sort(
        (a, b) => b.minute - a.minute || b.severity - a.severity || b.id - a.id,
      );
      this.sortNeeded = false;
    }
    if (!this.rowHeight) {
      const probe = el('div', { class: 'al-row' }, el('div', { class: 'al-msg' }, 'x'), el('div', { class: 'al-meta' }, 'x'));
      this.rows.append(probe);
      this.rowHeight = probe.getBoundingClientRect().height || 56;
      probe.remove();
    }
    const n = this.sorted.length;
    const h = this.rowHeight;
    this.spacer.style.height = `${n * h}px`;
    const top = this.scroller.scrollTop;
    const first = Math.max(0, Math.floor(top / h) - 3);
    const last = Math.min(n, Math.ceil((top + this.scroller.clientHeight) / h) + 3);
    this.rows.style.transform = `translateY(${first * h}px)`;
    const rows = [];
    for (let i = first; i < last; i++) rows.push(this.row(this.sorted[i]));
    this.rows.replaceChildren(...rows);
    this.empty.textContent = n ? '' : t('alarms_empty');
    this.counter.textContent = String(n);
    if (this.changed) { this.changed = false; this.onChange(); }
  }

  row(a) {
    const sev = SEVERITY[a.severity] || 'minor';
    const msg = (lang === 'en' ? a.message_en : a.message_zh) || a.rule;
    const meta = [fmtTime(a.raised), tOr(`kind.${a.kind}`, a.kind), a.device_id, a.cleared ? t('cleared') : null];
    return el('div', { class: `al-row sev-${sev}${a.cleared ? ' al-cleared' : ''}`, dataset: { alarm: String(a.id) } },
      el('span', { class: 'al-sev' }, String(a.severity)),
      el('div', { class: 'al-body' },
        el('div', { class: 'al-msg' }, msg),
        el('div', { class: 'al-meta' }, meta.filter(Boolean).join(' · '))),
      this.canAck && this.mode === 'live'
        ? el('button', { class: 'al-ack', type: 'button', dataset: { ack: String(a.id) } }, t('ack'))
        : null);
  }

  click(ev) {
    const ackBtn = ev.target.closest('[data-ack]');
    if (ackBtn) {
      ev.stopPropagation();
      ackBtn.disabled = true;
      this.onAck(Number(ackBtn.dataset.ack));
      return;
    }
    const row = ev.target.closest('[data-alarm]');
    if (row) {
      const id = Number(row.dataset.alarm);
      const item = (this.mode === 'replay' ? this.replayItems : this.items).get(id);
      if (item) this.onFocus(item);
    }
  }

  withPosition() {
    return [...this.items.values()].filter((a) => a.lon != null && a.lat != null);
  }
}

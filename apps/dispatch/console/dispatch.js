// The dispatcher's workflow over the map: take a call (a new incident, placed by address or by a
// click on the map), see an incident whole (facts, units, timeline), the recommendation with its
// road routes drawn, and act on it in one click. Whoever acts, every console hears it on
// /ws/live and re-reads what changed, so all walls show the same incident.

// Its words come from strings.json, merged by the console when it mounts the panel.
import { session, SessionExpired } from '../../api.js';
import { t, tOr, lang, fmtTime, onLang } from '../../i18n.js';
import { el } from '../../dom.js';
import { STATUS_COLORS } from '../../live.js';

// Who may write, as apps/dispatch/api.py's Operator dependency says (admins always may).
export const OPERATOR_ROLES = ['dispatcher', 'supervisor'];
const STEPS = ['dispatched', 'en_route', 'on_scene', 'cleared'];
const ROUTE = '#c084fc';
const ROUTE_TOP = '#00f5a0';
const FONT_STACK = ['Noto Sans CJK SC Regular'];
const TEXT_SCALE = Math.min(2.5, Math.max(0.8, (parseFloat(getComputedStyle(document.documentElement).fontSize) || 16) / 16));

// ------------------------------------------------------------------ small pure helpers

// Like api.js's api(), but an error keeps its whole body: a 422 from the geocoder carries
// suggestions the dispatcher can click.
export async function call(path, { method = 'GET', body } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) throw new SessionExpired(detailText(data.detail) || 'unauthorized');
  if (!res.ok) {
    const err = new Error(detailText(data.detail) || `HTTP ${res.status}`);
    err.status = res.status;
    err.body = data;
    throw err;
  }
  return data;
}

function detailText(detail) {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((x) => x !== 'body').join('.')}: ${d.msg}`).join('; ');
  }
  return detail ? JSON.stringify(detail) : '';
}

export function fmtEta(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function fmtDistance(m) {
  if (m == null || !Number.isFinite(m)) return '—';
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`;
}

export function assignmentStep(a) {
  if (a.cleared_at) return 'cleared';
  if (a.on_scene_at) return 'on_scene';
  if (a.en_route_at) return 'en_route';
  return 'dispatched';
}

const ms = (iso) => (iso ? Date.parse(iso) : null);
const unitName = (u) => tOr(`unit.${u}`, u);
const deptName = (d) => tOr(`dept.${d}`, d || '');
const stepColor = (s) => (s === 'cleared' ? '#7d8590' : STATUS_COLORS[s] || STATUS_COLORS.unknown);
const emptyFc = () => ({ type: 'FeatureCollection', features: [] });

// ------------------------------------------------------------------ the panel

export class DispatchPanel {
  constructor({ map, panel, body, closeButton, wrap, onExpired, onCreated, onSelected }) {
    this.map = map;
    this.panel = panel;
    this.body = body;
    this.wrap = wrap;
    this.onExpired = onExpired;
    this.onCreated = onCreated;
    this.onSelected = onSelected;
    this.canDispatch = session.hasRole(...OPERATOR_ROLES);
    this.plans = null;
    this.mode = null; // 'new' | 'incident'
    this.selectedId = null;
    this.detail = null;
    this.rec = null;
    this.recLoading = false;
    this.emphUnit = null;
    this.msg = null;
    this.msgTimer = null;
    this.busy = false;
    this.closing = false;
    this.loc = null; // where the new incident is: {source: 'geocode'|'map', lon, lat, match}
    this.unmatched = null;
    this.picking = false;
    this.pending = { detail: false, rec: false };
    this.pendingTimer = null;
    this.seq = 0;
    this.fitted = false;
    closeButton.addEventListener('click', () => this.close());
    body.addEventListener('click', (ev) => this.onClick(ev));
    body.addEventListener('submit', (ev) => { ev.preventDefault(); this.submitNew(ev.target); });
    body.addEventListener('change', (ev) => {
      if (ev.target.name === 'incident_type' && !ev.target.form.dataset.priorityTouched) {
        const kind = this.plans && this.plans.get(ev.target.value);
        if (kind) ev.target.form.priority.value = String(kind.priority);
      }
      if (ev.target.name === 'priority') ev.target.form.dataset.priorityTouched = '1';
    });
    body.addEventListener('input', (ev) => {
      if (ev.target.name === 'address' && this.loc && this.loc.source === 'geocode') {
        this.loc = null; // the match was for other words
        this.setPick(null);
        this.renderWhere();
      }
    });
    body.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && ev.target.name === 'address') { ev.preventDefault(); this.geocode(); }
    });
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.picking) { this.stopPicking(); this.renderWhere(); }
    });
    onLang(() => this.render());
  }

  // ---------------------------------------------------------------- map layers

  // Called once the incident markers exist, so the routes go under them.
  installLayers() {
    const map = this.map;
    const before = map.getLayer('incidents-live') ? 'incidents-live' : undefined;
    const top = ['==', ['get', 'emph'], 1];
    for (const id of ['dispatch-routes', 'dispatch-units', 'dispatch-scene', 'dispatch-pick']) {
      map.addSource(id, { type: 'geojson', data: emptyFc() });
    }
    map.addLayer({
      id: 'dispatch-routes-casing', type: 'line', source: 'dispatch-routes',
      layout: { 'line-cap': 'round', 'line-join': 'round', 'line-sort-key': ['get', 'emph'] },
      paint: { 'line-color': '#04101c', 'line-width': ['case', top, 10, 5.5], 'line-opacity': 0.85 },
    }, before);
    map.addLayer({
      id: 'dispatch-routes', type: 'line', source: 'dispatch-routes',
      layout: { 'line-cap': 'round', 'line-join': 'round', 'line-sort-key': ['get', 'emph'] },
      paint: {
        'line-color': ['case', top, ROUTE_TOP, ROUTE],
        'line-width': ['case', top, 6, 3],
        'line-opacity': ['case', top, 1, 0.8],
      },
    }, before);
    map.addLayer({
      id: 'dispatch-units', type: 'circle', source: 'dispatch-units',
      paint: {
        'circle-radius': ['case', top, 8, 5.5],
        'circle-color': ['case', top, ROUTE_TOP, ROUTE],
        'circle-stroke-color': '#ffffff', 'circle-stroke-width': 1.5,
      },
    }, before);
    map.addLayer({
      id: 'dispatch-units-label', type: 'symbol', source: 'dispatch-units',
      filter: ['==', ['get', 'label'], 1],
      layout: {
        'text-field': ['get', 'name'], 'text-font': FONT_STACK, 'text-size': 12 * TEXT_SCALE,
        'text-offset': [0, 0.9], 'text-anchor': 'top', 'text-optional': true,
      },
      paint: { 'text-color': '#eafff6', 'text-halo-color': '#04101c', 'text-halo-width': 1.8 },
    }, before);
    map.addLayer({
      id: 'dispatch-scene', type: 'circle', source: 'dispatch-scene',
      paint: { 'circle-radius': 18, 'circle-color': 'rgba(255,77,79,0.12)', 'circle-stroke-color': '#ff4d4f', 'circle-stroke-width': 3 },
    });
    map.addLayer({
      id: 'dispatch-pick', type: 'circle', source: 'dispatch-pick',
      paint: { 'circle-radius': 11, 'circle-color': 'rgba(255,224,102,0.35)', 'circle-stroke-color': '#ffe066', 'circle-stroke-width': 3 },
    });
  }

  setPick(point) {
    this.map.getSource('dispatch-pick').setData(point
      ? { type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: point } }
      : emptyFc());
  }

  setScene(point) {
    this.map.getSource('dispatch-scene').setData(point
      ? { type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: point } }
      : emptyFc());
  }

  // The recommendation on the map: every candidate's road route, the emphasised one on top.
  drawRoutes() {
    const routes = [];
    const units = [];
    const cands = (this.rec && this.rec.candidates) || [];
    const tops = new Set();
    for (const c of cands) if (c.rank === 1) tops.add(c.unit_id);
    for (const c of cands) {
      const emph = c.unit_id === this.emphUnit ? 1 : 0;
      const props = { unit_id: c.unit_id, unit_type: c.unit_type, rank: c.rank, emph };
      if (c.route && c.route.type === 'LineString') routes.push({ type: 'Feature', properties: props, geometry: c.route });
      if (c.lon != null && c.lat != null) {
        units.push({
          type: 'Feature',
          properties: { ...props, name: c.call_sign || c.unit_id, label: emph || tops.has(c.unit_id) ? 1 : 0 },
          geometry: { type: 'Point', coordinates: [c.lon, c.lat] },
        });
      }
    }
    routes.sort((a, b) => a.properties.emph - b.properties.emph);
    this.map.getSource('dispatch-routes').setData({ type: 'FeatureCollection', features: routes });
    this.map.getSource('dispatch-units').setData({ type: 'FeatureCollection', features: units });
  }

  clearMap() {
    this.rec = null;
    this.drawRoutes();
    this.setScene(null);
    this.setPick(null);
  }

  // Room the panel takes on the map's left, so what we fit is not hidden behind it.
  padding() {
    const box = this.map.getContainer().getBoundingClientRect();
    const covered = this.panel.hidden ? 0 : this.panel.getBoundingClientRect().right - box.left;
    const left = Math.max(40, Math.min(covered + 40, box.width * 0.6));
    const spare = box.width - left - 40;
    const side = spare > 80 ? 40 : 10;
    const v = box.height > 300 ? 70 : 10;
    return { left, right: side, top: v, bottom: v };
  }

  fitTo(points, maxZoom = 15) {
    if (!points.length) return;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const [x, y] of points) {
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
    const d = 0.002; // a single point still gets a box
    this.map.fitBounds([[x0 - d, y0 - d], [x1 + d, y1 + d]], { padding: this.padding(), maxZoom, duration: 700 });
  }

  // The scene and the routes that matter (the plan's proposal, the emphasised unit, the best of
  // each type); the fifth engine 70 km away is drawn but does not pull the camera out.
  fitIncident() {
    const d = this.detail;
    if (!d) return;
    const pts = [[d.lon, d.lat]];
    const rec = this.rec;
    const wanted = new Set(rec ? rec.proposal : []);
    if (this.emphUnit) wanted.add(this.emphUnit);
    for (const c of (rec && rec.candidates) || []) {
      if (!(wanted.has(c.unit_id) || c.rank === 1)) continue;
      if (c.route && c.route.type === 'LineString') pts.push(...c.route.coordinates);
      else if (c.lon != null) pts.push([c.lon, c.lat]);
    }
    this.fitTo(pts);
  }

  // ---------------------------------------------------------------- opening and closing

  async ensurePlans() {
    if (this.plans) return this.plans;
    const data = await call('/dispatch/plans');
    this.plans = new Map(data.incident_types.map((k) => [k.code, k]));
    return this.plans;
  }

  typeName(code) {
    const k = this.plans && this.plans.get(code);
    if (!k) return code;
    return lang === 'en' ? k.name_en : k.name_zh;
  }

  show() {
    this.panel.hidden = false;
    this.wrap.classList.add('dispatching');
  }

  close() {
    this.mode = null;
    this.selectedId = null;
    this.detail = null;
    this.msg = null;
    this.stopPicking();
    this.clearMap();
    this.panel.hidden = true;
    this.wrap.classList.remove('dispatching');
    this.onSelected(null);
  }

  async openNew() {
    if (!this.canDispatch) return;
    this.mode = 'new';
    this.selectedId = null;
    this.detail = null;
    this.loc = null;
    this.unmatched = null;
    this.msg = null;
    this.clearMap();
    this.onSelected(null);
    this.show();
    try {
      await this.ensurePlans();
    } catch (err) {
      this.fail(err);
    }
    this.render();
    const first = this.body.querySelector('[name=address]');
    if (first) first.focus();
  }

  async select(id) {
    id = Number(id);
    if (this.mode === 'incident' && this.selectedId === id) {
      this.fitIncident();
      return;
    }
    this.stopPicking();
    this.mode = 'incident';
    this.selectedId = id;
    this.detail = null;
    this.rec = null;
    this.emphUnit = null;
    this.msg = null;
    this.closing = false;
    this.fitted = false;
    this.clearMap();
    this.onSelected(id);
    this.show();
    this.render();
    try {
      await this.ensurePlans();
    } catch (err) {
      this.fail(err);
    }
    await this.loadDetail();
    if (this.detail && this.selectedId === id) {
      this.fitIncident();
      await this.loadRec();
    }
  }

  // ---------------------------------------------------------------- loading

  async loadDetail() {
    const id = this.selectedId;
    if (id == null) return;
    try {
      const detail = await call(`/dispatch/incidents/${id}`);
      if (this.selectedId !== id) return;
      this.detail = detail;
      this.setScene([detail.lon, detail.lat]);
      if (detail.closed_at) {
        this.rec = null;
        this.drawRoutes();
      }
    } catch (err) {
      if (this.selectedId === id) this.fail(err);
    }
    this.render();
  }

  async loadRec() {
    const id = this.selectedId;
    if (id == null || !this.detail || this.detail.closed_at) return;
    const seq = ++this.seq;
    this.recLoading = true;
    this.render();
    try {
      const rec = await call(`/dispatch/incidents/${id}/recommendations?k=5`);
      if (this.selectedId !== id || seq !== this.seq) return;
      this.rec = rec;
      const ids = new Set(rec.candidates.map((c) => c.unit_id));
      if (!ids.has(this.emphUnit)) this.emphUnit = this.topUnit();
      this.drawRoutes();
      if (!this.fitted) {
        this.fitted = true;
        this.fitIncident();
      }
    } catch (err) {
      if (this.selectedId === id && seq === this.seq) {
        // A closed incident has no recommendation: that is its detail's news, not an error.
        if (!(err.status === 422 && this.detail && this.detail.closed_at)) this.fail(err);
      }
    } finally {
      if (seq === this.seq) this.recLoading = false;
    }
    this.render();
  }

  // The unit to emphasise: the plan's first proposal, else the fastest with a route.
  topUnit() {
    const rec = this.rec;
    if (!rec) return null;
    if (rec.proposal.length) return rec.proposal[0];
    const timed = rec.candidates.filter((c) => c.eta_s != null).sort((a, b) => a.eta_s - b.eta_s);
    return timed.length ? timed[0].unit_id : (rec.candidates[0] || {}).unit_id || null;
  }

  // A burst of live changes costs one re-read of each thing that changed.
  soon(what) {
    if (what.detail) this.pending.detail = true;
    if (what.rec) this.pending.rec = true;
    clearTimeout(this.pendingTimer);
    this.pendingTimer = setTimeout(async () => {
      const { detail, rec } = this.pending;
      this.pending = { detail: false, rec: false };
      if (detail) await this.loadDetail();
      if (rec) await this.loadRec();
    }, 250);
  }

  refresh() {
    if (this.mode === 'incident') this.soon({ detail: true, rec: true });
  }

  onMessage(msg) {
    if (this.mode !== 'incident' || this.selectedId == null) return;
    const id = msg.incident_id ?? (msg.incident && msg.incident.id);
    const mine = Number(id) === this.selectedId;
    const shown = new Set(((this.rec && this.rec.candidates) || []).map((c) => c.unit_id));
    let rec = false;
    if (msg.event === 'assigned') {
      rec = mine || (msg.assignments || []).some((a) => shown.has(a.unit_id));
    } else if (msg.event === 'status') {
      rec = mine || msg.status === 'cleared'; // a cleared unit is free again
    } else if (msg.event === 'closed') {
      rec = !mine; // its units are free again
    } else if (msg.event === 'updated') {
      rec = mine; // declared joint: other agencies' units come into view
    }
    if (mine || rec) this.soon({ detail: mine, rec });
  }

  // ---------------------------------------------------------------- map clicks

  claimsClick(ev) {
    if (this.picking) {
      this.loc = { source: 'map', lon: ev.lngLat.lng, lat: ev.lngLat.lat };
      this.unmatched = null;
      this.stopPicking();
      this.setPick([this.loc.lon, this.loc.lat]);
      this.renderWhere();
      return true;
    }
    return false;
  }

  startPicking() {
    this.picking = true;
    this.map.getCanvas().style.cursor = 'crosshair';
    this.renderWhere();
  }

  stopPicking() {
    if (!this.picking) return;
    this.picking = false;
    this.map.getCanvas().style.cursor = '';
  }

  // ---------------------------------------------------------------- actions

  onClick(ev) {
    const hit = ev.target.closest('[data-action], [data-assign], [data-step], [data-suggest], [data-unit]');
    if (!hit || hit.disabled) return;
    if (hit.dataset.suggest != null) {
      const input = this.body.querySelector('[name=address]');
      input.value = hit.dataset.suggest;
      this.geocode();
    } else if (hit.dataset.assign) {
      this.assign([hit.dataset.assign]);
    } else if (hit.dataset.step) {
      this.step(Number(hit.dataset.assignment), hit.dataset.step);
    } else if (hit.dataset.action) {
      const act = hit.dataset.action;
      if (act === 'geocode') this.geocode();
      else if (act === 'pick') { if (this.picking) { this.stopPicking(); this.renderWhere(); } else this.startPicking(); }
      else if (act === 'cancel') this.close();
      else if (act === 'assign-plan') { if (this.rec) this.assign(this.rec.proposal); }
      else if (act === 'refresh') this.loadRec();
      else if (act === 'joint') this.declareJoint();
      else if (act === 'close') { this.closing = true; this.render(); }
      else if (act === 'close-cancel') { this.closing = false; this.render(); }
      else if (act === 'close-confirm') this.closeIncident();
      else if (act === 'fit') this.fitIncident();
    } else if (hit.dataset.unit) {
      this.emphUnit = hit.dataset.unit;
      this.drawRoutes();
      this.render();
    }
  }

  flash(kind, text) {
    this.msg = { kind, text };
    clearTimeout(this.msgTimer);
    // Good news fades quickly; an error stays long enough to be read, then gives way to what
    // the panel shows now (live updates keep correcting it underneath).
    const life = kind === 'error' ? 15000 : kind === 'ok' ? 6000 : 0;
    if (life) this.msgTimer = setTimeout(() => { this.msg = null; this.renderMsg(); }, life);
    this.renderMsg();
  }

  fail(err) {
    if (err instanceof SessionExpired) { this.onExpired(err.message); return; }
    const prefix = err.status === 409 ? t('dsp_conflict') : err.status === 403 ? t('dsp_forbidden') : t('dsp_error');
    this.flash('error', prefix + err.message);
  }

  async act(fn) {
    if (this.busy) return;
    this.busy = true;
    this.render();
    try {
      await fn();
    } catch (err) {
      this.fail(err);
      // Someone else was faster, or the rules moved: show what is true now.
      if (err.status === 409 || err.status === 403 || err.status === 404) this.soon({ detail: true, rec: true });
    } finally {
      this.busy = false;
      this.render();
    }
  }

  assign(unitIds) {
    const id = this.selectedId;
    if (!unitIds || !unitIds.length) return;
    return this.act(async () => {
      const out = await call(`/dispatch/incidents/${id}/assignments`, { method: 'POST', body: { unit_ids: unitIds } });
      this.flash('ok', t('dsp_assigned_ok', { units: out.assignments.map((a) => a.call_sign || a.unit_id).join('、') }));
      this.soon({ detail: true, rec: true });
    });
  }

  step(assignmentId, status) {
    return this.act(async () => {
      await call(`/dispatch/assignments/${assignmentId}/status`, { method: 'POST', body: { status } });
      this.soon({ detail: true, rec: status === 'cleared' });
    });
  }

  declareJoint() {
    const id = this.selectedId;
    return this.act(async () => {
      await call(`/dispatch/incidents/${id}`, { method: 'PATCH', body: { joint: true } });
      this.soon({ detail: true, rec: true });
    });
  }

  closeIncident() {
    const id = this.selectedId;
    const input = this.body.querySelector('[name=close_note]');
    const note = input && input.value.trim() ? input.value.trim() : null;
    return this.act(async () => {
      await call(`/dispatch/incidents/${id}/close`, { method: 'POST', body: { note } });
      this.closing = false;
      this.rec = null;
      this.drawRoutes();
      this.soon({ detail: true });
    });
  }

  async geocode() {
    const input = this.body.querySelector('[name=address]');
    const q = input ? input.value.trim() : '';
    if (!q) { this.flash('error', t('dsp_need_location')); return; }
    this.stopPicking();
    this.unmatched = null;
    try {
      const match = await call(`/dispatch/geocode?q=${encodeURIComponent(q)}`);
      if (this.mode !== 'new') return;
      this.loc = { source: 'geocode', lon: match.lon, lat: match.lat, match };
      this.msg = null;
      this.renderMsg();
      this.setPick([match.lon, match.lat]);
      this.fitTo([[match.lon, match.lat]], 14);
    } catch (err) {
      if (err.status === 422 && err.body && Array.isArray(err.body.suggestions)) {
        this.loc = null;
        this.setPick(null);
        this.unmatched = { detail: err.message, suggestions: err.body.suggestions };
      } else {
        this.fail(err);
      }
    }
    this.renderWhere();
  }

  async submitNew(form) {
    if (this.busy || this.mode !== 'new') return;
    const v = Object.fromEntries(new FormData(form).entries());
    const body = {
      incident_type: v.incident_type,
      priority: Number(v.priority),
      caller: v.caller.trim() || null,
      description: v.description.trim() || null,
    };
    const address = v.address.trim();
    if (this.loc && this.loc.source === 'map') {
      body.lon = this.loc.lon;
      body.lat = this.loc.lat;
      if (address) body.address = address;
    } else if (address) {
      body.address = address; // placed again by the platform, which keeps the match with it
    } else {
      this.flash('error', t('dsp_need_location'));
      return;
    }
    this.busy = true;
    form.querySelector('[type=submit]').disabled = true;
    this.flash('info', t('dsp_creating'));
    try {
      const made = await call('/dispatch/incidents', { method: 'POST', body });
      this.onCreated(made);
      this.setPick(null);
      this.busy = false;
      await this.select(made.id);
      this.flash('ok', t('dsp_created', { id: made.id }));
      return;
    } catch (err) {
      if (err.status === 422 && err.body && Array.isArray(err.body.suggestions)) {
        this.unmatched = { detail: err.message, suggestions: err.body.suggestions };
        this.renderWhere();
      }
      this.fail(err);
    }
    this.busy = false;
    const submit = form.querySelector('[type=submit]');
    if (submit) submit.disabled = false;
  }

  // ---------------------------------------------------------------- rendering

  render() {
    if (this.mode === 'new') this.renderNew();
    else if (this.mode === 'incident') this.renderIncident();
  }

  renderMsg() {
    const box = this.body.querySelector('[data-msg]');
    if (!box) return;
    box.className = `dsp-msg ${this.msg ? this.msg.kind : ''}`;
    box.textContent = this.msg ? this.msg.text : '';
  }

  renderNew() {
    // Keep what the dispatcher typed when the language changes under it.
    const old = this.body.querySelector('form[data-form=new]');
    const kept = old ? Object.fromEntries(new FormData(old).entries()) : null;
    const touched = old && old.dataset.priorityTouched;
    const types = [...(this.plans ? this.plans.values() : [])];
    const first = types[0];
    const field = (key, control) => el('label', {}, el('span', {}, t(key)), control);
    const form = el('form', { class: 'dsp-form', dataset: { form: 'new' }, novalidate: true, autocomplete: 'off' },
      field('dsp_type', el('select', { name: 'incident_type' },
        types.map((k) => el('option', { value: k.code }, lang === 'en' ? k.name_en : `${k.name_zh} · ${k.name_en}`)))),
      field('dsp_priority', el('select', { name: 'priority' },
        [1, 2, 3, 4].map((p) => el('option', { value: String(p) }, t(`dsp_pri.${p}`))))),
      field('dsp_caller', el('input', { name: 'caller', maxlength: '200' })),
      field('dsp_description', el('textarea', { name: 'description', maxlength: '4000', rows: '2' })),
      el('div', { class: 'dsp-loc' },
        el('span', { class: 'dsp-label' }, t('dsp_location')),
        el('div', { class: 'dsp-addr' },
          el('input', { name: 'address', maxlength: '300', placeholder: t('dsp_address_ph') }),
          el('button', { type: 'button', class: 'btn', dataset: { action: 'geocode' } }, t('dsp_geocode')),
          el('button', { type: 'button', class: 'btn', dataset: { action: 'pick' } }, t('dsp_pick'))),
        el('div', { class: 'dsp-where', dataset: { where: '' } })),
      el('div', { class: 'dsp-msg', dataset: { msg: '' }, role: 'alert' }),
      el('div', { class: 'dsp-buttons' },
        el('button', { type: 'submit', class: 'btn primary', disabled: this.busy }, t('dsp_create')),
        el('button', { type: 'button', class: 'btn ghost', dataset: { action: 'cancel' } }, t('dsp_cancel'))));
    this.body.replaceChildren(el('h3', { class: 'dsp-title' }, t('dsp_new_title')), form);
    if (kept) {
      for (const [k, v] of Object.entries(kept)) if (form[k]) form[k].value = v;
      if (touched) form.dataset.priorityTouched = '1';
    } else if (first) {
      form.priority.value = String(first.priority);
    }
    this.renderWhere();
    this.renderMsg();
  }

  renderWhere() {
    const box = this.body.querySelector('[data-where]');
    if (!box) return;
    const pick = this.body.querySelector('[data-action=pick]');
    if (pick) pick.classList.toggle('active', this.picking);
    if (this.picking) {
      box.replaceChildren(el('div', { class: 'dsp-hint' }, t('dsp_picking')));
    } else if (this.loc && this.loc.source === 'geocode') {
      const m = this.loc.match;
      const what = [tOr(`dsp_kind.${m.kind}`, m.kind), m.district, tOr(`dsp_method.${m.method}`, m.method)].filter(Boolean).join(' · ');
      box.replaceChildren(el('div', { class: 'dsp-match ok' },
        el('b', {}, t('dsp_match', { match: m.match })), ' ',
        el('span', { class: 'dsp-conf' }, t('dsp_confidence', { c: Math.round(m.confidence * 100) })),
        el('div', { class: 'dsp-sub' }, `${what} · ${m.lon.toFixed(5)}, ${m.lat.toFixed(5)}`)));
    } else if (this.loc && this.loc.source === 'map') {
      box.replaceChildren(el('div', { class: 'dsp-match ok' },
        t('dsp_picked', { lon: this.loc.lon.toFixed(5), lat: this.loc.lat.toFixed(5) })));
    } else if (this.unmatched) {
      const s = this.unmatched.suggestions;
      box.replaceChildren(
        el('div', { class: 'dsp-match bad' }, t('dsp_no_match') + this.unmatched.detail),
        s.length ? el('div', { class: 'dsp-sub' }, t('dsp_suggestions')) : null,
        s.length ? el('div', { class: 'dsp-sugg' }, s.map((x) => el('button', { type: 'button', class: 'btn small', dataset: { suggest: x.name } },
          x.name,
          el('small', {}, [tOr(`dsp_kind.${x.kind}`, x.kind), x.district === x.name ? '' : x.district].filter(Boolean).join(' · '))))) : null,
      );
    } else {
      box.replaceChildren();
    }
  }

  renderIncident() {
    const d = this.detail;
    const noteEl = this.body.querySelector('[name=close_note]');
    const note = noteEl ? noteEl.value : '';
    const scroll = this.body.scrollTop;
    if (!d) {
      this.body.replaceChildren(
        el('h3', { class: 'dsp-title' }, `#${this.selectedId}`),
        el('div', { class: 'dsp-msg', dataset: { msg: '' }, role: 'alert' }),
        el('div', { class: 'dsp-hint' }, t('dsp_loading')));
      this.renderMsg();
      return;
    }
    const open = !d.closed_at;
    const ops = this.canDispatch && open;
    const status = d.closed_at ? 'closed' : d.status;
    const geo = d.geocode || {};
    const facts = [];
    const fact = (k, ...v) => { if (v.some((x) => x)) facts.push(el('dt', {}, k), el('dd', {}, ...v)); };
    const conf = () => [' ', el('span', { class: 'dsp-conf' }, t('dsp_confidence', { c: Math.round((geo.confidence || 0) * 100) }))];
    const geocoded = geo.method && geo.method !== 'coordinates';
    if (geocoded && geo.match === d.address) {
      fact(t('dsp_address'), d.address, d.address ? conf() : null);
    } else {
      fact(t('dsp_address'), d.address);
      if (geocoded) fact(t('dsp_place'), geo.match, geo.match ? conf() : null);
    }
    fact(t('dsp_district'), [d.district, d.area_class ? t(`dsp_area.${d.area_class}`) : ''].filter(Boolean).join(' · '));
    fact(t('dsp_coordinates'), `${d.lon.toFixed(5)}, ${d.lat.toFixed(5)}`);
    fact(t('dsp_caller'), d.caller);
    fact(t('dsp_description'), d.description);
    fact(t('dsp_created_at'), `${fmtTime(ms(d.created_at), true)} · ${d.created_by}`);
    if (d.response_target_s) fact(t('dsp_target'), `${Math.round(d.response_target_s / 60)} ${t('dsp_min')}`);

    const parts = [
      el('div', { class: 'dsp-head' },
        el('span', { class: `dsp-pri p${d.priority}` }, `P${d.priority}`),
        el('h3', { class: 'dsp-title' }, `#${d.id} ${this.typeName(d.incident_type)}`),
        el('span', { class: `dsp-status st-${status}` }, tOr(`dsp_inc.${status}`, status)),
        d.joint ? el('span', { class: 'dsp-joint' }, t('dsp_joint')) : null,
        el('button', { type: 'button', class: 'btn small ghost dsp-fit', dataset: { action: 'fit' }, title: `${d.lon.toFixed(5)}, ${d.lat.toFixed(5)}` }, t('dsp_fit'))),
      el('div', { class: 'dsp-msg', dataset: { msg: '' }, role: 'alert' }),
      el('dl', { class: 'dsp-facts' }, facts),
    ];
    if (ops) {
      const button = (action, key, cls = 'btn', busy = true) => el('button', { type: 'button', class: cls, dataset: { action }, disabled: busy && this.busy }, t(key));
      parts.push(el('div', { class: 'dsp-actions' },
        d.joint ? null : button('joint', 'dsp_declare_joint'),
        this.closing
          ? [el('input', { name: 'close_note', maxlength: '2000', placeholder: t('dsp_close_note') }),
            button('close-confirm', 'dsp_close_confirm', 'btn danger'),
            button('close-cancel', 'dsp_cancel', 'btn ghost', false)]
          : button('close', 'dsp_close')));
    }
    parts.push(...this.assignmentsDom(d, ops));
    if (open) parts.push(...this.recommendationDom(ops));
    parts.push(...this.timelineDom(d));
    this.body.replaceChildren(...parts);
    const newNote = this.body.querySelector('[name=close_note]');
    if (newNote) newNote.value = note;
    this.body.scrollTop = scroll;
    this.renderMsg();
  }

  assignmentsDom(d, ops) {
    const rows = d.assignments.map((a) => {
      const step = assignmentStep(a);
      const next = ops && step !== 'cleared' ? STEPS.slice(STEPS.indexOf(step) + 1) : [];
      const times = ['dispatched_at', 'en_route_at', 'on_scene_at', 'cleared_at']
        .filter((k) => a[k]).map((k) => `${t(`dsp_as.${k.replace('_at', '')}`)} ${fmtTime(ms(a[k]))}`);
      const pill = el('span', { class: 'dsp-pill', dataset: { stepNow: step } }, t(`dsp_as.${step}`));
      pill.style.background = stepColor(step);
      return el('div', { class: `dsp-asg ${step === 'cleared' ? 'done' : ''}`, dataset: { assignmentRow: String(a.id), unitId: a.unit_id } },
        el('div', { class: 'dsp-asg-main' },
          el('b', {}, a.call_sign || a.unit_id), ' ',
          el('small', {}, `${a.unit_id} · ${unitName(a.unit_type)}`),
          pill),
        el('div', { class: 'dsp-sub' }, times.join(' · ') + (a.eta_s != null ? ` · ${t('dsp_eta')} ${fmtEta(a.eta_s)}` : '')),
        next.length ? el('div', { class: 'dsp-steps' }, next.map((s) => el('button', {
          type: 'button', class: 'btn small', dataset: { step: s, assignment: String(a.id) }, disabled: this.busy,
        }, t(`dsp_btn.${s}`)))) : null);
    });
    return [
      el('h4', { class: 'dsp-h' }, t('dsp_assigned'), ' ', el('span', { class: 'dsp-n' }, String(d.assignments.length))),
      rows.length ? el('div', { class: 'dsp-asgs' }, rows) : el('div', { class: 'dsp-hint' }, t('dsp_assigned_none')),
    ];
  }

  recommendationDom(ops) {
    const rec = this.rec;
    const head = el('h4', { class: 'dsp-h' }, t('dsp_recommend'),
      el('button', { type: 'button', class: 'btn small ghost', dataset: { action: 'refresh' }, disabled: this.recLoading }, t('dsp_refresh')),
      ops && rec ? el('button', { type: 'button', class: 'btn small primary', dataset: { action: 'assign-plan' }, disabled: this.busy || !rec.proposal.length },
        t('dsp_assign_plan', { n: rec.proposal.length })) : null);
    if (!rec) return [head, el('div', { class: 'dsp-hint' }, this.recLoading ? t('dsp_loading') : '')];
    const out = [];
    for (const p of rec.plan.filter((x) => x.visible)) {
      const cands = rec.candidates.filter((c) => c.unit_type === p.unit_type);
      out.push(el('div', { class: 'dsp-type' }, el('b', {}, unitName(p.unit_type)), ' ',
        el('small', {}, t('dsp_plan_need', { n: p.count, a: p.assigned }))));
      if (!cands.length) out.push(el('div', { class: 'dsp-hint' }, t('dsp_no_candidates')));
      for (const c of cands) {
        const flags = c.flags.map((f) => el('span', { class: `dsp-flag ${f === 'off_network' || f === 'unreachable' ? 'bad' : ''}` }, tOr(`dsp_flag.${f}`, f)));
        const proposed = rec.proposal.includes(c.unit_id);
        out.push(el('div', { class: `dsp-cand ${c.unit_id === this.emphUnit ? 'emph' : ''} ${proposed ? 'proposed' : ''}`, dataset: { unit: c.unit_id } },
          el('span', { class: 'dsp-rank' }, String(c.rank)),
          el('div', { class: 'dsp-cand-body' },
            el('div', {}, el('b', {}, c.call_sign || c.unit_id), ' ', el('small', {}, `${c.unit_id} · ${deptName(c.department_code)}`)),
            el('div', { class: 'dsp-cand-meta' },
              el('span', { class: 'dsp-eta', title: t('dsp_eta') }, fmtEta(c.eta_s)),
              el('span', { title: t('dsp_distance') }, fmtDistance(c.distance_m)),
              flags)),
          ops ? el('button', { type: 'button', class: 'btn small primary', dataset: { assign: c.unit_id }, disabled: this.busy }, t('dsp_assign')) : null));
      }
    }
    for (const h of rec.hidden) {
      out.push(el('div', { class: 'dsp-hidden' }, t('dsp_hidden', { type: unitName(h.unit_type), dept: deptName(h.department) })));
    }
    out.push(el('div', { class: 'dsp-sub' }, t('dsp_considered', { n: rec.considered })));
    return [head, el('div', { class: 'dsp-rec' }, out)];
  }

  timelineDom(d) {
    const items = d.timeline.map((ev) => {
      const det = ev.detail || {};
      let what = '';
      if (ev.event === 'created') {
        what = [this.typeName(det.type), det.priority ? `P${det.priority}` : '', det.geocode && det.geocode.match ? det.geocode.match : ''].filter(Boolean).join(' · ');
      } else if (ev.event === 'dispatched') {
        what = (det.units || []).join('、');
      } else if (['en_route', 'on_scene', 'cleared'].includes(ev.event)) {
        what = det.unit_id || '';
      } else if (ev.event === 'updated' || ev.event === 'declared_joint') {
        const words = { priority: 'dsp_priority', description: 'dsp_description' };
        what = Object.entries(det).filter(([k]) => words[k])
          .map(([k, v]) => `${t(words[k])}: ${k === 'priority' ? `P${v}` : v}`).join(' · ');
      } else if (ev.event === 'closed') {
        what = det.note || '';
      }
      const by = ev.actor === 'gps' ? t('dsp_gps') : ev.actor;
      return el('li', { dataset: { event: ev.event } },
        el('time', { title: fmtTime(ms(ev.at), true) }, fmtTime(ms(ev.at))),
        el('span', { class: 'dsp-ev' }, tOr(`dsp_ev.${ev.event}`, ev.event)),
        el('span', { class: 'dsp-ev-what' }, what),
        el('span', { class: 'dsp-ev-by' }, t('dsp_by', { by })));
    });
    return [el('h4', { class: 'dsp-h' }, t('dsp_timeline')), el('ol', { class: 'dsp-timeline' }, items)];
  }
}

// Geofences over the map: the list (GET /geofences) with each fence drawn as an outline and a
// light fill, a click on one to zoom to it, and for supervisors, dispatchers and admins the
// tools to draw a new one on the map (POST /geofences) and to delete one (DELETE), with the
// confirmation inside the page. Viewers and the other roles see the list and the map only.
//
// Drawing: every click on the map places a vertex, the polygon follows the pointer as a
// preview, a double-click (or a click on the first vertex, or "Finish") closes it, Esc or
// "Cancel" drops it, and vertices can be dragged. The form then asks for the name, the device
// kinds watched and when to raise an alarm; when the server refuses the shape (422, e.g. a
// self-intersecting ring) its reason shows in the form and the drawing stays to be fixed.
//
// Names are anybody's text: the panel is built from DOM nodes and text nodes only.

import { api, session, SessionExpired } from './api.js';
import { t, tOr, lang, onLang, applyStatic } from './i18n.js';
import { el } from './dom.js';
import { KINDS, isMobile } from './kinds.js';
import './geofence-strings.js';

// Who may draw and delete, as web/routers/geofences.py's Editor dependency says (admins always).
export const EDIT_ROLES = ['supervisor', 'dispatcher'];
const STROKE = '#f08c00';
const STROKE_SELECTED = '#ffd43b';
const DRAFT = '#3fa9f5';
// A click this close (CSS pixels) to the last vertex adds nothing (a double-click's second
// click); this close to the first vertex it closes the ring.
const SAME_PX = 6;
const CLOSE_PX = 10;

function emptyFc() { return { type: 'FeatureCollection', features: [] }; }

// All the positions of a Polygon or MultiPolygon's outer rings.
function outerRings(geometry) {
  if (!geometry) return [];
  if (geometry.type === 'Polygon') return [geometry.coordinates[0]];
  if (geometry.type === 'MultiPolygon') return geometry.coordinates.map((p) => p[0]);
  return [];
}

export class GeofencePanel {
  constructor({ map, panel, button, wrap, onOpen, onExpired, beforeLayer }) {
    this.map = map;
    this.panel = panel;
    this.button = button;
    this.wrap = wrap;
    this.onOpen = onOpen;
    this.onExpired = onExpired;
    this.canEdit = session.hasRole(...EDIT_ROLES);
    this.open = false;
    this.fences = [];
    this.error = null;
    this.message = null; // { text, kind: 'ok' | 'error' }
    this.mode = null; // null | 'drawing' | 'form'
    this.draft = []; // [[lon, lat], ...] of the fence being drawn
    this.hover = null; // where the pointer is while drawing: the preview's last corner
    this.drag = null; // { index, moved } while a vertex is dragged
    this.suppressClick = false;
    this.formError = '';
    this.busy = false;
    this.selectedId = null;
    this.confirmId = null; // the fence whose deletion waits for a second click
    this.seq = 0;
    this.loads = 0; // finished list loads, for tests
    this.remScale = (parseFloat(getComputedStyle(document.documentElement).fontSize) || 16) / 16;
    this.installLayers(beforeLayer);
    this.build();
    button.hidden = false;
    button.addEventListener('click', () => (this.open ? this.close() : this.show()));
    document.addEventListener('keydown', (ev) => this.onKey(ev));
    onLang(() => { applyStatic(this.panel); this.render(); });
  }

  // ---------------------------------------------------------------- map layers and events

  installLayers(beforeLayer) {
    const map = this.map;
    const before = beforeLayer && map.getLayer(beforeLayer) ? beforeLayer : undefined;
    const s = this.remScale;
    map.addSource('geofences-console', { type: 'geojson', data: emptyFc() });
    map.addLayer({
      id: 'gf-fill', type: 'fill', source: 'geofences-console', layout: { visibility: 'none' },
      paint: { 'fill-color': ['case', ['==', ['get', 'selected'], 1], STROKE_SELECTED, STROKE], 'fill-opacity': ['case', ['==', ['get', 'selected'], 1], 0.16, 0.1] },
    }, before);
    map.addLayer({
      id: 'gf-line', type: 'line', source: 'geofences-console', layout: { visibility: 'none', 'line-join': 'round' },
      paint: { 'line-color': ['case', ['==', ['get', 'selected'], 1], STROKE_SELECTED, STROKE], 'line-width': ['case', ['==', ['get', 'selected'], 1], 3 * s, 2 * s], 'line-opacity': 0.95 },
    }, before);
    // The drawing goes on top of everything else on the map.
    map.addSource('geofence-draft', { type: 'geojson', data: emptyFc() });
    map.addLayer({ id: 'gf-draft-fill', type: 'fill', source: 'geofence-draft', filter: ['==', ['get', 'part'], 'area'], paint: { 'fill-color': DRAFT, 'fill-opacity': 0.18 } });
    map.addLayer({ id: 'gf-draft-line', type: 'line', source: 'geofence-draft', filter: ['==', ['get', 'part'], 'edge'], layout: { 'line-join': 'round', 'line-cap': 'round' }, paint: { 'line-color': '#7fd4ff', 'line-width': 2.5 * s } });
    map.addLayer({ id: 'gf-draft-preview', type: 'line', source: 'geofence-draft', filter: ['==', ['get', 'part'], 'preview'], paint: { 'line-color': '#7fd4ff', 'line-width': 1.5 * s, 'line-dasharray': [2, 2] } });
    map.addLayer({
      id: 'gf-draft-vertex', type: 'circle', source: 'geofence-draft', filter: ['==', ['get', 'part'], 'vertex'],
      paint: { 'circle-radius': ['case', ['==', ['get', 'i'], 0], 6.5 * s, 5 * s], 'circle-color': ['case', ['==', ['get', 'i'], 0], '#ffe066', '#ffffff'], 'circle-stroke-color': DRAFT, 'circle-stroke-width': 2 * s },
    });

    map.on('mousemove', (e) => this.onMove(e));
    map.on('dblclick', (e) => {
      if (this.mode !== 'drawing') return;
      e.preventDefault();
      this.finish();
    });
    map.on('mousedown', 'gf-draft-vertex', (e) => {
      if (!this.draft.length || this.busy || (e.originalEvent && e.originalEvent.button !== 0)) return;
      const f = e.features && e.features[0];
      if (!f) return;
      e.preventDefault(); // no panning: this drag moves the vertex
      this.drag = { index: f.properties.i, moved: false, at: e.point };
    });
    map.on('mouseup', () => {
      if (!this.drag) return;
      if (this.drag.moved) {
        this.suppressClick = true; // the click that ends a drag places nothing
        setTimeout(() => { this.suppressClick = false; }, 0);
      }
      this.drag = null;
      this.drawDraft();
    });
  }

  onMove(e) {
    if (this.drag) {
      const { at } = this.drag;
      if (!this.drag.moved && Math.hypot(e.point.x - at.x, e.point.y - at.y) < 3) return;
      this.drag.moved = true;
      this.draft[this.drag.index] = [e.lngLat.lng, e.lngLat.lat];
      this.hover = null;
      this.drawDraft();
      return;
    }
    if (!this.draft.length && this.mode !== 'drawing') return;
    const onVertex = this.map.queryRenderedFeatures(e.point, { layers: ['gf-draft-vertex'] }).length > 0;
    this.map.getCanvas().style.cursor = onVertex ? 'move' : (this.mode === 'drawing' ? 'crosshair' : '');
    if (this.mode === 'drawing') {
      this.hover = [e.lngLat.lng, e.lngLat.lat];
      this.drawDraft();
    }
  }

  // A click on the map while drawing places a vertex (app.js asks here first).
  claimsClick(e) {
    if (this.mode !== 'drawing') return false;
    if (this.suppressClick) return true;
    const p = e.point;
    const px = (c) => this.map.project(c);
    if (this.draft.length) {
      const last = px(this.draft[this.draft.length - 1]);
      if (Math.hypot(p.x - last.x, p.y - last.y) < SAME_PX) return true;
      const first = px(this.draft[0]);
      if (this.draft.length >= 3 && Math.hypot(p.x - first.x, p.y - first.y) < CLOSE_PX) {
        this.finish();
        return true;
      }
    }
    this.draft.push([e.lngLat.lng, e.lngLat.lat]);
    this.renderDraw();
    this.drawDraft();
    return true;
  }

  onKey(ev) {
    if (this.mode !== 'drawing') return;
    const typing = ev.target && /^(INPUT|TEXTAREA|SELECT)$/.test(ev.target.tagName);
    if (ev.key === 'Escape') { ev.preventDefault(); this.cancelDraft(); }
    else if (ev.key === 'Enter' && !typing) { ev.preventDefault(); this.finish(); }
    else if ((ev.key === 'Backspace' || ev.key === 'Delete') && !typing) { ev.preventDefault(); this.undo(); }
  }

  drawDraft() {
    const src = this.map.getSource('geofence-draft');
    if (!src) return;
    const features = [];
    const pts = this.draft;
    const closed = this.mode === 'form';
    const withHover = this.mode === 'drawing' && this.hover ? [...pts, this.hover] : pts;
    if (withHover.length >= 3) {
      features.push({ type: 'Feature', properties: { part: 'area' }, geometry: { type: 'Polygon', coordinates: [[...withHover, withHover[0]]] } });
    }
    if (pts.length >= 2) {
      const line = closed ? [...pts, pts[0]] : pts;
      features.push({ type: 'Feature', properties: { part: 'edge' }, geometry: { type: 'LineString', coordinates: line } });
    }
    if (this.mode === 'drawing' && this.hover && pts.length) {
      const tail = pts.length >= 2 ? [pts[pts.length - 1], this.hover, pts[0]] : [pts[0], this.hover];
      features.push({ type: 'Feature', properties: { part: 'preview' }, geometry: { type: 'LineString', coordinates: tail } });
    }
    pts.forEach((c, i) => features.push({ type: 'Feature', properties: { part: 'vertex', i }, geometry: { type: 'Point', coordinates: c } }));
    src.setData({ type: 'FeatureCollection', features });
  }

  drawFences() {
    const src = this.map.getSource('geofences-console');
    if (!src) return;
    src.setData({
      type: 'FeatureCollection',
      features: this.fences.map((f) => ({
        type: 'Feature',
        id: f.id,
        properties: { id: f.id, selected: f.id === this.selectedId ? 1 : 0 },
        geometry: f.geometry,
      })),
    });
    const vis = this.open ? 'visible' : 'none';
    for (const id of ['gf-fill', 'gf-line']) this.map.setLayoutProperty(id, 'visibility', vis);
  }

  // ---------------------------------------------------------------- the panel, built once

  build() {
    const p = this.panel;
    p.replaceChildren();
    this.els = {};
    const close = el('button', { class: 'close', type: 'button', 'data-i18n-title': 'close' }, '×');
    close.addEventListener('click', () => this.close());
    this.els.count = el('span', { class: 'gf-n' });
    const refresh = el('button', { class: 'btn small', type: 'button', i18n: 'gf_refresh', dataset: { action: 'refresh' } });
    refresh.addEventListener('click', () => this.refresh());
    this.els.newButton = el('button', { class: 'btn small primary gf-new', type: 'button', i18n: 'gf_new', dataset: { action: 'new' }, hidden: !this.canEdit });
    this.els.newButton.addEventListener('click', () => this.startDrawing());
    const head = el('div', { class: 'gf-head' },
      el('h3', { class: 'gf-title', i18n: 'gf_title' }), this.els.count, refresh, this.els.newButton);

    this.els.message = el('div', { class: 'gf-msg', role: 'status' });
    this.els.draw = this.buildDrawBar();
    this.els.form = this.buildForm();
    this.els.readonly = el('div', { class: 'gf-readonly', i18n: 'gf_readonly', hidden: this.canEdit });
    this.els.list = el('div', { class: 'gf-list' });
    this.els.list.addEventListener('click', (ev) => this.onListClick(ev));
    this.els.list.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && ev.target.classList.contains('gf-row')) this.onListClick(ev);
    });
    const body = el('div', { class: 'gf-body' },
      this.els.message, this.els.draw, this.els.form, this.els.readonly, this.els.list);
    p.append(close, head, body);
    applyStatic(p);
  }

  buildDrawBar() {
    this.els.vertexCount = el('span', { class: 'gf-vertices' });
    this.els.finish = el('button', { class: 'btn small primary', type: 'button', i18n: 'gf_finish', dataset: { action: 'finish' } });
    this.els.finish.addEventListener('click', () => this.finish());
    const undo = el('button', { class: 'btn small', type: 'button', i18n: 'gf_undo', dataset: { action: 'undo' } });
    undo.addEventListener('click', () => this.undo());
    const cancel = el('button', { class: 'btn small', type: 'button', i18n: 'gf_cancel', dataset: { action: 'cancel-draw' } });
    cancel.addEventListener('click', () => this.cancelDraft());
    return el('div', { class: 'gf-draw', hidden: true },
      el('h4', { class: 'gf-h', i18n: 'gf_drawing' }),
      el('p', { class: 'gf-hint', i18n: 'gf_draw_hint' }),
      el('div', { class: 'gf-draw-row' }, this.els.vertexCount, this.els.finish, undo, cancel));
  }

  buildForm() {
    const kinds = KINDS.map((k) => el('label', { class: 'gf-check' },
      el('input', { type: 'checkbox', name: 'kind', value: k }),
      el('span', { i18n: `kind.${k}` })));
    this.els.formError = el('div', { class: 'gf-msg error gf-form-error', role: 'alert' });
    this.els.save = el('button', { class: 'btn primary', type: 'submit', i18n: 'gf_save', dataset: { action: 'save' } });
    const redraw = el('button', { class: 'btn', type: 'button', i18n: 'gf_redraw', dataset: { action: 'redraw' } });
    redraw.addEventListener('click', () => this.resumeDrawing());
    const cancel = el('button', { class: 'btn', type: 'button', i18n: 'gf_cancel', dataset: { action: 'cancel-form' } });
    cancel.addEventListener('click', () => this.cancelDraft());
    const form = el('form', { class: 'gf-form', hidden: true, novalidate: true },
      el('h4', { class: 'gf-h', i18n: 'gf_form_title' }),
      el('p', { class: 'gf-hint', i18n: 'gf_form_hint' }),
      el('label', { class: 'gf-field' }, el('span', { i18n: 'gf_name' }),
        el('input', { name: 'name', type: 'text', maxlength: '100', autocomplete: 'off', spellcheck: 'false', 'data-i18n-placeholder': 'gf_name_ph' })),
      el('fieldset', { class: 'gf-set' }, el('legend', { i18n: 'gf_kinds' }), el('div', { class: 'gf-kinds' }, kinds)),
      el('fieldset', { class: 'gf-set' }, el('legend', { i18n: 'gf_alarm_on' }),
        el('div', { class: 'gf-kinds' },
          el('label', { class: 'gf-check' }, el('input', { type: 'checkbox', name: 'on_enter' }), el('span', { i18n: 'gf_on_enter' })),
          el('label', { class: 'gf-check' }, el('input', { type: 'checkbox', name: 'on_leave' }), el('span', { i18n: 'gf_on_leave' })))),
      this.els.formError,
      el('div', { class: 'gf-buttons' }, this.els.save, redraw, cancel));
    form.addEventListener('submit', (ev) => { ev.preventDefault(); this.save(); });
    return form;
  }

  resetForm() {
    const f = this.els.form;
    f.elements.name.value = '';
    // Fences are mostly about units on the move: those kinds are ticked to begin with.
    for (const box of f.querySelectorAll('input[name=kind]')) box.checked = isMobile(box.value);
    f.elements.on_enter.checked = true;
    f.elements.on_leave.checked = true;
    this.formError = '';
  }

  // ---------------------------------------------------------------- open, close, load

  show() {
    this.open = true;
    if (this.onOpen) this.onOpen();
    this.panel.hidden = false;
    this.wrap.classList.add('geofences-open');
    this.button.classList.add('active');
    this.render();
    this.drawFences();
    this.refresh();
  }

  close() {
    if (!this.open) return;
    this.open = false;
    this.seq += 1; // answers still on their way are dropped
    this.cancelDraft();
    this.confirmId = null;
    this.panel.hidden = true;
    this.wrap.classList.remove('geofences-open');
    this.button.classList.remove('active');
    this.drawFences();
  }

  async refresh() {
    if (!this.open) return;
    const seq = ++this.seq;
    try {
      const fc = await api('/geofences');
      if (seq !== this.seq) return;
      this.fences = fc.features || [];
      this.error = null;
    } catch (err) {
      if (err instanceof SessionExpired) { this.close(); this.onExpired(err.message); return; }
      if (seq !== this.seq) return;
      this.error = err.message;
    }
    if (this.selectedId != null && !this.fences.some((f) => f.id === this.selectedId)) this.selectedId = null;
    this.loads += 1;
    this.render();
    this.drawFences();
  }

  // ---------------------------------------------------------------- drawing a new fence

  startDrawing() {
    if (!this.canEdit || this.mode) return;
    this.message = null;
    this.confirmId = null;
    this.draft = [];
    this.hover = null;
    this.resetForm();
    this.setMode('drawing');
  }

  resumeDrawing() {
    this.formError = '';
    this.setMode('drawing');
  }

  setMode(mode) {
    this.mode = mode;
    const canvas = this.map.getCanvas();
    if (mode === 'drawing') {
      this.map.doubleClickZoom.disable();
      canvas.style.cursor = 'crosshair';
    } else {
      this.hover = null;
      canvas.style.cursor = '';
      // Re-enabled after this double-click's own zoom would have fired.
      setTimeout(() => { if (this.mode !== 'drawing') this.map.doubleClickZoom.enable(); }, 400);
    }
    this.render();
    this.drawDraft();
    if (mode === 'form') this.els.form.elements.name.focus();
  }

  finish() {
    if (this.mode !== 'drawing') return;
    if (this.draft.length < 3) {
      this.message = { text: t('gf_need3'), kind: 'error' };
      this.renderMessage();
      return;
    }
    this.message = null;
    this.setMode('form');
  }

  undo() {
    if (this.mode !== 'drawing' || !this.draft.length) return;
    this.draft.pop();
    this.renderDraw();
    this.drawDraft();
  }

  cancelDraft() {
    const had = this.mode || this.draft.length;
    this.draft = [];
    this.drag = null;
    this.formError = '';
    if (this.message && this.message.kind === 'error') this.message = null;
    this.setMode(null);
    if (had) this.els.newButton.focus();
  }

  async save() {
    if (this.busy || this.mode !== 'form') return;
    const f = this.els.form;
    const name = f.elements.name.value.trim();
    const kinds = [...f.querySelectorAll('input[name=kind]:checked')].map((box) => box.value);
    if (!name) { this.formError = t('gf_name_required'); this.renderForm(); f.elements.name.focus(); return; }
    if (!kinds.length) { this.formError = t('gf_kinds_required'); this.renderForm(); return; }
    const ring = this.draft.map(([lon, lat]) => [+lon.toFixed(7), +lat.toFixed(7)]);
    const body = {
      name_zh: name,
      kinds,
      on_enter: f.elements.on_enter.checked,
      on_leave: f.elements.on_leave.checked,
      geometry: { type: 'Polygon', coordinates: [[...ring, ring[0]]] },
    };
    this.busy = true;
    this.formError = '';
    this.renderForm();
    try {
      const made = await api('/geofences', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      this.fences = [...this.fences.filter((x) => x.id !== made.id), made];
      this.selectedId = made.id;
      this.message = { text: t('gf_saved', { name: made.properties.name_zh }), kind: 'ok' };
      this.busy = false;
      this.draft = [];
      this.setMode(null);
      this.drawFences();
    } catch (err) {
      this.busy = false;
      if (err instanceof SessionExpired) { this.close(); this.onExpired(err.message); return; }
      // The drawing stays: the user fixes the shape (drag, or edit the vertices) and saves again.
      this.formError = err.status === 403 ? t('gf_forbidden') : `${t('gf_refused')}${err.message}`;
      this.renderForm();
    }
  }

  // ---------------------------------------------------------------- the list

  onListClick(ev) {
    const action = ev.target.closest('[data-action]');
    const row = ev.target.closest('.gf-row');
    if (!row) return;
    const id = Number(row.dataset.id);
    const fence = this.fences.find((f) => f.id === id);
    if (!fence) return;
    if (action) {
      const what = action.dataset.action;
      if (what === 'delete') { this.confirmId = id; this.renderList(); this.els.list.querySelector('[data-action="confirm-delete"]').focus(); }
      else if (what === 'cancel-delete') { this.confirmId = null; this.renderList(); }
      else if (what === 'confirm-delete') this.remove(fence);
      return;
    }
    this.zoomTo(fence);
  }

  zoomTo(fence) {
    this.selectedId = fence.id;
    const coords = outerRings(fence.geometry).flat();
    if (coords.length) {
      const lons = coords.map((c) => c[0]), lats = coords.map((c) => c[1]);
      const pad = 3 * parseFloat(getComputedStyle(document.documentElement).fontSize);
      const right = this.panel.getBoundingClientRect().width + pad;
      const mapW = this.map.getContainer().clientWidth;
      this.map.fitBounds([[Math.min(...lons), Math.min(...lats)], [Math.max(...lons), Math.max(...lats)]], {
        padding: { top: pad * 1.5, bottom: pad, left: pad, right: Math.min(right, mapW * 0.6) },
        maxZoom: 16,
        duration: 800,
      });
    }
    this.renderList();
    this.drawFences();
  }

  async remove(fence) {
    if (this.busy) return;
    this.busy = true;
    this.renderList();
    const name = fence.properties.name_zh;
    try {
      await api(`/geofences/${fence.id}`, { method: 'DELETE' });
      this.message = { text: t('gf_deleted', { name }), kind: 'ok' };
    } catch (err) {
      if (err instanceof SessionExpired) { this.busy = false; this.close(); this.onExpired(err.message); return; }
      if (err.status !== 404) { // 404: somebody else deleted it first; it is gone either way
        this.busy = false;
        this.message = { text: err.status === 403 ? t('gf_forbidden') : err.message, kind: 'error' };
        this.render();
        return;
      }
    }
    this.busy = false;
    this.fences = this.fences.filter((f) => f.id !== fence.id);
    if (this.selectedId === fence.id) this.selectedId = null;
    this.confirmId = null;
    this.render();
    this.drawFences();
  }

  // ---------------------------------------------------------------- drawing the panel

  render() {
    if (!this.els) return;
    this.els.count.textContent = this.loads ? t('gf_count', { n: this.fences.length }) : '';
    this.els.newButton.disabled = Boolean(this.mode) || this.busy;
    this.renderMessage();
    this.renderDraw();
    this.renderForm();
    this.renderList();
  }

  renderMessage() {
    const m = this.error ? { text: `${t('gf_error')}${this.error}`, kind: 'error' } : this.message;
    this.els.message.textContent = m ? m.text : '';
    this.els.message.className = `gf-msg${m ? ` ${m.kind}` : ''}`;
  }

  renderDraw() {
    this.els.draw.hidden = this.mode !== 'drawing';
    this.els.vertexCount.textContent = t('gf_vertices', { n: this.draft.length });
    this.els.finish.disabled = this.draft.length < 3;
  }

  renderForm() {
    this.els.form.hidden = this.mode !== 'form';
    this.els.formError.textContent = this.formError;
    this.els.save.disabled = this.busy;
    this.els.save.textContent = t(this.busy ? 'gf_saving' : 'gf_save');
  }

  renderList() {
    if (!this.loads && !this.fences.length) {
      this.els.list.replaceChildren(el('div', { class: 'gf-empty' }, t('gf_loading')));
      return;
    }
    if (!this.fences.length) {
      this.els.list.replaceChildren(el('div', { class: 'gf-empty' }, t('gf_empty')));
      return;
    }
    this.els.list.replaceChildren(...this.fences.map((f) => {
      const p = f.properties || {};
      const flags = [];
      if (p.on_enter) flags.push(el('span', { class: 'gf-flag enter' }, t('gf_enter')));
      if (p.on_leave) flags.push(el('span', { class: 'gf-flag leave' }, t('gf_leave')));
      if (!flags.length) flags.push(el('span', { class: 'gf-flag none' }, t('gf_no_alarm')));
      const confirming = this.confirmId === f.id;
      return el('div', {
        class: `gf-row${f.id === this.selectedId ? ' selected' : ''}`,
        dataset: { id: String(f.id) },
        role: 'button',
        tabindex: '0',
        title: t('gf_zoom'),
      },
      el('div', { class: 'gf-row-main' },
        el('span', { class: 'gf-swatch' }),
        el('span', { class: 'gf-name' }, p.name_zh || ''),
        this.canEdit && !confirming
          ? el('button', { class: 'btn small gf-del', type: 'button', dataset: { action: 'delete' }, disabled: this.busy }, t('gf_delete'))
          : null),
      el('div', { class: 'gf-row-meta' },
        el('span', { class: 'gf-kinds-shown' }, (p.kinds || []).map((k) => tOr(`kind.${k}`, k)).join(lang === 'en' ? ', ' : '、')),
        ...flags),
      confirming ? el('div', { class: 'gf-confirm', role: 'alert' },
        el('span', {}, t('gf_delete_q', { name: p.name_zh || '' })),
        el('div', { class: 'gf-buttons' },
          el('button', { class: 'btn small danger', type: 'button', dataset: { action: 'confirm-delete' }, disabled: this.busy }, t('gf_delete_yes')),
          el('button', { class: 'btn small', type: 'button', dataset: { action: 'cancel-delete' } }, t('gf_delete_no')))) : null);
    }));
  }
}

// Mounted by the shell through panels.js's ctx, as any application's panel is. Everybody sees
// the fences; the panel shares the map's right side with others (one of them at a time), and
// its fences are drawn under the shell's own overlays (the selected unit's trail).
export function mount(ctx) {
  const panel = ctx.el('div', { id: 'geofence-panel', class: 'floating geofence-panel', hidden: true });
  ctx.overlay().append(panel);
  const button = ctx.toolbarButton('btn-geofences', 'gf_button');
  let opened = () => {};
  const fences = new GeofencePanel({
    map: ctx.map,
    panel,
    button,
    wrap: ctx.overlay(),
    beforeLayer: 'trail',
    onOpen: () => opened(),
    onExpired: ctx.onExpired,
  });
  opened = ctx.sharePlace('map-right', () => fences.close());
  ctx.claimMapClicks((lngLat, ev) => fences.claimsClick(ev));
  return fences;
}

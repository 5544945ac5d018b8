// Dispatch's panel on the console (mounted through web/console/panels.js's ctx): the incident
// list in the right column, the incident markers on the map, and the dispatcher's panel
// (dispatch.js) over the map. The list shows to users who may read the incidents collection
// (the API leaves it out of /collections otherwise), the create and assign controls to those
// who may dispatch. Every live event of "type": "incident" updates the list, and the panel
// when it concerns what it shows.
//
// mount(ctx) returns { onMessage(msg), refresh(), claimsClick(ev), panel, readable }.

import { fmtTime, tOr } from '../../i18n.js';
import { SessionExpired } from '../../api.js';
import { DispatchPanel, call } from './dispatch.js';

export function mount(ctx) {
  const { el, t, map } = ctx;
  const counter = el('span', { id: 'incident-count', class: 'count' }, '—');
  const newButton = el('button', { id: 'incident-new', class: 'btn small primary', type: 'button', i18n: 'dsp_new', hidden: true }, t('dsp_new'));
  const root = el('div', { id: 'incident-list', class: 'incident-list' });
  ctx.column('right').append(el('section', { class: 'panel incidents', id: 'incidents-panel' },
    el('h2', {}, el('span', { i18n: 'incidents' }, t('incidents')), newButton, counter),
    root));
  const body = el('div', { id: 'dispatch-body', class: 'dispatch-body' });
  const closeButton = el('button', { class: 'close', id: 'dispatch-close', type: 'button', 'data-i18n-title': 'close', title: t('close') }, '×');
  const floating = el('div', { id: 'dispatch-panel', class: 'floating dispatch-panel', hidden: true }, closeButton, body);
  ctx.overlay().append(floating);

  // The API lists only the collections this user may read.
  const readable = ctx.collections.some((c) => c.id === 'incidents');
  const byId = new Map();
  let timer = null;
  let selected = null;

  const panel = readable ? new DispatchPanel({
    map,
    panel: floating,
    body,
    closeButton,
    wrap: ctx.overlay(),
    onExpired: ctx.onExpired,
    onCreated: (made) => { byId.set(String(made.id), made); draw(); },
    onSelected: (id) => { selected = id == null ? null : String(id); draw(); },
  }) : null;

  if (panel && panel.canDispatch) {
    newButton.hidden = false;
    newButton.addEventListener('click', () => panel.openNew());
  }

  function sourceData() {
    return {
      type: 'FeatureCollection',
      features: [...byId.values()].filter((i) => !i.closed_at && i.lon != null).map((i) => ({
        type: 'Feature',
        id: i.id,
        properties: { id: i.id, priority: i.priority, selected: String(i.id) === selected ? 1 : 0 },
        geometry: { type: 'Point', coordinates: [i.lon, i.lat] },
      })),
    };
  }

  function typeName(code) {
    return panel ? panel.typeName(code) : code;
  }

  function row(i) {
    return el('div', { class: `in-row pri-${i.priority}${String(i.id) === selected ? ' selected' : ''}`, dataset: { incident: String(i.id) } },
      el('span', { class: 'in-pri' }, `P${i.priority}`),
      el('div', { class: 'in-body' },
        el('div', { class: 'in-type' }, `#${i.id} ${typeName(i.incident_type)} `,
          el('span', { class: `in-status st-${i.status}` }, tOr(`dsp_inc.${i.status}`, i.status)),
          i.joint ? [' ', el('span', { class: 'in-joint' }, t('dsp_joint'))] : null),
        el('div', { class: 'in-meta' },
          `${fmtTime(Date.parse(i.created_at))} · ${[i.district, i.address || i.description].filter(Boolean).join(' · ')}`)));
  }

  function draw() {
    const open = [...byId.values()].filter((i) => !i.closed_at).sort(
      (a, b) => (a.priority ?? 9) - (b.priority ?? 9)
        || String(b.created_at).localeCompare(String(a.created_at)),
    );
    counter.textContent = readable ? String(open.length) : '—';
    if (!readable) {
      root.replaceChildren(el('div', { class: 'in-empty' }, t('incidents_forbidden')));
      return;
    }
    root.replaceChildren(...(open.length
      ? open.slice(0, 200).map(row)
      : [el('div', { class: 'in-empty' }, t('incidents_none'))]));
    const src = map.getSource('incidents-live');
    if (src) src.setData(sourceData());
  }

  async function load() {
    if (!readable) { draw(); return; }
    try {
      if (panel) await panel.ensurePlans().catch(() => null);
      const list = await call('/dispatch/incidents?state=open&limit=500');
      byId.clear();
      for (const i of list) byId.set(String(i.id), i);
    } catch (err) {
      if (err instanceof SessionExpired) ctx.onExpired(err.message);
      else console.warn('incidents:', err.message);
    }
    draw();
  }

  // After a reconnect: the list and whatever the panel shows, since events may have been missed.
  async function refresh() {
    await load();
    if (panel) panel.refresh();
  }

  if (readable) {
    map.addSource('incidents-live', { type: 'geojson', data: sourceData() });
    map.addLayer({
      id: 'incidents-live', type: 'circle', source: 'incidents-live',
      paint: {
        'circle-radius': ['case', ['==', ['get', 'selected'], 1], 11, 8],
        'circle-color': ['match', ['get', 'priority'], 1, '#f03e3e', 2, '#ff8c1a', 3, '#f5c542', '#3fa9f5'],
        'circle-stroke-color': '#fff',
        'circle-stroke-width': ['case', ['==', ['get', 'selected'], 1], 3, 2],
      },
    });
    // The panel's route layers go under the incident markers.
    panel.installLayers();
  }

  root.addEventListener('click', (ev) => {
    const hit = ev.target.closest('[data-incident]');
    if (hit && panel) panel.select(hit.dataset.incident);
  });
  ctx.onLang(draw);
  load();

  // A click on the map: the panel's "pick on map" first, then an incident marker.
  function claimsClick(lngLat, ev) {
    if (!panel) return false;
    if (panel.claimsClick(ev)) return true;
    const hits = map.queryRenderedFeatures(ev.point, { layers: ['incidents-live'] });
    if (!hits.length) return false;
    panel.select(hits[0].properties.id);
    return true;
  }
  ctx.claimMapClicks(claimsClick);

  function onMessage(msg) {
    if (!readable || msg.type !== 'incident') return;
    const inc = msg.incident;
    if (inc && inc.id != null) {
      if (inc.closed_at) byId.delete(String(inc.id)); else byId.set(String(inc.id), inc);
      draw();
    } else {
      clearTimeout(timer);
      timer = setTimeout(load, 300); // a burst of changes costs one refetch
    }
    panel.onMessage(msg);
  }
  ctx.onEvent('incident', onMessage);

  return { readable, panel, refresh, claimsClick, onMessage };
}

// Incidents from dispatch: the list in the right column, their markers on the map, and the
// dispatcher's panel (dispatch.js) over the map. Kept apart from the rest of the console so
// dispatch can grow without touching the live map or the alarms.
//
// `mountIncidents(ctx)` returns { onMessage(msg), refresh(), claimsClick(ev), panel, readable }.
// The list shows to users who may read the incidents collection (the API leaves it out of
// /collections otherwise); the create and assign controls to those who may dispatch. Every
// WebSocket message of "type": "incident" updates the list, and the panel when it concerns
// what it shows.

import { t, lang, fmtTime, onLang, tOr } from './i18n.js';
import { escapeHtml } from './layers.js';
import { SessionExpired } from './api.js';
import { DispatchPanel, call } from './dispatch.js';

const $ = (id) => document.getElementById(id);

export function mountIncidents({ root, counter, map, collections, onExpired }) {
  const readable = collections.some((c) => c.id === 'incidents');
  const byId = new Map();
  let timer = null;
  let selected = null;

  const panel = readable ? new DispatchPanel({
    map,
    panel: $('dispatch-panel'),
    body: $('dispatch-body'),
    closeButton: $('dispatch-close'),
    wrap: $('mapwrap'),
    onExpired,
    onCreated: (made) => { byId.set(String(made.id), made); draw(); },
    onSelected: (id) => { selected = id == null ? null : String(id); draw(); },
  }) : null;

  const newButton = $('incident-new');
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

  function draw() {
    const open = [...byId.values()].filter((i) => !i.closed_at).sort(
      (a, b) => (a.priority ?? 9) - (b.priority ?? 9)
        || String(b.created_at).localeCompare(String(a.created_at)),
    );
    counter.textContent = readable ? String(open.length) : '—';
    if (!readable) {
      root.innerHTML = `<div class="in-empty">${escapeHtml(t('incidents_forbidden'))}</div>`;
      return;
    }
    root.innerHTML = open.length
      ? open.slice(0, 200).map((i) => `<div class="in-row pri-${escapeHtml(i.priority)} ${String(i.id) === selected ? 'selected' : ''}" data-incident="${escapeHtml(i.id)}">`
          + `<span class="in-pri">P${escapeHtml(i.priority)}</span>`
          + `<div class="in-body"><div class="in-type">#${escapeHtml(i.id)} ${escapeHtml(typeName(i.incident_type))}`
          + ` <span class="in-status st-${escapeHtml(i.status)}">${escapeHtml(tOr(`dsp_inc.${i.status}`, i.status))}</span>`
          + `${i.joint ? ` <span class="in-joint">${escapeHtml(t('dsp_joint'))}</span>` : ''}</div>`
          + `<div class="in-meta">${escapeHtml(fmtTime(Date.parse(i.created_at)))} · ${escapeHtml([i.district, i.address || i.description].filter(Boolean).join(' · '))}</div></div></div>`).join('')
      : `<div class="in-empty">${escapeHtml(t('incidents_none'))}</div>`;
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
      if (err instanceof SessionExpired) onExpired(err.message);
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
    const row = ev.target.closest('[data-incident]');
    if (row && panel) panel.select(row.dataset.incident);
  });
  onLang(draw);
  load();

  return {
    readable,
    panel,
    refresh,
    // A click on the map: the panel's "pick on map" first, then an incident marker.
    claimsClick(ev) {
      if (!panel) return false;
      if (panel.claimsClick(ev)) return true;
      const hits = map.queryRenderedFeatures(ev.point, { layers: ['incidents-live'] });
      if (!hits.length) return false;
      panel.select(hits[0].properties.id);
      return true;
    },
    onMessage(msg) {
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
    },
    lang: () => lang,
  };
}

// Incidents from dispatch: a panel of its own, kept apart from the rest of the console so the
// dispatch work can grow it without touching the live map or the alarms.
//
// Hook for dispatch: `mountIncidents(ctx)` returns { onMessage(msg), refresh() }. It lists
// /collections/incidents/items when the user may read that collection (the API leaves it out of
// /collections otherwise) and refreshes on every WebSocket message of "type": "incident".
// A message carrying a GeoJSON `feature` (or `incident`) is merged in place without a refetch.

import { api } from './api.js';
import { t, lang, fmtTime, onLang } from './i18n.js';
import { escapeHtml } from './layers.js';

const OPEN = (f) => !f.properties.closed_at;

export function mountIncidents({ root, counter, map, collections, onFocus }) {
  const readable = collections.some((c) => c.id === 'incidents');
  const byId = new Map();
  let timer = null;

  function sourceData() {
    return {
      type: 'FeatureCollection',
      features: [...byId.values()].filter(OPEN),
    };
  }

  function draw() {
    const open = [...byId.values()].filter(OPEN).sort(
      (a, b) => (a.properties.priority ?? 9) - (b.properties.priority ?? 9)
        || String(b.properties.created_at).localeCompare(String(a.properties.created_at)),
    );
    counter.textContent = readable ? String(open.length) : '—';
    if (!readable) {
      root.innerHTML = `<div class="in-empty">${escapeHtml(t('incidents_forbidden'))}</div>`;
      return;
    }
    root.innerHTML = open.length
      ? open.slice(0, 200).map((f) => {
        const p = f.properties;
        return `<div class="in-row pri-${p.priority}" data-incident="${escapeHtml(f.id)}">`
          + `<span class="in-pri">P${escapeHtml(p.priority)}</span>`
          + `<div class="in-body"><div class="in-type">${escapeHtml(p.incident_type)} · ${escapeHtml(p.status)}</div>`
          + `<div class="in-meta">${fmtTime(Date.parse(p.created_at))} · ${escapeHtml(p.address || p.description || '')}</div></div></div>`;
      }).join('')
      : `<div class="in-empty">${escapeHtml(t('incidents_none'))}</div>`;
    const src = map.getSource('incidents-live');
    if (src) src.setData(sourceData());
  }

  async function refresh() {
    if (!readable) { draw(); return; }
    try {
      const fc = await api('/collections/incidents/items?limit=500');
      byId.clear();
      for (const f of fc.features) byId.set(String(f.id), f);
    } catch (err) {
      console.warn('incidents:', err.message);
    }
    draw();
  }

  if (readable) {
    map.addSource('incidents-live', { type: 'geojson', data: sourceData() });
    map.addLayer({
      id: 'incidents-live', type: 'circle', source: 'incidents-live',
      paint: {
        'circle-radius': 9, 'circle-color': '#f03e3e', 'circle-stroke-color': '#fff',
        'circle-stroke-width': 2,
      },
    });
  }

  root.addEventListener('click', (ev) => {
    const row = ev.target.closest('[data-incident]');
    const f = row && byId.get(row.dataset.incident);
    if (f && f.geometry) onFocus(f.geometry.coordinates, f);
  });
  onLang(draw);
  refresh();

  return {
    readable,
    refresh,
    onMessage(msg) {
      if (!readable || msg.type !== 'incident') return;
      const f = msg.feature || msg.incident;
      if (f && f.type === 'Feature' && f.id != null) {
        byId.set(String(f.id), f);
        draw();
        return;
      }
      clearTimeout(timer);
      timer = setTimeout(refresh, 300); // a burst of changes costs one refetch
    },
    lang: () => lang,
  };
}

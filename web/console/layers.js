// The base map and the catalog layers: MapLibre style built from /collections, and the layer
// panel with its legend. Every tile and every feature comes from the platform itself.

import { t, tOr, lang, onLang } from './i18n.js';
import { KINDS, isMobile, kindColor } from './kinds.js';
import { el } from './dom.js';

// Layers drawn from live data elsewhere on the page, not from tiles.
const LIVE_COLLECTIONS = new Set(['device_states', 'alarms', 'incidents']);
const DEFAULT_ON = new Set([
  'districts', 'city', 'rivers', 'roads', 'towns', 'fire_stations', 'hospitals', 'police_stations',
]);
// Labelled layers and the zoom from which their names are shown.
const LABEL_ZOOM = { towns: 8.5, rivers: 9, roads: 12.5 };
const POI_LABEL_ZOOM = 11.5;
const GROUP_ORDER = ['operations', 'sensors', 'facilities', 'environment', 'analysis', 'registry', 'base', 'user'];
const FONT_STACK = ['Noto Sans CJK SC Regular'];
// Map text grows with the page (rem): 1 at 1920 px wide, 2 on a 4K wall.
const TEXT_SCALE = Math.min(2.5, Math.max(0.8, (parseFloat(getComputedStyle(document.documentElement).fontSize) || 16) / 16));

function luminance(hex) {
  const m = /^#([0-9a-f]{6})$/i.exec(hex || '');
  if (!m) return 0.5;
  const v = parseInt(m[1], 16);
  return (0.299 * (v >> 16) + 0.587 * ((v >> 8) & 255) + 0.114 * (v & 255)) / 255;
}

// The catalog's colours are chosen for paper; on the dark wall the darkest ones are lifted.
export function forDark(color) {
  if (typeof color !== 'string' || !color.startsWith('#') || color.length !== 7) return color;
  const l = luminance(color);
  if (l >= 0.42) return color;
  const v = parseInt(color.slice(1), 16);
  const mix = (c) => Math.round(c + (255 - c) * (0.42 - l) * 1.6);
  const r = mix(v >> 16), g = mix((v >> 8) & 255), b = mix(v & 255);
  return `#${((1 << 24) | (r << 16) | (g << 8) | b).toString(16).slice(1)}`;
}

function transparent(fill) {
  return !fill || /^rgba\(\s*0\s*,\s*0\s*,\s*0\s*,\s*0(\.0+)?\s*\)$/.test(fill);
}

const POINT_COUNT_GROWTH = ['min', 2.5, ['+', 1, ['*', 0.3, ['ln', ['coalesce', ['get', 'point_count'], 1]]]]];

export function layerColor(c) {
  const s = c['x-changzhi'].style || {};
  return forDark(s.color || s.stroke || (transparent(s.fill) ? '#8ab4d8' : s.fill));
}

function tileUrl(id) {
  return `${location.origin}/collections/${id}/tiles/WebMercatorQuad/{z}/{y}/{x}`;
}

// MapLibre layers for one collection, bottom to top.
export function styleLayers(c) {
  const x = c['x-changzhi'];
  const s = x.style || {};
  const id = c.id;
  const base = { source: `c-${id}`, 'source-layer': id, minzoom: x.min_zoom || 0 };
  const out = [];
  const geom = x.geometry_type || '';
  if (geom.endsWith('Polygon')) {
    if (!transparent(s.fill)) {
      let fill = forDark(s.fill);
      if (s.by === 'population') {
        fill = ['interpolate', ['linear'], ['coalesce', ['get', 'population'], 0],
          0, 'rgba(192,57,43,0)', 200, 'rgba(231,76,60,0.25)', 2000, 'rgba(231,76,60,0.55)',
          10000, 'rgba(255,120,80,0.8)'];
      }
      out.push({ ...base, id: `${id}-fill`, type: 'fill', paint: { 'fill-color': fill, 'fill-opacity': s.by === 'population' ? 1 : (s.opacity ?? 0.6) } });
    }
    if (s.stroke || transparent(s.fill)) {
      out.push({
        ...base, id: `${id}-line`, type: 'line',
        paint: {
          'line-color': forDark(s.stroke || '#8ab4d8'),
          'line-width': (s.width || 1) * (id === 'districts' ? 1.4 : 1),
          'line-opacity': 0.9,
        },
      });
    }
  } else if (geom.endsWith('LineString')) {
    let color = forDark(s.stroke || s.color || '#8a8f98');
    let width = s.width || 1;
    if (s.by && s.classes) {
      const colorExpr = ['match', ['get', s.by]];
      const widthExpr = ['match', ['get', s.by]];
      for (const [k, v] of Object.entries(s.classes)) {
        colorExpr.push(k, forDark(v.stroke || color));
        widthExpr.push(k, v.width || width);
      }
      colorExpr.push(color);
      widthExpr.push(width);
      color = colorExpr;
      width = widthExpr;
    }
    out.push({
      ...base, id: `${id}-line`, type: 'line',
      layout: { 'line-cap': 'round', 'line-join': 'round' },
      paint: { 'line-color': color, 'line-width': width, 'line-opacity': id === 'roads' ? 0.75 : 0.9 },
    });
  } else {
    let color = layerColor(c);
    if (s.by && !s.classes) {
      // A monitoring site is coloured as its kind is everywhere else (GET /apps).
      const values = id === 'monitoring_sites' ? KINDS.filter((k) => !isMobile(k)) : null;
      if (values && values.length) {
        color = ['match', ['get', s.by]];
        values.forEach((v) => color.push(v, forDark(kindColor(v))));
        color.push(layerColor(c));
      }
    }
    out.push({
      ...base, id: `${id}-circle`, type: 'circle',
      paint: {
        'circle-color': color,
        // On small scales a tile sends one point per pixel cell with point_count, the points it
        // stands for: its circle grows with the log of that, so density still reads.
        'circle-radius': ['interpolate', ['linear'], ['zoom'],
          6, ['*', (s.radius || 5) * 0.6, POINT_COUNT_GROWTH], 12, ['*', (s.radius || 5) * 1.2, POINT_COUNT_GROWTH]],
        'circle-stroke-color': '#0b1622',
        'circle-stroke-width': 1.2,
        'circle-opacity': 0.95,
      },
    });
  }
  return out;
}

function labelLayer(c) {
  const x = c['x-changzhi'];
  if (!x.label || c.id === 'districts' || c.id === 'city') return null;
  const geom = x.geometry_type || '';
  const minzoom = LABEL_ZOOM[c.id] ?? (x.group === 'facilities' ? POI_LABEL_ZOOM : 12);
  const field = lang === 'en' && x.label_en ? ['coalesce', ['get', x.label_en], ['get', x.label]] : ['get', x.label];
  return {
    id: `${c.id}-label`, type: 'symbol', source: `c-${c.id}`, 'source-layer': c.id, minzoom,
    layout: {
      'text-field': field,
      'text-font': FONT_STACK,
      'text-size': (c.id === 'towns' ? 14 : 12) * TEXT_SCALE,
      'symbol-placement': geom.endsWith('LineString') ? 'line' : 'point',
      'text-offset': geom === 'Point' ? [0, 1.0] : [0, 0],
      'text-anchor': geom === 'Point' ? 'top' : 'center',
      'text-max-width': 8,
      'text-optional': true,
    },
    paint: { 'text-color': '#dfe8f2', 'text-halo-color': '#0b1622', 'text-halo-width': 1.6 },
  };
}

export class LayerManager {
  constructor(map, collections, panel) {
    this.map = map;
    this.collections = collections.filter((c) => !LIVE_COLLECTIONS.has(c.id));
    this.byId = new Map(collections.map((c) => [c.id, c]));
    this.panel = panel;
    this.on = new Set([...DEFAULT_ON].filter((id) => this.byId.has(id)));
    this.districtLabels = null;
    onLang(() => { this.relabel(); this.renderPanel(); });
  }

  visible(id) { return this.on.has(id); }

  install(beforeId) {
    const map = this.map;
    const ordered = [...this.collections].sort(
      (a, b) => (a['x-changzhi'].style?.order ?? 50) - (b['x-changzhi'].style?.order ?? 50),
    );
    for (const c of ordered) {
      map.addSource(`c-${c.id}`, { type: 'vector', tiles: [tileUrl(c.id)], minzoom: 0, maxzoom: 16 });
      for (const layer of styleLayers(c)) {
        layer.layout = { ...(layer.layout || {}), visibility: this.on.has(c.id) ? 'visible' : 'none' };
        map.addLayer(layer, beforeId);
      }
    }
    for (const c of ordered) {
      const label = labelLayer(c);
      if (label) {
        label.layout.visibility = this.on.has(c.id) ? 'visible' : 'none';
        map.addLayer(label, beforeId);
      }
    }
    this.installDistrictLabels(beforeId);
  }

  // District names once per district (tile-cut polygons would repeat them), at a point inside.
  async installDistrictLabels(beforeId) {
    if (!this.byId.has('districts')) return;
    const res = await fetch('/collections/districts/items?limit=100');
    if (!res.ok) return;
    const fc = await res.json();
    const points = fc.features.map((f) => ({
      type: 'Feature',
      properties: { name_zh: f.properties.name_zh, name_en: f.properties.name_en },
      geometry: { type: 'Point', coordinates: labelPoint(f.geometry) },
    }));
    this.districtLabels = { type: 'FeatureCollection', features: points };
    this.districtFeatures = fc.features;
    this.map.addSource('district-labels', { type: 'geojson', data: this.districtLabels });
    this.map.addLayer({
      id: 'districts-label', type: 'symbol', source: 'district-labels',
      layout: {
        'text-field': lang === 'en' ? ['get', 'name_en'] : ['get', 'name_zh'],
        'text-font': FONT_STACK,
        'text-size': ['interpolate', ['linear'], ['zoom'], 7, 13 * TEXT_SCALE, 10, 18 * TEXT_SCALE],
        'text-letter-spacing': 0.08,
        visibility: this.on.has('districts') ? 'visible' : 'none',
      },
      paint: { 'text-color': '#f1d38a', 'text-halo-color': '#08111b', 'text-halo-width': 2 },
    }, beforeId);
  }

  relabel() {
    const map = this.map;
    if (map.getLayer('districts-label')) {
      map.setLayoutProperty('districts-label', 'text-field', lang === 'en' ? ['get', 'name_en'] : ['get', 'name_zh']);
    }
    for (const c of this.collections) {
      const label = labelLayer(c);
      if (label && map.getLayer(label.id)) map.setLayoutProperty(label.id, 'text-field', label.layout['text-field']);
    }
  }

  setVisible(id, on) {
    if (on) this.on.add(id); else this.on.delete(id);
    const vis = on ? 'visible' : 'none';
    for (const suffix of ['fill', 'line', 'circle', 'label']) {
      const lid = `${id}-${suffix}`;
      if (this.map.getLayer(lid)) this.map.setLayoutProperty(lid, 'visibility', vis);
    }
    this.renderPanel();
  }

  // The panel: groups of layers with a legend swatch each; restricted ones say so.
  renderPanel() {
    const groups = new Map();
    for (const c of this.collections) {
      const g = c['x-changzhi'].group || 'user';
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(c);
    }
    const order = [...groups.keys()].sort((a, b) => {
      const ia = GROUP_ORDER.indexOf(a), ib = GROUP_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    });
    this.panel.replaceChildren(...order.map((g) => el('div', { class: 'lp-group' },
      el('h4', {}, tOr(`group.${g}`, g)),
      groups.get(g).map((c) => {
        const x = c['x-changzhi'];
        return el('label', { class: 'lp-row', dataset: { layer: c.id } },
          el('input', { type: 'checkbox', dataset: { layerToggle: c.id }, checked: this.on.has(c.id) }),
          swatch(c),
          el('span', { class: 'lp-name' }, lang === 'en' ? x.title_en : c.title),
          x.restricted ? el('span', { class: 'lp-tag' }, t('restricted')) : null);
      }))));
  }
}

function swatch(c) {
  const x = c['x-changzhi'];
  const s = x.style || {};
  const geom = x.geometry_type || '';
  // Colours go through the style object, so a catalog value is a colour or nothing at all.
  const span = (cls, style) => {
    const node = el('span', { class: `sw ${cls}` });
    Object.assign(node.style, style);
    return node;
  };
  if (geom.endsWith('Polygon')) {
    const fill = transparent(s.fill) ? 'transparent' : forDark(s.fill);
    return span('sw-area', { borderColor: forDark(s.stroke || '#8ab4d8'), background: fill });
  }
  if (geom.endsWith('LineString')) {
    if (s.classes) {
      const parts = Object.values(s.classes).map((v) => forDark(v.stroke)).slice(0, 3);
      return span('sw-line', { background: `linear-gradient(90deg,${parts.join(',')})` });
    }
    return span('sw-line', { background: forDark(s.stroke || '#888') });
  }
  return span('sw-dot', { background: layerColor(c) });
}

// A label point inside a (multi)polygon: the largest ring's vertex average, moved inside if
// it falls out (good enough for districts; no dependency needed).
function labelPoint(geometry) {
  const polys = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
  let best = null, bestArea = -1;
  for (const poly of polys) {
    const ring = poly[0];
    let a = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      a += (ring[j][0] * ring[i][1]) - (ring[i][0] * ring[j][1]);
    }
    if (Math.abs(a) > bestArea) { bestArea = Math.abs(a); best = ring; }
  }
  if (!best) return [0, 0];
  let cx = 0, cy = 0, a6 = 0;
  for (let i = 0, j = best.length - 1; i < best.length; j = i++) {
    const f = best[j][0] * best[i][1] - best[i][0] * best[j][1];
    cx += (best[j][0] + best[i][0]) * f;
    cy += (best[j][1] + best[i][1]) * f;
    a6 += f * 3;
  }
  const p = a6 ? [cx / a6, cy / a6] : best[0];
  if (inside(p, best)) return p;
  // Concave shapes: scan a horizontal line through the centroid for the widest inside span.
  const xs = [];
  for (let i = 0, j = best.length - 1; i < best.length; j = i++) {
    const [x1, y1] = best[j], [x2, y2] = best[i];
    if ((y1 > p[1]) !== (y2 > p[1])) xs.push(x1 + ((p[1] - y1) / (y2 - y1)) * (x2 - x1));
  }
  xs.sort((u, v) => u - v);
  let span = [best[0][0], best[0][0]];
  for (let i = 0; i + 1 < xs.length; i += 2) if (xs[i + 1] - xs[i] > span[1] - span[0]) span = [xs[i], xs[i + 1]];
  return [(span[0] + span[1]) / 2, p[1]];
}

function inside([x, y], ring) {
  let hit = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

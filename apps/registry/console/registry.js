// The registry panel: find a right by licence or holder, see its history, and draw an
// application's findings on the map. DOM through ctx.el only (never innerHTML with data).
import { SessionExpired } from '../../api.js';

const SRC_RIGHT = 'registry-right';
const SRC_FINDINGS = 'registry-findings';
const EMPTY = { type: 'FeatureCollection', features: [] };

function ensureLayers(map) {
  if (!map.getSource(SRC_RIGHT)) {
    map.addSource(SRC_RIGHT, { type: 'geojson', data: EMPTY });
    map.addLayer({ id: 'registry-right-line', type: 'line', source: SRC_RIGHT,
      paint: { 'line-color': '#1677ff', 'line-width': 2 } });
  }
  if (!map.getSource(SRC_FINDINGS)) {
    map.addSource(SRC_FINDINGS, { type: 'geojson', data: EMPTY });
    map.addLayer({ id: 'registry-findings-fill', type: 'fill', source: SRC_FINDINGS,
      paint: { 'fill-color': ['match', ['get', 'status'], 'open', '#f5222d', '#faad14'],
               'fill-opacity': 0.45 } });
  }
}

function day(text) {
  return text ? String(text).slice(0, 10) : '';
}

function fit(map, geometries) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const walk = (c) => {
    if (typeof c[0] === 'number') {
      x0 = Math.min(x0, c[0]); y0 = Math.min(y0, c[1]);
      x1 = Math.max(x1, c[0]); y1 = Math.max(y1, c[1]);
    } else c.forEach(walk);
  };
  geometries.forEach((g) => g && walk(g.coordinates));
  if (x0 < x1) map.fitBounds([[x0, y0], [x1, y1]], { padding: 40, maxZoom: 14 });
}

export function mount(ctx) {
  const { el, t, map } = ctx;
  const input = el('input', { type: 'search', placeholder: t('search') });
  const results = el('ul', { class: 'registry-results' });
  const history = el('table', { class: 'registry-history' });
  const appInput = el('input', { type: 'number', min: '1', placeholder: t('application') });
  const findings = el('ul', { class: 'registry-findings' });
  const found = el('p', { class: 'muted registry-found' });
  const error = el('p', { class: 'error registry-error' });
  // Words that follow the language: [node, key] (placeholders by attribute).
  const words = [];
  const word = (node, key) => { words.push([node, key]); return node; };
  const box = el('section', { class: 'panel', id: 'registry-panel' },
    word(el('h2', { text: t('title') }), 'title'),
    el('form', { class: 'registry-find' }, input, word(el('button', { class: 'btn small', text: t('find') }), 'find')),
    found, error, results, word(el('h3', { text: t('history') }), 'history'), history,
    el('form', { class: 'registry-app' }, appInput, word(el('button', { class: 'btn small', text: t('show') }), 'show')),
    word(el('h3', { text: t('findings') }), 'findings'), findings);
  // A failed request says why in the panel, not as an unhandled rejection.
  const guard = (fn) => async (...args) => {
    try { error.textContent = ''; await fn(...args); } catch (err) {
      if (err instanceof SessionExpired) ctx.onExpired(err.message);
      else error.textContent = t('error', { detail: err.message || String(err) });
    }
  };
  ctx.column('right').append(box);
  if (map) ensureLayers(map);

  const showHistory = guard(async (licence) => {
    const h = await ctx.api(`/registry/rights/${encodeURIComponent(licence)}/history`);
    history.replaceChildren(el('tr', {},
      ...['valid_from', 'valid_to', 'recorded', 'holder'].map((k) => el('th', { text: t(k) }))));
    for (const v of h.versions) {
      history.append(el('tr', { class: v.recorded_to ? 'superseded' : 'held' },
        el('td', { text: day(v.valid_from) }),
        el('td', { text: v.valid_to ? day(v.valid_to) : t('open') }),
        el('td', { text: day(v.recorded_from) }),
        el('td', { text: v.attrs.holder || '' })));
    }
  });

  let lastFound = null;
  const sayFound = () => { found.textContent = lastFound == null ? '' : t('found', { n: lastFound }); };
  box.querySelector('.registry-find').addEventListener('submit', guard(async (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    const rights = await ctx.api(`/registry/rights?q=${encodeURIComponent(q)}`);
    lastFound = rights.length;
    sayFound();
    results.replaceChildren(...(rights.length ? rights.map((r) => {
      const item = el('li', {}, el('a', { href: '#', text: r.license_no }),
        ' ', r.attrs.holder || '', ' ', r.attrs.mineral || '');
      item.querySelector('a').addEventListener('click', (e) => {
        e.preventDefault();
        if (map) {
          map.getSource(SRC_RIGHT).setData({ type: 'Feature', geometry: r.geometry,
            properties: { license_no: r.license_no } });
          fit(map, [r.geometry]);
        }
        showHistory(r.license_no);
      });
      return item;
    }) : [el('li', { text: t('no_match') })]));
  }));

  const showApplication = guard(async (id) => {
    const a = await ctx.api(`/registry/applications/${Number(id)}`);
    findings.replaceChildren(...(a.findings.length ? a.findings.map((f) => el('li',
      { class: `finding-${f.status}` },
      `${f.check_kind} · ${f.other_kind} ${f.other_id} · ${Math.round(f.area_m2)} m² `
      + `(${f.area_mu.toFixed(1)} 亩, ${f.share == null ? '' : (f.share * 100).toFixed(1) + '%'})`
      + ` · ${f.status}`)) : [el('li', { text: t('none') })]));
    if (map) {
      map.getSource(SRC_RIGHT).setData({ type: 'Feature', geometry: a.geometry, properties: {} });
      map.getSource(SRC_FINDINGS).setData({ type: 'FeatureCollection',
        features: a.findings.map((f) => ({ type: 'Feature', geometry: f.geometry,
          properties: { status: f.status, other_id: f.other_id } })) });
      fit(map, [a.geometry]);
    }
  });

  box.querySelector('.registry-app').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (appInput.value) showApplication(appInput.value);
  });
  ctx.onEvent('application', (e) => {
    if (String(e.id) === appInput.value) showApplication(e.id);
  });
  ctx.onLang(() => {
    for (const [node, key] of words) node.textContent = t(key);
    input.placeholder = t('search');
    appInput.placeholder = t('application');
    sayFound();
  });
  return { box };
}

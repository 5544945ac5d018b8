// The flood panel: rain surface with a window picker and the areal table, a gauge's
// hydrograph (observed, forecast, warning and danger lines), the inundation drape with its
// affected table, and the evacuation routes. Everything from /flood/...; DOM built with
// ctx.el only (names and ids come from the database: never HTML).
import * as echarts from '../../vendor/echarts/echarts.esm.min.mjs';

const SRC = { rain: 'flood-rain', flooded: 'flood-flooded', routes: 'flood-routes' };
const RAIN_COLORS = ['#e6f4ff', '#bae0ff', '#69b1ff', '#1677ff', '#0958d9', '#722ed1', '#c41d7f'];
const DEPTH_COLORS = { 1: '#bae0ff', 2: '#4096ff', 3: '#0958d9', 4: '#10239e' };

function setData(map, id, data, layers) {
  const src = map.getSource(id);
  if (src) { src.setData(data); return; }
  map.addSource(id, { type: 'geojson', data });
  for (const layer of layers) map.addLayer({ ...layer, source: id });
}

function table(ctx, head, rows) {
  return ctx.el('table', { class: 'flood-table' },
    ctx.el('thead', {}, ctx.el('tr', {}, ...head.map((h) => ctx.el('th', { text: h })))),
    ctx.el('tbody', {}, ...rows.map((r) => ctx.el('tr', {}, ...r.map((c) => ctx.el('td', { text: String(c ?? '—') }))))));
}

function select(ctx, values, label, current) {
  const s = ctx.el('select', {}, ...values.map((v) => ctx.el('option', { attrs: { value: v }, text: label(v) })));
  s.value = current;
  return s;
}

export function mount(ctx) {
  const { map } = ctx;
  const box = ctx.el('section', { class: 'panel', attrs: { id: 'flood-panel' } });
  ctx.column('right').append(box);
  const state = { window: '3h', method: 'kriging', gauge: null, chart: null };

  // ---- rain
  const rainInfo = ctx.el('div', { class: 'flood-note' });
  const rainTable = ctx.el('div');
  const win = select(ctx, ['1h', '3h', '6h', '24h'], (v) => v, state.window);
  const meth = select(ctx, ['kriging', 'idw', 'thiessen'], (v) => ctx.t(`m_${v}`), state.method);
  async function loadRain() {
    state.window = win.value; state.method = meth.value;
    try {
      const r = await ctx.api(`/flood/rain?window=${encodeURIComponent(state.window)}&method=${encodeURIComponent(state.method)}`);
      rainInfo.textContent = ctx.t('max_mm', { mm: r.grid.max_mm, mean: r.grid.mean_mm, method: ctx.t(`m_${r.method}`) })
        + (r.silent.length ? ` · ${ctx.t('silent', { n: r.silent.length })}` : '');
      const bands = { type: 'FeatureCollection', features: r.isohyets.features.filter((f) => f.properties.kind === 'band') };
      const stops = bands.features.flatMap((f, i) => [f.properties.min_mm, RAIN_COLORS[Math.min(i, RAIN_COLORS.length - 1)]]);
      setData(map, SRC.rain, bands, [{
        id: 'flood-rain-fill', type: 'fill',
        paint: { 'fill-opacity': 0.45, 'fill-color': stops.length ? ['step', ['get', 'min_mm'], RAIN_COLORS[0], ...stops] : RAIN_COLORS[0] },
      }]);
      rainTable.replaceChildren(table(ctx, [ctx.t('district'), ctx.t('mm')], r.districts.map((d) => [d.name_zh, d.mm])),
        table(ctx, [ctx.t('catchment'), ctx.t('mm')], r.catchments.map((c) => [c.name_zh, c.mm])));
    } catch (e) { rainInfo.textContent = e.message; rainTable.replaceChildren(); }
  }
  win.addEventListener('change', loadRain);
  meth.addEventListener('change', loadRain);

  // ---- gauge hydrograph
  const gaugeSel = ctx.el('select');
  const gaugeInfo = ctx.el('div', { class: 'flood-note' });
  const chartEl = ctx.el('div', { class: 'flood-chart', attrs: { style: 'height:220px' } });
  async function loadGauges() {
    const rain = await ctx.api('/flood/rain?window=1h&method=idw').catch(() => null);
    const ids = rain ? rain.catchments.map((c) => [c.site_id, c.name_zh]) : [];
    gaugeSel.replaceChildren(...ids.map(([id, name]) => ctx.el('option', { attrs: { value: id }, text: `${name} ${id}` })));
    if (ids.length) { gaugeSel.value = ids[0][0]; loadForecast(); }
  }
  async function loadForecast() {
    try {
      const f = await ctx.api(`/flood/gauges/${encodeURIComponent(gaugeSel.value)}/forecast`);
      const n = f.observed_m.length;
      const times = f.times.map((t) => new Date(t).toLocaleTimeString(ctx.lang() === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit' }));
      const line = (name, data, color, dashed) => ({ name, type: 'line', data, showSymbol: false, lineStyle: { color, type: dashed ? 'dashed' : 'solid' }, itemStyle: { color } });
      const flat = (v) => times.map(() => v);
      state.chart = state.chart || echarts.init(chartEl);
      state.chart.setOption({
        tooltip: { trigger: 'axis' }, legend: { top: 0 }, grid: { left: 40, right: 10, top: 28, bottom: 24 },
        xAxis: { type: 'category', data: times }, yAxis: { type: 'value', scale: true, name: 'm' },
        series: [
          line(ctx.t('observed'), [...f.observed_m, ...Array(f.forecast_m.length).fill(null)], '#1677ff'),
          line(ctx.t('forecast'), [...Array(n - 1).fill(null), f.observed_m[n - 1], ...f.forecast_m], '#fa8c16', true),
          ...(f.warning_m != null ? [line(ctx.t('warning'), flat(f.warning_m), '#faad14', true)] : []),
          ...(f.danger_m != null ? [line(ctx.t('danger'), flat(f.danger_m), '#f5222d', true)] : []),
        ],
      }, true);
      gaugeInfo.textContent = f.warning_at ? ctx.t('warn_at', { time: new Date(f.warning_at).toLocaleString() }) : ctx.t('no_warn');
    } catch (e) { gaugeInfo.textContent = e.message; }
  }
  gaugeSel.addEventListener('change', loadForecast);

  // ---- inundation and evacuation
  const rise = ctx.el('input', { attrs: { type: 'number', min: '0.1', max: '30', step: '0.5', value: '3' } });
  const affected = ctx.el('div');
  const legend = ctx.el('div', { class: 'flood-legend' }, ctx.el('span', { text: ctx.t('depth_legend') }),
    ...Object.entries(DEPTH_COLORS).map(([k, c]) => ctx.el('span', { attrs: { style: `background:${c}` }, text: ['<0.5', '0.5–1.5', '1.5–3', '>3'][k - 1] })));
  const scenario = () => ({ rise_m: Number(rise.value) });
  async function inundate(body) {
    try {
      const r = await ctx.api('/flood/inundation', { method: 'POST', body: JSON.stringify(body) });
      setData(map, SRC.flooded, r.flooded, [{
        id: 'flood-flooded-fill', type: 'fill',
        paint: { 'fill-opacity': 0.6, 'fill-color': ['match', ['get', 'class'], 1, DEPTH_COLORS[1], 2, DEPTH_COLORS[2], 3, DEPTH_COLORS[3], DEPTH_COLORS[4]] },
      }]);
      affected.replaceChildren(
        ctx.el('div', { class: 'flood-note', text: ctx.t('area', { km2: r.area_km2, depth: r.max_depth_m }) }),
        ctx.el('div', { class: 'flood-note', text: ctx.t('roads', { n: r.roads_closed }) }),
        table(ctx, [ctx.t('district'), ctx.t('people')], r.districts.map((d) => [d.name_zh, d.people])),
        table(ctx, [ctx.t('pois'), ''], r.pois.slice(0, 30).map((p) => [p.name_zh, `${p.depth_m} m`])));
    } catch (e) { affected.replaceChildren(ctx.el('div', { class: 'flood-error', text: e.message })); }
  }
  async function evacuate() {
    try {
      const r = await ctx.api('/flood/evacuation', { method: 'POST', body: JSON.stringify({ ...scenario(), routes: 100 }) });
      setData(map, SRC.routes, r.routes, [{ id: 'flood-routes-line', type: 'line', paint: { 'line-color': '#52c41a', 'line-width': 2.5 } }]);
      affected.append(ctx.el('div', { class: 'flood-note', text: ctx.t('assigned', { n: r.assigned, left: r.unassigned, min: r.mean_travel_min ?? '—' }) }),
        table(ctx, [ctx.t('district'), ctx.t('people'), ctx.t('evacuate')], r.districts.map((d) => [d.name_zh, d.people, d.assigned])));
    } catch (e) { affected.append(ctx.el('div', { class: 'flood-error', text: e.message })); }
  }
  async function clear() {
    try { await ctx.api('/flood/inundation', { method: 'DELETE' }); } catch (e) { affected.textContent = e.message; return; }
    for (const id of [SRC.flooded, SRC.routes]) map.getSource(id)?.setData({ type: 'FeatureCollection', features: [] });
    affected.replaceChildren();
  }
  const button = (key, fn) => { const b = ctx.el('button', { text: ctx.t(key) }); b.addEventListener('click', fn); return b; };

  function render() {
    box.replaceChildren(
      ctx.el('h2', { text: ctx.t('title') }),
      ctx.el('h3', { text: ctx.t('rain') }),
      ctx.el('label', {}, ctx.t('window'), win), ctx.el('label', {}, ctx.t('method'), meth),
      button('refresh', loadRain), rainInfo, rainTable,
      ctx.el('h3', { text: ctx.t('gauges') }), gaugeSel, chartEl, gaugeInfo,
      ctx.el('h3', { text: ctx.t('inundation') }),
      ctx.el('label', {}, ctx.t('rise'), rise),
      button('run', () => inundate(scenario())), button('observed_stage', () => inundate({ observed: true })),
      button('evacuate', evacuate), button('clear', clear), legend, affected);
  }
  render();
  ctx.onLang(() => { render(); loadRain(); if (gaugeSel.value) loadForecast(); });
  ctx.onEvent('inundation', () => loadRain());
  ctx.onReconnect(() => loadRain());
  ctx.toolbarButton('flood-toggle', 'button', () => box.scrollIntoView({ behavior: 'smooth' }));
  loadRain();
  loadGauges();
  return { box };
}

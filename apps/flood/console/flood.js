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
  const s = ctx.el('select', {}, ...values.map((v) => ctx.el('option', { value: v, text: label(v) })));
  s.value = current;
  return s;
}

export function mount(ctx) {
  const { map } = ctx;
  const box = ctx.el('section', { class: 'panel', id: 'flood-panel' });
  ctx.column('right').append(box);
  const state = { window: '3h', method: 'kriging', gauge: null, chart: null };

  // ---- rain
  const rainInfo = ctx.el('div', { class: 'flood-note' });
  const rainTable = ctx.el('div');
  const win = select(ctx, ['1h', '3h', '6h', '24h'], (v) => v, state.window);
  const meth = select(ctx, ['kriging', 'idw', 'thiessen'], (v) => ctx.t(`m_${v}`), state.method);
  const WINDOW_H = { '1h': 1, '3h': 3, '6h': 6, '24h': 24 };
  // Whether a device reported since `ms` ago (its latest reading, as GET /devices says).
  const reported = (d, ms) => d.ts != null && Date.now() - Date.parse(d.ts) < ms;
  async function loadRain() {
    state.window = win.value; state.method = meth.value;
    try {
      // No gauge reported in the window: there is no surface to draw, and asking for one
      // would only be refused; say so instead.
      const gauges = await ctx.api('/devices?kind=rain');
      if (!gauges.some((d) => reported(d, WINDOW_H[state.window] * 3600e3))) {
        state.rainError = 'silent';
        rainInfo.textContent = ctx.t('rain_silent', { n: gauges.length, window: state.window });
        rainTable.replaceChildren();
        map.getSource(SRC.rain)?.setData({ type: 'FeatureCollection', features: [] });
        return;
      }
      const r = await ctx.api(`/flood/rain?window=${encodeURIComponent(state.window)}&method=${encodeURIComponent(state.method)}`);
      rainInfo.textContent = ctx.t('max_mm', { mm: r.grid.max_mm, mean: r.grid.mean_mm, method: ctx.t(`m_${r.method}`) })
        + (r.silent.length ? ` · ${ctx.t('silent', { n: r.silent.length })}` : '');
      const bands = { type: 'FeatureCollection', features: r.isohyets.features.filter((f) => f.properties.kind === 'band') };
      const stops = bands.features.flatMap((f, i) => [f.properties.min_mm, RAIN_COLORS[Math.min(i, RAIN_COLORS.length - 1)]]);
      setData(map, SRC.rain, bands, [{
        id: 'flood-rain-fill', type: 'fill',
        paint: { 'fill-opacity': 0.3, 'fill-color': stops.length ? ['step', ['get', 'min_mm'], RAIN_COLORS[0], ...stops] : RAIN_COLORS[0] },
      }]);
      rainTable.replaceChildren(table(ctx, [ctx.t('district'), ctx.t('mm')], r.districts.map((d) => [d.name_zh, d.mm])),
        table(ctx, [ctx.t('catchment'), ctx.t('mm')], r.catchments.map((c) => [c.name_zh, c.mm])));
      state.rainError = null;
    } catch (e) {
      // No gauge reported in the window (a dry spell, a quiet network): say so, keep the rest.
      state.rainError = e.message;
      rainInfo.textContent = ctx.t('rain_failed', { detail: e.message });
      rainTable.replaceChildren();
    }
  }
  win.addEventListener('change', loadRain);
  meth.addEventListener('change', loadRain);

  // ---- gauge hydrograph
  const gaugeSel = ctx.el('select');
  const gaugeInfo = ctx.el('div', { class: 'flood-note' });
  const chartEl = ctx.el('div', { class: 'flood-chart', style: 'height:14rem', hidden: true });
  // The water-level gauges are the registered devices of that kind; a forecast is by site.
  async function loadGauges() {
    try {
      const gauges = (await ctx.api('/devices?kind=water_level')).filter((d) => d.site_id);
      gaugeSel.replaceChildren(...gauges.map((d) => ctx.el('option', { value: d.site_id, text: `${d.name_zh} ${d.site_id}` })));
      state.gauges = gauges;
      if (gauges.length) { gaugeSel.value = gauges[0].site_id; loadForecast(); }
      else gaugeInfo.textContent = ctx.t('no_gauges');
    } catch (e) { gaugeInfo.textContent = ctx.t('rain_failed', { detail: e.message }); }
  }
  async function loadForecast() {
    const gauge = (state.gauges || []).find((d) => d.site_id === gaugeSel.value);
    if (gauge && !reported(gauge, 12 * 3600e3)) {
      // No stage in the last 12 hours (the forecast's default look-back): nothing to fit.
      chartEl.hidden = true;
      gaugeInfo.textContent = ctx.t('gauge_silent');
      return;
    }
    try {
      const f = await ctx.api(`/flood/gauges/${encodeURIComponent(gaugeSel.value)}/forecast`);
      const n = f.observed_m.length;
      const times = f.times.map((t) => new Date(t).toLocaleTimeString(ctx.lang() === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit' }));
      const line = (name, data, color, dashed) => ({ name, type: 'line', data, showSymbol: false, lineStyle: { color, type: dashed ? 'dashed' : 'solid' }, itemStyle: { color } });
      const flat = (v) => times.map(() => v);
      state.chart = state.chart || echarts.init(chartEl);
      chartEl.hidden = false;
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
    } catch (e) {
      // A gauge with no readings in the window has no hydrograph: one line instead of a chart.
      chartEl.hidden = true;
      gaugeInfo.textContent = ctx.t('forecast_failed', { detail: e.message });
    }
  }
  gaugeSel.addEventListener('change', loadForecast);

  // ---- inundation and evacuation
  const rise = ctx.el('input', { type: 'number', min: '0.1', max: '30', step: '0.5', value: '3' });
  const affected = ctx.el('div');
  const legend = ctx.el('div', { class: 'flood-legend' }, ctx.el('span', { text: ctx.t('depth_legend') }),
    ...Object.entries(DEPTH_COLORS).map(([k, c]) => ctx.el('span', { style: `background:${c}`, text: ['<0.5', '0.5–1.5', '1.5–3', '>3'][k - 1] })));
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
  const button = (key, fn) => {
    const b = ctx.el('button', { class: 'btn small', type: 'button', text: ctx.t(key) });
    b.addEventListener('click', fn);
    return b;
  };

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
  // Words change with the language; options keep their value, so the choice stays.
  // The data is fetched when the pane is first shown: a wall does not pay for tabs it never opens.
  let loaded = false;
  ctx.onLang(() => {
    for (const o of meth.options) o.textContent = ctx.t(`m_${o.value}`);
    render();
    if (!loaded) return;
    loadRain(); if (gaugeSel.value) loadForecast();
  });
  ctx.onShow(() => {
    if (!loaded) { loaded = true; loadRain(); loadGauges(); }
    if (state.chart) state.chart.resize();
  });
  ctx.onEvent('inundation', () => { if (loaded) loadRain(); });
  ctx.onReconnect(() => { if (loaded) loadRain(); });
  ctx.toolbarButton('flood-toggle', 'button', () => box.scrollIntoView({ behavior: 'smooth' }));
  return { box, state };
}

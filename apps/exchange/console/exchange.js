// The data-exchange panel: the sources and their sync state (sync, apply for access), a
// source joined onto the map as a choropleth or points, and charts of indicators x areas x
// years with a CSV download built in the browser. Everything is built with ctx.el (no HTML
// strings); map sources and layers are prefixed "exchange-".

const EMPTY = { type: 'FeatureCollection', features: [] };
const RAMP = ['#f7fbff', '#c6dbef', '#6baed6', '#2171b5', '#08306b'];
const STATE_COLOURS = { ok: '#52c41a', failed: '#f5222d', running: '#1677ff', new: '#8c8c8c' };
const STAT_ELEMENTS = ['indicator', 'area_code', 'year', 'value'];

function ensureLayers(map) {
  for (const id of ['exchange-areas', 'exchange-points']) {
    if (!map.getSource(id)) map.addSource(id, { type: 'geojson', data: EMPTY });
  }
  if (!map.getLayer('exchange-areas')) {
    map.addLayer({ id: 'exchange-areas', source: 'exchange-areas', type: 'fill',
      paint: { 'fill-color': ['get', 'colour'], 'fill-opacity': 0.7, 'fill-outline-color': '#5b6b7f' } });
  }
  if (!map.getLayer('exchange-points')) {
    map.addLayer({ id: 'exchange-points', source: 'exchange-points', type: 'circle',
      paint: { 'circle-radius': 5, 'circle-color': '#722ed1', 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 1 } });
  }
}

// The class of a value against the quantile breaks, coloured on the ramp.
export function classColour(value, breaks) {
  if (value === null || value === undefined) return '#d9d9d9';
  let k = 0;
  while (k < breaks.length && value > breaks[k]) k += 1;
  return RAMP[Math.min(k, RAMP.length - 1)];
}

function coloured(collection) {
  const breaks = collection.breaks || [];
  return {
    type: 'FeatureCollection',
    features: collection.features.map((f) => ({
      ...f, properties: { ...f.properties, colour: classColour(f.properties.value, breaks) },
    })),
  };
}

function csvText(rows, columns) {
  const cell = (v) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns.join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\n');
}

export function mount(ctx) {
  const { el, t } = ctx;
  const state = { sources: [], joined: null, stats: null, chart: null };

  const errorLine = el('div', { class: 'exchange-error' });
  const sourcesBox = el('div', { class: 'exchange-sources' });
  const mapBox = el('div', { class: 'exchange-map' });
  const statsBox = el('div', { class: 'exchange-stats' });
  const chartEl = el('div', { class: 'exchange-chart', attrs: { style: 'height:240px' } });
  const heading = (key) => el('h3', { text: t(key), dataset: { key } });
  const panel = el('section', { class: 'panel', attrs: { id: 'exchange-panel' } },
    el('h2', {}, el('span', { text: t('exchange.title') })),
    errorLine,
    heading('exchange.sources'), sourcesBox,
    heading('exchange.map'), mapBox,
    heading('exchange.statistics'), statsBox, chartEl);
  ctx.column('left').append(panel);

  const fail = (err) => { errorLine.replaceChildren(t('exchange.error', { detail: err.message || String(err) })); };
  const ok = () => errorLine.replaceChildren();
  const title = (s) => (ctx.lang() === 'en' && s.title_en ? s.title_en : s.title_zh);
  const mine = (s) => ctx.user && (ctx.user.roles.includes('admin') || ctx.user.department === s.owner);

  function button(key, onClick) {
    const b = el('button', { class: 'btn', text: t(key) });
    b.addEventListener('click', onClick);
    return b;
  }

  function renderSources() {
    const rows = state.sources.map((s) => {
      const actions = [];
      if (mine(s)) actions.push(button('exchange.sync', () => sync(s.name)));
      else if (!s.readable && s.shared) actions.push(button('exchange.apply', () => apply(s.name)));
      const stateCell = el('td', { text: t(`exchange.state.${s.state}`) });
      stateCell.style.color = STATE_COLOURS[s.state] || '';
      return el('tr', { dataset: { source: s.name } },
        el('td', { text: title(s) + (s.synthesized ? ` (${t('exchange.synthesized')})` : '') }),
        el('td', { text: s.owner }),
        stateCell,
        el('td', { text: String(s.rows) }),
        el('td', { text: s.last_error || (s.last_refused ? t('exchange.refused', { n: s.last_refused }) : '') }),
        el('td', {}, ...actions));
    });
    sourcesBox.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, ...['exchange.source', 'exchange.owner', 'exchange.state', 'exchange.rows', 'exchange.note', '']
        .map((k) => el('th', { text: k ? t(k) : '' })))),
      el('tbody', {}, ...rows)));
    renderMapForm();
    renderStatsForm();
  }

  function select(options, value) {
    const s = el('select', {}, ...options.map(([v, label]) => el('option', { text: label, attrs: { value: v } })));
    if (value !== undefined) s.value = value;
    return s;
  }

  function renderMapForm() {
    const readable = state.sources.filter((s) => s.readable && s.last_ok_at);
    if (!readable.length) { mapBox.replaceChildren(el('p', { text: t('exchange.none_readable') })); return; }
    const sourceSel = select(readable.map((s) => [s.name, title(s)]));
    const bySel = select([['division', t('exchange.by.division')], ['credit_code', t('exchange.by.credit_code')],
      ['address', t('exchange.by.address')], ['coordinates', t('exchange.by.coordinates')]]);
    const levelSel = select([['town', t('exchange.level.town')], ['district', t('exchange.level.district')]]);
    const keyInput = el('input', { attrs: { placeholder: 'area_code', value: 'area_code', size: '10' } });
    const valueInput = el('input', { attrs: { placeholder: 'value', value: 'value', size: '8' } });
    const result = el('div', { class: 'exchange-join-result' });
    const show = button('exchange.show', async () => {
      const by = bySel.value;
      const q = new URLSearchParams({ by });
      if (by === 'coordinates') { q.set('lon', 'lon'); q.set('lat', 'lat'); } else if (keyInput.value) q.set('key', keyInput.value);
      if (valueInput.value) q.set('value', valueInput.value);
      if (by === 'division') q.set('level', levelSel.value);
      try {
        state.joined = await ctx.api(`/exchange/sources/${encodeURIComponent(sourceSel.value)}/join?${q}`);
        ok();
      } catch (err) { fail(err); return; }
      drawJoined(result);
    });
    const clear = button('exchange.clear', () => { state.joined = null; drawJoined(result); });
    mapBox.replaceChildren(el('div', { class: 'exchange-form' }, sourceSel, bySel, levelSel, keyInput, valueInput, show, clear), result);
  }

  function drawJoined(result) {
    const j = state.joined;
    const areas = ctx.map.getSource('exchange-areas');
    const points = ctx.map.getSource('exchange-points');
    if (!j) {
      if (areas) areas.setData(EMPTY);
      if (points) points.setData(EMPTY);
      result.replaceChildren();
      return;
    }
    if (areas) areas.setData(j.kind === 'choropleth' ? coloured(j) : EMPTY);
    if (points) points.setData(j.kind === 'points' ? j : EMPTY);
    const legend = j.kind === 'choropleth'
      ? el('div', { class: 'exchange-legend' }, ...RAMP.map((c, i) => {
        const sw = el('span', { text: i < j.breaks.length ? `≤${j.breaks[i]}` : '>' });
        sw.style.background = c;
        sw.style.padding = '0 4px';
        return sw;
      }))
      : el('span');
    result.replaceChildren(
      el('p', { text: t('exchange.joined', { joined: j.joined, unjoined: j.unjoined_count }) }),
      legend,
      el('ul', { class: 'exchange-unjoined' }, ...j.unjoined.slice(0, 20).map((u) => el('li', { text: `${u.key}: ${u.value ?? ''} — ${u.reason}` }))));
  }

  function renderStatsForm() {
    const stat = state.sources.filter((s) => s.readable && s.last_ok_at
      && STAT_ELEMENTS.every((e) => Object.values(s.mapping || {}).includes(e)));
    if (!stat.length) { statsBox.replaceChildren(el('p', { text: t('exchange.none_statistics') })); return; }
    const sourceSel = select(stat.map((s) => [s.name, title(s)]));
    const indicators = el('input', { attrs: { placeholder: 'gdp,population', value: 'population', size: '14' } });
    const years = el('input', { attrs: { placeholder: '2020,2021', size: '10' } });
    const typeSel = select([['bar', t('exchange.chart.bar')], ['pie', t('exchange.chart.pie')], ['line', t('exchange.chart.line')]]);
    const table = el('div', { class: 'exchange-table' });
    const go = button('exchange.show', async () => {
      const q = new URLSearchParams({ indicators: indicators.value });
      if (years.value) q.set('years', years.value);
      try {
        state.stats = await ctx.api(`/exchange/sources/${encodeURIComponent(sourceSel.value)}/statistics?${q}`);
        ok();
      } catch (err) { fail(err); return; }
      await drawStats(table, typeSel.value);
    });
    const download = button('exchange.download', () => {
      if (!state.stats) return;
      const columns = ['indicator', 'indicator_zh', 'unit', 'area_code', 'area_zh', 'year', 'value'];
      const blob = new Blob(['\ufeff', csvText(state.stats.table, columns)], { type: 'text/csv' });
      const a = el('a', { attrs: { href: URL.createObjectURL(blob), download: `${state.stats.source}.csv` } });
      a.click();
      URL.revokeObjectURL(a.href);
    });
    statsBox.replaceChildren(el('div', { class: 'exchange-form' }, sourceSel, indicators, years, typeSel, go, download), table);
  }

  async function drawStats(tableBox, type) {
    const s = state.stats;
    if (!s) return;
    tableBox.replaceChildren(
      el('p', { text: s.synthesized ? t('exchange.synthesized_note') : t('exchange.real_note') }),
      el('table', {},
        el('thead', {}, el('tr', {}, ...['exchange.indicator', 'exchange.area', 'exchange.year', 'exchange.value'].map((k) => el('th', { text: t(k) })))),
        el('tbody', {}, ...s.table.slice(0, 200).map((r) => el('tr', {},
          el('td', { text: ctx.lang() === 'en' ? (r.indicator_en || r.indicator) : (r.indicator_zh || r.indicator) }),
          el('td', { text: r.area_zh || r.area_code }),
          el('td', { text: String(r.year) }),
          el('td', { text: r.value === null ? '-' : String(r.value) }))))));
    const areas = ctx.map.getSource('exchange-areas');
    if (areas) areas.setData(coloured(s.choropleth));
    const echarts = await import('../../vendor/echarts/echarts.esm.min.mjs');
    state.chart = state.chart || echarts.init(chartEl);
    const c = s.chart;
    let option;
    if (type === 'line') {
      option = { tooltip: { trigger: 'axis' }, xAxis: { type: 'category', data: c.years.map(String) }, yAxis: { type: 'value' },
        series: c.by_year.map((x) => ({ name: x.name, type: 'line', data: x.data })) };
    } else if (type === 'pie') {
      const first = c.by_area[c.by_area.length - 1];
      option = { tooltip: { trigger: 'item' },
        series: [{ name: first.name, type: 'pie', radius: '65%', data: c.area_names.map((n, i) => ({ name: n, value: first.data[i] })) }] };
    } else {
      option = { tooltip: { trigger: 'axis' }, xAxis: { type: 'category', data: c.area_names, axisLabel: { rotate: 40 } }, yAxis: { type: 'value' },
        series: c.by_area.map((x) => ({ name: x.name, type: 'bar', data: x.data })) };
    }
    state.chart.setOption(option, true);
  }

  async function sync(name) {
    try { await ctx.api(`/exchange/sources/${encodeURIComponent(name)}/sync`, { method: 'POST', body: JSON.stringify({ mode: 'auto' }) }); ok(); } catch (err) { fail(err); }
    refresh();
  }

  async function apply(name) {
    try { await ctx.api(`/exchange/sources/${encodeURIComponent(name)}/access`, { method: 'POST', body: JSON.stringify({ purpose: '' }) }); ok(); } catch (err) { fail(err); }
    refresh();
  }

  async function refresh() {
    try { state.sources = await ctx.api('/exchange/sources'); ok(); } catch (err) { fail(err); }
    renderSources();
  }

  ensureLayers(ctx.map);
  ctx.toolbarButton('exchange-refresh', 'exchange.refresh', refresh);
  ctx.onEvent('sync', refresh);
  ctx.onLang(() => {
    panel.querySelector('h2 span').textContent = t('exchange.title');
    panel.querySelectorAll('h3').forEach((h) => { h.textContent = t(h.dataset.key); });
    renderSources();
  });
  ctx.onReconnect(refresh);
  refresh();
  return { refresh, state };
}

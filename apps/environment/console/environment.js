// The environment panel: AQI by district (HJ 633-2012 / 2026 switch, bar chart), open
// exceedances (live), and the plume form (click the map for the release point).
// Written to the console shell's panel contract (ctx); every text goes through ctx.el.

const PLUME_SOURCE = 'environment-plume';
const PLUME_COLOURS = ['#ffe58f', '#ffa940', '#f5222d', '#780650', '#391085'];
const STANDARDS = ['HJ 633-2012', 'HJ 633-2026'];

function localDay(offsetDays = 0) {
  // China Standard Time, as the AQI report counts days.
  const t = new Date(Date.now() + 8 * 3600e3 - offsetDays * 86400e3);
  return t.toISOString().slice(0, 10);
}

export function mount(ctx) {
  const state = { standard: localDay() >= '2026-03-01' ? STANDARDS[1] : STANDARDS[0], chart: null };
  const t = (k, v) => ctx.t(k, v);

  // ------------------------------------------------------------------ AQI
  const aqiList = ctx.el('ol', { class: 'environment-aqi-list' });
  const aqiChart = ctx.el('div', { class: 'environment-aqi-chart', style: 'height:180px' });
  const aqiNote = ctx.el('p', { class: 'muted' });
  const switcher = ctx.el('div', { class: 'environment-switch' },
    STANDARDS.map((s) => {
      const b = ctx.el('button', { type: 'button', dataset: { standard: s } }, s);
      b.addEventListener('click', () => { state.standard = s; loadAqi(); });
      return b;
    }));
  const aqiBox = ctx.el('section', { class: 'panel', id: 'environment-aqi' },
    ctx.el('h2', { text: t('aqi_title') }), switcher, aqiNote, aqiChart, aqiList);

  async function drawChart(rows) {
    aqiChart.hidden = !rows.length; // no bars to draw: the list says there is no data
    if (!rows.length) return;
    try {
      const echarts = await import('../../vendor/echarts/echarts.esm.min.mjs');
      state.chart = state.chart || echarts.init(aqiChart);
      state.chart.setOption({
        grid: { left: 40, right: 8, top: 8, bottom: 48 },
        xAxis: { type: 'category', data: rows.map((r) => r.name), axisLabel: { rotate: 45 } },
        yAxis: { type: 'value' },
        series: [{ type: 'bar', data: rows.map((r) => ({ value: r.aqi, itemStyle: { color: r.colour } })) }],
      }, true);
    } catch (err) {
      aqiChart.replaceChildren(ctx.el('p', { class: 'muted', text: t('chart_unavailable') }));
    }
  }

  async function loadAqi() {
    for (const b of switcher.querySelectorAll('button')) {
      b.classList.toggle('active', b.dataset.standard === state.standard);
    }
    const day = localDay(1); // yesterday: the last whole day
    const q = new URLSearchParams({ scope: 'district', period: 'daily', standard: state.standard, start: day });
    aqiNote.textContent = t('aqi_note', { day, standard: state.standard });
    try {
      const report = await ctx.api(`/environment/aqi?${q}`);
      const rows = report.rows.slice().sort((a, b) => a.aqi - b.aqi);
      aqiList.replaceChildren(...rows.map((r) => ctx.el('li', {},
        ctx.el('span', { class: 'badge', style: `background:${r.colour}` }, String(r.aqi)),
        ' ', r.name, ' ', ctx.el('span', { class: 'muted' },
          `${ctx.lang() === 'zh' ? r.level_zh : r.level_en}${r.primary.length ? ' · ' + r.primary.join(', ') : ''}`))));
      if (!rows.length) aqiList.replaceChildren(ctx.el('li', { class: 'muted', text: t('no_data') }));
      drawChart(rows);
    } catch (err) {
      aqiList.replaceChildren(ctx.el('li', { class: 'error', text: String(err.message || err) }));
    }
  }

  // ------------------------------------------------------------------ exceedances
  const exList = ctx.el('ul', { class: 'environment-exceedances' });
  const exBox = ctx.el('section', { class: 'panel', id: 'environment-exceedances' },
    ctx.el('h2', { text: t('exceedances_title') }), exList);

  function exItem(e) {
    const since = new Date(e.started_at).toLocaleString(ctx.lang() === 'zh' ? 'zh-CN' : 'en-GB');
    return ctx.el('li', { dataset: { id: String(e.id) } },
      ctx.el('strong', {}, `${e.device_id} ${e.pollutant}`), ' ',
      t('exceedance_line', { peak: Number(e.peak).toFixed(1), limit: e.limit, since }),
      e.task_id ? ctx.el('span', { class: 'muted' }, ` · ${t('task')} #${e.task_id}`) : null);
  }

  async function loadExceedances() {
    try {
      const rows = await ctx.api('/environment/exceedances?open=true&limit=50');
      exList.replaceChildren(...rows.map(exItem));
      if (!rows.length) exList.replaceChildren(ctx.el('li', { class: 'muted', text: t('no_exceedances') }));
    } catch (err) {
      exList.replaceChildren(ctx.el('li', { class: 'error', text: String(err.message || err) }));
    }
  }

  // ------------------------------------------------------------------ pollution sources
  // The monitored stacks and outlets, by enterprise: what the exceedances and the plume are of.
  const srcNote = ctx.el('p', { class: 'muted' });
  const srcList = ctx.el('ul', { class: 'environment-sources' });
  const srcBox = ctx.el('section', { class: 'panel', id: 'environment-sources' },
    ctx.el('h2', { text: t('sources_title') }), srcNote, srcList);
  let sources = [];

  function drawSources() {
    const outlets = sources.reduce((n, s) => n + (s.outlets || []).length, 0);
    srcNote.textContent = t('sources_note', { n: sources.length, outlets });
    srcList.replaceChildren(...sources.slice(0, 40).map((s) => ctx.el('li', { dataset: { id: String(s.id) } },
      ctx.el('strong', {}, (s.enterprise && s.enterprise.name_zh) || ''), ' ', s.name_zh,
      s.stack_height_m != null ? ctx.el('span', { class: 'muted' }, ` · ${t('stack_m', { m: s.stack_height_m })}`) : null)));
  }

  async function loadSources() {
    try {
      sources = await ctx.api('/environment/sources');
      drawSources();
    } catch (err) {
      srcList.replaceChildren(ctx.el('li', { class: 'error', text: String(err.message || err) }));
    }
  }

  // ------------------------------------------------------------------ plume
  const field = (name, value, step = 'any') =>
    ctx.el('label', {}, t(`plume_${name}`), ctx.el('input', { name, type: 'number', step, value: String(value) }));
  const form = ctx.el('form', { class: 'environment-plume-form' },
    field('emission_gs', 100), field('height_m', 1), field('duration_s', 600), field('elapsed_s', 600),
    ctx.el('p', { class: 'muted', text: t('plume_hint') }),
    ctx.el('button', { type: 'submit', text: t('plume_run') }));
  const plumeOut = ctx.el('div', { class: 'environment-plume-out' });
  const plumeBox = ctx.el('section', { class: 'panel', id: 'environment-plume', hidden: true },
    ctx.el('h2', { text: t('plume_title') }), form, plumeOut);
  let point = null;
  let picking = false;

  ctx.toolbarButton('environment-plume', 'plume_button', () => {
    plumeBox.hidden = !plumeBox.hidden;
    picking = !plumeBox.hidden;
  });
  ctx.claimMapClicks((lngLat) => {
    if (!picking) return false;
    point = lngLat;
    plumeOut.replaceChildren(ctx.el('p', { text: t('plume_point', { lon: lngLat.lng.toFixed(5), lat: lngLat.lat.toFixed(5) }) }));
    return true;
  });

  function showPlume(fc) {
    const map = ctx.map;
    if (map.getSource(PLUME_SOURCE)) map.getSource(PLUME_SOURCE).setData(fc);
    else {
      map.addSource(PLUME_SOURCE, { type: 'geojson', data: fc });
      map.addLayer({
        id: 'environment-plume-fill', type: 'fill', source: PLUME_SOURCE,
        paint: {
          'fill-color': ['step', ['get', 'threshold_ugm3'], PLUME_COLOURS[0],
            ...fc.features.slice(1).flatMap((f, i) => [f.properties.threshold_ugm3, PLUME_COLOURS[i + 1] || PLUME_COLOURS[4]])],
          'fill-opacity': 0.35,
        },
      });
    }
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!point) { plumeOut.replaceChildren(ctx.el('p', { class: 'error', text: t('plume_need_point') })); return; }
    const data = Object.fromEntries(new FormData(form).entries());
    const body = { lon: point.lng, lat: point.lat };
    for (const [k, v] of Object.entries(data)) if (v !== '') body[k] = Number(v);
    try {
      const out = await ctx.api('/environment/plume', { method: 'POST', body: JSON.stringify(body) });
      const shown = { ...out, features: out.features.filter((f) => f.geometry) };
      showPlume(shown);
      plumeOut.replaceChildren(
        ctx.el('p', {}, t('plume_weather', { cls: out.stability, wind: out.weather.wind_ms, dir: out.weather.wind_from_deg })),
        ctx.el('table', {},
          ctx.el('tr', {}, ['plume_threshold', 'plume_people', 'plume_schools', 'plume_hospitals'].map((k) => ctx.el('th', { text: t(k) }))),
          out.features.map((f) => ctx.el('tr', {},
            [f.properties.threshold_ugm3, f.properties.population, f.properties.schools, f.properties.hospitals]
              .map((v) => ctx.el('td', { text: String(v) }))))));
    } catch (err) {
      plumeOut.replaceChildren(ctx.el('p', { class: 'error', text: String(err.message || err) }));
    }
  });

  // ------------------------------------------------------------------ wiring
  ctx.column('right').append(aqiBox, exBox, plumeBox, srcBox);
  const headings = [[aqiBox, 'aqi_title'], [exBox, 'exceedances_title'], [plumeBox, 'plume_title'], [srcBox, 'sources_title']];
  ctx.onEvent('exceedance', (ev) => { if (ev.exceedance) exList.prepend(exItem({ ...ev.exceedance, limit: ev.exceedance.limit })); });
  ctx.onReconnect(() => { if (loaded) loadExceedances(); });
  // The data is fetched when the pane is first shown: a wall does not pay for tabs it never opens.
  let loaded = false;
  ctx.onLang(() => {
    for (const [box, key] of headings) box.querySelector('h2').textContent = t(key);
    if (loaded) { loadAqi(); loadExceedances(); drawSources(); }
  });
  ctx.onShow(() => {
    if (!loaded) { loaded = true; loadAqi(); loadExceedances(); loadSources(); }
    if (state.chart) state.chart.resize();
  });
  return { aqiBox, exBox, plumeBox, srcBox };
}

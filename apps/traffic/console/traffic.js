// City traffic panel: junctions by state and measure, a junction's Purdue coordination
// diagram (ECharts), and the live road speed layer. Built with ctx.el only (no innerHTML).
import * as echarts from '../../vendor/echarts/echarts.esm.min.mjs';

const STATE_COLOUR = { fault: '#ff4d4f', offline: '#8c8c8c', flash: '#faad14' };
const SPEED_COLOUR = ['interpolate', ['linear'], ['get', 'congestion_index'],
  0.2, '#a8071a', 0.5, '#fa541c', 0.8, '#fadb14', 1.0, '#52c41a'];

export function mount(ctx) {
  const { el, t } = ctx;
  const section = el('section', { class: 'panel traffic', id: 'traffic-panel' });
  const heading = el('h2', { text: t('title') });
  const count = el('p', { class: 'muted traffic-count' });
  const pcdTitle = el('h4', { text: t('pcd') });
  const table = el('table', { class: 'traffic-junctions' });
  // The chart is made when there is a diagram to show: a hidden pane has no size to measure.
  const chartBox = el('div', { class: 'traffic-pcd', style: 'height:16rem', hidden: true });
  const hint = el('p', { class: 'hint', text: t('pcd_hint') });
  const error = el('p', { class: 'error' });
  section.append(heading, count, error, table, pcdTitle, hint, chartBox);
  ctx.column('right').append(section);
  let chart = null;
  let junctions = [];
  // A state the strings do not name is shown as the server said it.
  const stateWord = (s) => { const w = t(`state_${s}`); return w === `state_${s}` ? s : w; };

  const fail = (err) => { error.textContent = t('error', { message: String(err.message || err) }); };

  function drawTable() {
    const faults = junctions.filter((j) => j.state === 'fault').length;
    count.textContent = t('count', { n: junctions.length, faults });
    const head = el('tr', {}, ...['junctions', 'state', 'aog', 'split_failures', 'volume']
      .map((k) => el('th', { text: t(k) })));
    const rows = [...junctions]
      .sort((a, b) => (a.state === 'fault' ? -1 : 0) - (b.state === 'fault' ? -1 : 0))
      .slice(0, 50)
      .map((j) => el('tr', { dataset: { id: String(j.id) } },
        el('td', { text: j.name_zh }),
        el('td', { text: stateWord(j.state), style: `color:${STATE_COLOUR[j.state] || 'inherit'}` }),
        el('td', { text: j.share_on_green == null ? '–' : `${Math.round(j.share_on_green * 100)}%` }),
        el('td', { text: j.split_failures == null ? '–' : String(j.split_failures) }),
        el('td', { text: j.volume == null ? '–' : String(j.volume) })));
    table.replaceChildren(head, ...rows);
    rows.forEach((row) => row.addEventListener('click', () => showPcd(Number(row.dataset.id)).catch(fail)));
  }

  async function loadJunctions() {
    junctions = await ctx.api('/traffic/junctions');
    drawTable();
    const features = junctions.filter((j) => j.lon != null).map((j) => ({
      type: 'Feature', id: j.id,
      geometry: { type: 'Point', coordinates: [j.lon, j.lat] },
      properties: { id: j.id, state: j.state },
    }));
    const data = { type: 'FeatureCollection', features };
    const source = ctx.map.getSource('traffic-junctions');
    if (source) { source.setData(data); return; }
    ctx.map.addSource('traffic-junctions', { type: 'geojson', data });
    ctx.map.addLayer({
      id: 'traffic-junctions', type: 'circle', source: 'traffic-junctions',
      paint: {
        'circle-radius': 5,
        'circle-color': ['match', ['get', 'state'], 'fault', '#ff4d4f', 'offline', '#8c8c8c',
          'flash', '#faad14', '#1677ff'],
      },
    });
  }

  async function showPcd(id) {
    const to = new Date();
    const from = new Date(to.getTime() - 3600 * 1000);
    const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
    const points = await ctx.api(`/traffic/junctions/${id}/pcd?${q}`);
    const name = (junctions.find((j) => j.id === id) || {}).name_zh || String(id);
    hint.textContent = `${name} · ${t('last_hour')} · ${t('arrivals_n', { n: points.length })}`;
    chartBox.hidden = false;
    chart = chart || echarts.init(chartBox);
    chart.setOption({
      animation: false,
      tooltip: { trigger: 'item' },
      xAxis: { type: 'time' },
      yAxis: { type: 'value', name: t('time_in_cycle') },
      series: [
        { name: t('arrivals'), type: 'scatter', symbolSize: 3,
          data: points.map((p) => [p.ts, p.t_in_cycle_s]) },
        { name: t('green'), type: 'line', step: 'end', symbol: 'none',
          lineStyle: { color: '#52c41a' },
          data: points.map((p) => [p.cycle_start, p.green_start_s]) },
        { name: t('green'), type: 'line', step: 'end', symbol: 'none',
          lineStyle: { color: '#fadb14' },
          data: points.map((p) => [p.cycle_start, p.green_end_s]) },
      ],
    }, true);
  }

  async function loadSpeeds() {
    const data = await ctx.api('/traffic/speeds');
    const source = ctx.map.getSource('traffic-speeds');
    if (source) { source.setData(data); return; }
    ctx.map.addSource('traffic-speeds', { type: 'geojson', data });
    ctx.map.addLayer({
      id: 'traffic-speeds', type: 'line', source: 'traffic-speeds',
      paint: { 'line-width': 3, 'line-color': SPEED_COLOUR },
    });
  }

  ctx.claimMapClicks((lngLat) => {
    const hits = ctx.map.queryRenderedFeatures(ctx.map.project(lngLat),
      { layers: ['traffic-junctions'] });
    if (!hits.length) return false;
    showPcd(Number(hits[0].properties.id)).catch(fail);
    return true;
  });
  ctx.toolbarButton('traffic-speeds', 'speeds', () => {
    if (!ctx.map.getLayer('traffic-speeds')) return; // the speeds never came: nothing to toggle
    const shown = ctx.map.getLayoutProperty('traffic-speeds', 'visibility') !== 'none';
    ctx.map.setLayoutProperty('traffic-speeds', 'visibility', shown ? 'none' : 'visible');
  });
  ctx.onLang(() => {
    heading.textContent = t('title');
    pcdTitle.textContent = t('pcd');
    if (!chart) hint.textContent = t('pcd_hint');
    drawTable();
  });
  // The data is fetched when the pane is first shown: a wall does not pay for tabs it never opens.
  let loaded = false;
  ctx.onShow(() => {
    if (!loaded) { loaded = true; Promise.all([loadJunctions(), loadSpeeds()]).catch(fail); }
    if (chart) chart.resize();
  });
  ctx.onEvent('speeds', () => { if (loaded) loadSpeeds().catch(fail); });
  ctx.onReconnect(() => { if (loaded) Promise.all([loadJunctions(), loadSpeeds()]).catch(fail); });
  return { junctions: () => junctions };
}

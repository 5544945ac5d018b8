// The water panel: station classes on the rivers (click one to trace its upstream outlets),
// drought grades by probe and district, permits and their use against the quota.
// Everything is built with ctx.el (no HTML strings); map layers are prefixed "water-".

const CLASS_COLOURS = ['#8c8c8c', '#1677ff', '#13c2c2', '#52c41a', '#fadb14', '#fa8c16', '#f5222d'];
const GRADE_COLOURS = { '-1': '#8c8c8c', 0: '#52c41a', 1: '#fadb14', 2: '#fa8c16', 3: '#f5222d', 4: '#820014' };
const STATE_COLOURS = { normal: '#52c41a', warning: '#fadb14', exceeded: '#f5222d', meter_fault: '#f5222d', no_reading: '#8c8c8c' };
const EMPTY = { type: 'FeatureCollection', features: [] };

function points(rows, props) {
  return {
    type: 'FeatureCollection',
    features: rows.map((r) => ({
      type: 'Feature',
      geometry: { type: 'Point', coordinates: [r.lon, r.lat] },
      properties: props(r),
    })),
  };
}

function ensureLayers(map) {
  const circle = (id, source, radius) => {
    if (!map.getSource(source)) map.addSource(source, { type: 'geojson', data: EMPTY });
    if (!map.getLayer(id)) {
      map.addLayer({
        id, source, type: 'circle',
        paint: {
          'circle-radius': radius,
          'circle-color': ['get', 'colour'],
          'circle-stroke-color': '#ffffff',
          'circle-stroke-width': 1,
        },
      });
    }
  };
  if (!map.getSource('water-trace')) map.addSource('water-trace', { type: 'geojson', data: EMPTY });
  if (!map.getLayer('water-trace')) {
    map.addLayer({ id: 'water-trace', source: 'water-trace', type: 'line',
      paint: { 'line-color': '#ff4d4f', 'line-width': 3, 'line-opacity': 0.85 } });
  }
  circle('water-probes', 'water-probes', 4);
  circle('water-stations', 'water-stations', 7);
  circle('water-outlets', 'water-outlets', 6);
}

function setData(map, id, data) {
  const source = map.getSource(id);
  if (source) source.setData(data);
}

export function mount(ctx) {
  const { el, t } = ctx;
  const state = { classes: null, drought: null, permits: null, trace: null };

  const classesBox = el('div', { class: 'water-classes' });
  const traceBox = el('div', { class: 'water-trace' });
  const droughtBox = el('div', { class: 'water-drought' });
  const permitsBox = el('div', { class: 'water-permits' });
  const errorLine = el('div', { class: 'water-error' });
  const heading = (key) => el('h3', { text: t(key) });
  const panel = el('section', { class: 'panel', id: 'water-panel' },
    el('h2', {}, el('span', { text: t('water.title') })),
    errorLine,
    heading('water.classes'), classesBox, traceBox,
    heading('water.drought'), droughtBox,
    heading('water.permits'), permitsBox);
  ctx.column('right').append(panel);

  const fail = (err) => { errorLine.replaceChildren(t('water.error', { detail: err.message || String(err) })); };
  const fmt = (v, digits = 1) => (v === null || v === undefined ? '-' : Number(v).toFixed(digits));

  function renderClasses() {
    const data = state.classes;
    if (!data) return;
    const rate = data.compliance_rate === null ? '-' : `${Math.round(data.compliance_rate * 100)}%`;
    const rows = data.stations.map((s) => {
      const button = el('button', { class: 'btn', text: t('water.trace') });
      button.addEventListener('click', () => trace(s.station));
      const note = s.missing.length ? t('water.missing', { factors: s.missing.join(', ') }) : '';
      return el('tr', { dataset: { station: s.station } },
        el('td', { text: s.name_zh }),
        el('td', { text: s.label || t('water.no_data'), style: `color:${CLASS_COLOURS[s.water_class || 0]}` }),
        el('td', { text: s.deciding.join(', ') }),
        el('td', { text: String(s.target_class) }),
        el('td', { text: note }),
        el('td', {}, button));
    });
    classesBox.replaceChildren(
      el('div', { text: t('water.compliance', { rate }) }),
      el('table', {},
        el('thead', {}, el('tr', {},
          ...['water.station', 'water.class', 'water.deciding', 'water.target'].map((k) => el('th', { text: t(k) })),
          el('th', {}), el('th', {}))),
        el('tbody', {}, ...rows)));
    setData(ctx.map, 'water-stations', points(data.stations, (s) => ({
      id: s.station, name: s.name_zh, label: s.label || '', colour: CLASS_COLOURS[s.water_class || 0],
    })));
  }

  function renderTrace() {
    const data = state.trace;
    if (!data) {
      traceBox.replaceChildren();
      setData(ctx.map, 'water-trace', EMPTY);
      setData(ctx.map, 'water-outlets', EMPTY);
      return;
    }
    const clear = el('button', { class: 'btn', text: t('water.trace_clear') });
    clear.addEventListener('click', () => { state.trace = null; renderTrace(); });
    const items = data.ranked.map((o) => el('li', {},
      `${o.rank}. ${o.enterprise_zh || ''} ${o.name_zh} · `
      + `${t('water.km', { km: fmt(o.distance_m / 1000) })} · ${t('water.load', { load: fmt(o.load_at_station_g_s, 3) })}`));
    traceBox.replaceChildren(
      el('div', { text: t('water.trace_of', { station: data.station.name_zh, factor: data.factor }) }),
      items.length ? el('ol', {}, ...items) : el('div', { text: t('water.trace_none') }),
      el('div', { text: t('water.trace_left', { off: data.off_network.length, unknown: data.unknown_load.length }) }),
      clear);
    setData(ctx.map, 'water-trace', { type: 'Feature', geometry: data.rivers, properties: {} });
    setData(ctx.map, 'water-outlets', points(data.ranked, (o) => ({ id: o.outlet_id, colour: '#ff4d4f' })));
  }

  function renderDrought() {
    const data = state.drought;
    if (!data) return;
    const graded = data.probes.filter((p) => p.grade >= 0).length;
    const rows = data.districts.map((d) => el('tr', {},
      el('td', { text: d.name_zh || d.district_code }),
      el('td', { text: fmt(d.cropland_km2) }),
      el('td', { text: d.drought_share === null ? '-' : `${Math.round(d.drought_share * 100)}%` })));
    droughtBox.replaceChildren(
      el('div', { text: t('water.probes', { graded, total: data.probes.length }) }),
      el('table', {},
        el('thead', {}, el('tr', {}, ...['water.district', 'water.cropland', 'water.in_drought'].map((k) => el('th', { text: t(k) })))),
        el('tbody', {}, ...rows)),
      ...data.left_out.map((x) => el('div', { class: 'water-left-out', text: t('water.left_out', x) })));
    setData(ctx.map, 'water-probes', points(data.probes, (p) => ({
      id: p.station, grade: t(`water.grade.${p.grade}`), colour: GRADE_COLOURS[p.grade],
    })));
  }

  function renderPermits() {
    const data = state.permits;
    if (!data) return;
    const rows = data.permits.map((p) => el('tr', {},
      el('td', { text: p.holder_name }),
      el('td', { text: Math.round(p.annual_quota_m3).toLocaleString() }),
      el('td', { text: p.ratio === null ? '-' : `${Math.round(p.ratio * 100)}%` }),
      el('td', { text: t(`water.state.${p.state}`), style: `color:${STATE_COLOURS[p.state] || '#8c8c8c'}`, title: p.fault || '' }),
      el('td', { text: p.fee_yuan === null ? '-' : fmt(p.fee_yuan, 2) })));
    permitsBox.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, ...['water.holder', 'water.quota', 'water.used', 'water.state', 'water.fee'].map((k) => el('th', { text: t(k) })))),
      el('tbody', {}, ...rows)));
  }

  async function trace(station) {
    try {
      state.trace = await ctx.api(`/water/trace/${encodeURIComponent(station)}`);
      errorLine.replaceChildren();
    } catch (err) { fail(err); state.trace = null; }
    renderTrace();
  }

  async function refresh() {
    try {
      const [classes, drought, permits] = await Promise.all([
        ctx.api('/water/quality/classes'), ctx.api('/water/drought'), ctx.api('/water/permits'),
      ]);
      Object.assign(state, { classes, drought, permits });
      errorLine.replaceChildren();
    } catch (err) { fail(err); }
    renderAll();
  }

  function renderAll() { renderClasses(); renderTrace(); renderDrought(); renderPermits(); }

  ensureLayers(ctx.map);
  // A click on a station on the map traces it.
  ctx.claimMapClicks((lngLat) => {
    const hits = ctx.map.queryRenderedFeatures(ctx.map.project(lngLat), { layers: ['water-stations'] });
    if (!hits.length) return false;
    trace(hits[0].properties.id);
    return true;
  });
  ctx.toolbarButton('water-refresh', 'water.refresh', refresh);
  ctx.onLang(() => {
    // the headings and every table's words follow the language
    panel.querySelector('h2 span').textContent = t('water.title');
    const titles = panel.querySelectorAll('h3');
    ['water.classes', 'water.drought', 'water.permits'].forEach((k, i) => { titles[i].textContent = t(k); });
    renderAll();
  });
  // The data is fetched when the pane is first shown: a wall does not pay for tabs it never opens.
  let loaded = false;
  ctx.onShow(() => { if (!loaded) { loaded = true; refresh(); } });
  ctx.onReconnect(() => { if (loaded) refresh(); });
  return { refresh, trace };
}

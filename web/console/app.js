// The command console's shell: log-in, the map, the live layer, alarms, overview and replay.
// Everything else on the wall is a panel (panels.js): the platform's own and each installed
// application's, as GET /apps lists them. Device kinds come from GET /apps too (kinds.js).

import * as maplibregl from './vendor/maplibre-gl/maplibre-gl.mjs';
import { session, login, api, SessionExpired, LiveSocket } from './api.js';
import { t, lang, setLang, applyStatic, onLang, fmtTime, tOr, TZ } from './i18n.js';
import { LayerManager } from './layers.js';
import { LiveFleet, STATUS_COLORS, SENSOR_COLORS, DEPT_COLORS } from './live.js';
import { KINDS, setKinds, isMobile, shapeIndex } from './kinds.js';
import { el } from './dom.js';
import { Panels } from './panels.js';
import { AlarmList } from './alarms.js';
import { Overview } from './overview.js';
import { Replay } from './replay.js';
import * as healthPanel from './health.js';
import * as geofencePanel from './geofences.js';

const $ = (id) => document.getElementById(id);
const CITY_CENTER = [113.10528, 36.18389];
const CITY_BBOX = [111.978457, 35.822762, 113.730044, 37.124709];
const MSG_KEY = 'changzhi.console.message';
const LOCAL_FONTS = '"Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif';
const ACK_ROLES = ['dispatcher', 'supervisor', 'inspector', 'planner'];
// Where this module was served from: the console's static root, panels are found under it.
const STATIC = new URL('.', import.meta.url).href.replace(/\/$/, '');

// What tests and the benchmark read; nothing in the page depends on it.
const hook = { ready: false, errors: [], stats: { wsBytes: 0, wsMessages: 0, states: 0 } };
window.__console = hook;
window.addEventListener('error', (e) => hook.errors.push(String(e.message)));

// ------------------------------------------------------------------ clock (runs on log-in too)

function tickClock() {
  const now = new Date();
  $('clock-time').textContent = new Intl.DateTimeFormat('zh-CN', { timeZone: TZ, hour12: false, hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(now);
  $('clock-date').textContent = new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'zh-CN', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit', weekday: 'short' }).format(now);
}
setInterval(tickClock, 1000);

function toggleLang() { setLang(lang === 'en' ? 'zh' : 'en'); tickClock(); }
$('lang-btn').addEventListener('click', toggleLang);
$('login-lang').addEventListener('click', toggleLang);

// ------------------------------------------------------------------ log-in and log-out

function showLogin(message) {
  $('login').hidden = false;
  $('login-msg').textContent = message || '';
  $('login-user').focus();
}

function endSession(message) {
  // A clean page for the next user: nothing of this session stays in memory.
  session.clear();
  if (message) sessionStorage.setItem(MSG_KEY, message);
  location.reload();
}

// Whatever the server said (expired, revoked, unknown user), the wall says it in its language.
function expiredMessage() {
  return t('session_expired');
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const btn = ev.submitter || $('login-form').querySelector('button[type=submit]');
  btn.disabled = true;
  $('login-msg').textContent = '';
  try {
    await login($('login-user').value.trim(), $('login-pass').value);
    $('login-pass').value = '';
    $('login').hidden = true;
  } catch (err) {
    $('login-msg').textContent = err.status === 401 ? t('wrong_password') : t('login_failed') + err.message;
    btn.disabled = false;
    return;
  }
  try {
    await start();
  } catch (err) {
    // Logged in but the wall could not be built: say so where it shows, not on a hidden form.
    console.error('console start:', err && err.message);
    hook.errors.push(String(err && err.message));
    showLogin(`${t('login_failed')}${err.message}`);
  } finally {
    btn.disabled = false;
  }
});
$('logout-btn').addEventListener('click', () => endSession(null));

// ------------------------------------------------------------------ the console

let started = false;

async function start() {
  if (started) return;
  started = true;
  let me, collections, devices, apps;
  hook.stage = 'auth';
  try {
    me = await api('/auth/me');
    session.user = me;
    session.save();
    [collections, devices, apps] = await Promise.all([
      api('/collections'), api('/console/api/devices'), api('/apps'),
    ]);
  } catch (err) {
    started = false;
    if (err instanceof SessionExpired) { session.clear(); showLogin(expiredMessage(err.message)); return; }
    showLogin(`${t('login_failed')}${err.message}`);
    return;
  }
  // The token ends with the shift: back to the log-in screen, saying why.
  const left = session.expiresAt - Date.now();
  if (session.expiresAt && left < 2 ** 31) setTimeout(() => endSession(t('session_expired')), Math.max(0, left));

  // The kinds before anything is drawn: shapes, colours, labels and thresholds are theirs.
  setKinds(apps.kinds);
  hook.apps = apps;

  const roles = (me.roles || []).join(', ');
  const renderWho = () => $('who').replaceChildren(
    el('b', {}, me.full_name || me.username), el('br'),
    `${me.department ? tOr(`dept.${me.department}`, me.department) : ''} ${roles}`,
  );
  renderWho();
  onLang(renderWho);

  const meta = new Map(devices.map((d) => [d.id, d]));
  const myDept = me.department && devices.some((d) => (d.unit_department || d.department) === me.department) ? me.department : null;
  const list = collections.collections;

  const map = new maplibregl.Map({
    container: 'map',
    style: {
      version: 8,
      sources: {
        hillshade: {
          type: 'raster', tileSize: 256, maxzoom: 14,
          tiles: [`${location.origin}/basemap/hillshade/WebMercatorQuad/{z}/{y}/{x}.png`],
          attribution: 'Relief: NOAA ETOPO1, refined · Changzhi platform',
        },
      },
      layers: [
        { id: 'background', type: 'background', paint: { 'background-color': '#0b1622' } },
        { id: 'hillshade', type: 'raster', source: 'hillshade', paint: { 'raster-brightness-max': 0.55, 'raster-brightness-min': 0.05, 'raster-saturation': -0.5, 'raster-contrast': 0.2, 'raster-opacity': 0.55 } },
      ],
    },
    bounds: CITY_BBOX,
    fitBoundsOptions: { padding: 20 },
    minZoom: 5,
    maxZoom: 18,
    maxBounds: [[CITY_BBOX[0] - 2.5, CITY_BBOX[1] - 2], [CITY_BBOX[2] + 2.5, CITY_BBOX[3] + 2]],
    // North-up and flat: the live layer's arithmetic, and a wall everyone reads the same way.
    dragRotate: false,
    pitchWithRotate: false,
    touchPitch: false,
    maxPitch: 0,
    localIdeographFontFamily: LOCAL_FONTS,
    attributionControl: { compact: true },
    transformRequest: (url) => {
      if (session.token && url.startsWith(location.origin)) {
        return { url, headers: { Authorization: `Bearer ${session.token}` } };
      }
      return { url };
    },
  });
  map.touchZoomRotate.disableRotation();
  map.keyboard.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'bottom-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  map.on('error', (e) => {
    const msg = e && e.error && e.error.message;
    if (msg) console.warn('map:', msg);
  });
  hook.map = map;
  hook.stage = 'map';
  // The style, not every tile: a missing relief (no DEM loaded yet) must not hold the page.
  if (!map.isStyleLoaded()) await new Promise((resolve) => map.once('style.load', resolve));
  hook.stage = 'layers';

  const layers = new LayerManager(map, list, $('catalog-layers'));
  layers.install();
  layers.renderPanel();
  hook.layers = layers;

  // The panels' side of the shell (panels.js): what their ctx reaches. Made before any click can
  // reach the map, mounted once the live layer and the alarms are up.
  const panels = new Panels({
    staticRoot: STATIC,
    map,
    user: { username: me.username, roles: me.roles || [], department: me.department || null },
    kinds: apps.kinds,
    collections: list,
    columns: { left: $('left'), right: $('right') },
    overlay: $('mapwrap'),
    toolbar: document.querySelector('#mapwrap .map-tools'),
    onExpired: (reason) => endSession(expiredMessage(reason)),
    focus: ({ lon, lat, id }) => {
      map.flyTo({ center: [lon, lat], zoom: Math.max(map.getZoom(), 14), speed: 1.6 });
      map.getSource('focus').setData({ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: [lon, lat] } });
      if (id && active.records.has(id)) selectUnit(id);
    },
    hook,
  });
  hook.panels = panels;
  $('catalog-layers').addEventListener('change', (ev) => {
    const id = ev.target.dataset.layerToggle;
    if (id) layers.setVisible(id, ev.target.checked);
  });

  // Trail of the selected unit, alarms and the focus ring: small GeoJSON sources.
  map.addSource('trail', { type: 'geojson', data: emptyFc() });
  map.addLayer({ id: 'trail', type: 'line', source: 'trail', layout: { 'line-cap': 'round', 'line-join': 'round' }, paint: { 'line-color': '#7fd4ff', 'line-width': 3, 'line-opacity': 0.85, 'line-dasharray': [2, 1] } });
  // Alarms cluster below street level: a burst of a thousand reads as a few counted circles,
  // not a red blanket over the district.
  const remScale = (parseFloat(getComputedStyle(document.documentElement).fontSize) || 16) / 16;
  map.addSource('alarms-live', { type: 'geojson', data: emptyFc(), cluster: true, clusterRadius: 40, clusterMaxZoom: 12 });
  map.addLayer({
    id: 'alarms-cluster', type: 'circle', source: 'alarms-live', filter: ['has', 'point_count'],
    paint: {
      'circle-radius': ['step', ['get', 'point_count'], 11 * remScale, 10, 15 * remScale, 100, 20 * remScale, 500, 25 * remScale],
      'circle-color': 'rgba(255,59,59,0.6)', 'circle-stroke-color': '#ff3b3b', 'circle-stroke-width': 2 * remScale,
    },
  });
  map.addLayer({
    id: 'alarms-cluster-count', type: 'symbol', source: 'alarms-live', filter: ['has', 'point_count'],
    layout: { 'text-field': ['get', 'point_count_abbreviated'], 'text-font': ['Noto Sans CJK SC Regular'], 'text-size': 13 * remScale, 'text-allow-overlap': true },
    paint: { 'text-color': '#ffffff' },
  });
  map.addLayer({ id: 'alarms-live', type: 'circle', source: 'alarms-live', filter: ['!', ['has', 'point_count']], paint: { 'circle-radius': ['interpolate', ['linear'], ['zoom'], 7, 5, 13, 9], 'circle-color': 'rgba(255,59,59,0.25)', 'circle-stroke-color': '#ff3b3b', 'circle-stroke-width': 2 } });
  map.addSource('focus', { type: 'geojson', data: emptyFc() });
  map.addLayer({ id: 'focus', type: 'circle', source: 'focus', paint: { 'circle-radius': 22, 'circle-color': 'rgba(0,0,0,0)', 'circle-stroke-color': '#ffe066', 'circle-stroke-width': 3 } });

  // ---------------------------------------------------------------- live layer
  const fleet = new LiveFleet(map, $('live-canvas'), { origin: CITY_CENTER, meta, myDept });
  const replayFleet = new LiveFleet(map, $('replay-canvas'), { origin: CITY_CENTER, meta, myDept, replay: true });
  hook.fleet = fleet;
  let active = fleet;

  const presentKinds = KINDS.filter((k) => devices.some((d) => d.kind === k));
  renderLiveKinds(presentKinds);
  $('live-kinds').addEventListener('change', (ev) => {
    const kind = ev.target.dataset.kind;
    if (!kind) return;
    fleet.setKindHidden(kind, !ev.target.checked);
    replayFleet.setKindHidden(kind, !ev.target.checked);
    const shown = presentKinds.filter((k) => !fleet.hiddenKinds.has(k));
    // Fewer kinds on screen, fewer bytes on the wire. None at all: ask for one kind nobody
    // here has (the filter cannot be empty), else for one of the hidden ones.
    const quiet = KINDS.find((k) => !presentKinds.includes(k)) || presentKinds[presentKinds.length - 1];
    socket.setKinds(shown.length ? shown : [quiet]);
  });
  if (myDept) {
    $('dept-only-row').hidden = false;
    $('dept-only').addEventListener('change', (ev) => {
      fleet.setDeptOnly(ev.target.checked);
      replayFleet.setDeptOnly(ev.target.checked);
    });
  }
  onLang(() => renderLiveKinds(presentKinds, fleet.hiddenKinds));

  function frame(ts) {
    active.tick(ts);
    hook.stats.drawn = active.drawnCount;
    requestAnimationFrame(frame);
  }
  requestAnimationFrame(frame);
  // Camera changes land in the map's own frame: redraw with it so markers never lag a pan.
  map.on('move', () => active.draw());
  setInterval(() => fleet.restyleAll(), 5000); // staleness ages even without messages

  // ---------------------------------------------------------------- details on click
  let selected = null;
  let trail = [];
  map.on('click', async (e) => {
    if (panels.claimClick(e)) return; // a panel drawing a fence, picking a place, its markers
    const rec = active.pick(e.point.x, e.point.y);
    if (rec) { await selectUnit(rec.id); return; }
    const ids = layers.collections.flatMap((c) => ['circle', 'fill', 'line'].map((s) => `${c.id}-${s}`)).filter((id) => map.getLayer(id));
    const hits = map.queryRenderedFeatures(e.point, { layers: ids });
    if (hits.length) showFeaturePopup(e.lngLat, hits[0]);
  });
  $('details-close').addEventListener('click', () => selectUnit(null));

  async function selectUnit(id) {
    selected = id;
    fleet.select(id);
    replayFleet.select(id);
    trail = [];
    map.getSource('trail').setData(emptyFc());
    if (!id) { $('details').hidden = true; return; }
    const rec = active.records.get(id);
    renderDetails(rec, null);
    $('details').hidden = false;
    try {
      const info = await api(`/devices/${encodeURIComponent(id)}`);
      if (selected !== id) return;
      renderDetails(active.records.get(id), info);
      if (rec && isMobile(rec.kind) && active === fleet) {
        const start = new Date(Date.now() - 10 * 60 * 1000).toISOString();
        const tr = await api(`/devices/${encodeURIComponent(id)}/track?start=${encodeURIComponent(start)}&max_points=300`);
        if (selected !== id) return;
        trail = tr.geometry.coordinates.slice(-120);
        updateTrail();
      }
    } catch (err) {
      if (err instanceof SessionExpired) endSession(expiredMessage(err.message));
    }
  }
  hook.selectUnit = selectUnit;

  let detailInfo = null;
  function renderDetails(rec, info) {
    if (info) detailInfo = info;
    info = info || (detailInfo && rec && detailInfo.id === rec.id ? detailInfo : null);
    if (!rec) return;
    const m = meta.get(rec.id) || {};
    const stale = active.isStale(rec);
    const status = active.statusOf(rec);
    const r = rec.reading || {};
    const name = (info && info.call_sign) || m.call_sign || (info && info.name_zh) || m.name || rec.id;
    const unitType = (info && info.unit_type) || m.unit_type;
    const dept = (info && info.department_code) || m.unit_department || m.department;
    const mobile = isMobile(rec.kind);
    const color = mobile ? STATUS_COLORS[status] || STATUS_COLORS.unknown : SENSOR_COLORS[status];
    const label = mobile ? t(`status.${status}`) : t(`sensor.${status}`);
    const rows = [];
    const add = (k, ...v) => {
      if (v.some((x) => x !== undefined && x !== null && x !== '')) rows.push(el('dt', {}, k), el('dd', {}, ...v));
    };
    const pill = el('span', { class: 'pill' }, label);
    pill.style.background = color;
    add(t('status'), pill, stale ? [' ', el('span', { class: 'pill stale' }, rec.online === false ? t('offline') : t('stale'))] : null);
    add(t('time'), fmtTime(rec.ts, true));
    add(t('department'), dept ? tOr(`dept.${dept}`, dept) : '');
    if (typeof r.speed_kmh === 'number') add(t('speed'), `${r.speed_kmh.toFixed(0)} km/h`);
    if (typeof r.heading_deg === 'number') add(t('heading'), `${Math.round(r.heading_deg)}°`);
    if (typeof r.battery_pct === 'number') add(t('battery'), `${Math.round(r.battery_pct)}%`);
    const sig = r.signal_dbm ?? r.rssi ?? r.signal;
    if (sig != null) add(t('signal'), String(sig));
    const shown = Object.entries(r).filter(([k]) => !['status', 'speed_kmh', 'heading_deg', 'battery_pct', 'signal', 'rssi', 'signal_dbm'].includes(k));
    if (shown.length) {
      add(t('last_reading'), shown.flatMap(([k, v], i) => [i ? el('br') : null, `${k}: ${typeof v === 'number' ? +v.toFixed(2) : v}`]));
    }
    $('details-body').replaceChildren(
      el('h3', {}, name),
      el('div', { class: 'sub' }, `${rec.id} · ${unitType ? t(`unit.${unitType}`) : tOr(`kind.${rec.kind}`, rec.kind)}`),
      el('dl', {}, rows),
    );
  }

  function updateTrail() {
    if (!trail.length) return;
    map.getSource('trail').setData({ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: trail } });
  }
  setInterval(() => {
    if (!selected) return;
    const rec = active.records.get(selected);
    if (!rec) return;
    renderDetails(rec, null);
    if (isMobile(rec.kind) && rec.lon != null) {
      const last = trail[trail.length - 1];
      if (!last || last[0] !== rec.lon || last[1] !== rec.lat) {
        trail.push([rec.lon, rec.lat]);
        if (trail.length > 120) trail.shift();
        if (trail.length > 1) updateTrail();
      }
    }
  }, 1000);

  function showFeaturePopup(lngLat, f) {
    const c = layers.byId.get(f.layer.source.replace(/^c-/, ''));
    const x = c ? c['x-changzhi'] : {};
    const title = c ? (lang === 'en' ? x.title_en : c.title) : f.layer.id;
    const props = Object.entries(f.properties || {}).filter(([k]) => k !== 'fid').slice(0, 10);
    const name = f.properties[(lang === 'en' && x.label_en) || x.label] || f.properties.name_zh || '';
    const box = el('div', { class: 'popup' },
      el('b', {}, name),
      el('div', { style: 'color:var(--muted)' }, title),
      el('dl', {}, props.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v ?? '')])));
    new maplibregl.Popup({ maxWidth: '22rem' }).setLngLat(lngLat).setDOMContent(box).addTo(map);
  }

  // ---------------------------------------------------------------- alarms
  const canAck = session.hasRole(...ACK_ROLES);
  const alarmHistory = new Map();
  const alarms = new AlarmList({
    scroller: $('alarm-list'),
    counter: $('alarm-count'),
    canAck,
    onAck: async (id) => {
      try {
        await api(`/alarms/${id}/ack`, { method: 'POST' });
        alarms.remove(id);
      } catch (err) {
        if (err instanceof SessionExpired) { endSession(expiredMessage(err.message)); return; }
        if (err.status === 409 || err.status === 404) alarms.remove(id); // someone else was faster
        else toast(err.message);
      }
    },
    onFocus: (a) => {
      if (a.lon == null) return;
      map.flyTo({ center: [a.lon, a.lat], zoom: Math.max(map.getZoom(), 13), speed: 1.6 });
      map.getSource('focus').setData({ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: [a.lon, a.lat] } });
      if (a.device_id && active.records.has(a.device_id)) selectUnit(a.device_id);
    },
    onChange: () => {
      if (replay.active) return;
      const items = alarms.withPosition();
      hook.stats.alarmMarkers = items.slice(0, 2000).map((a) => a.id);
      map.getSource('alarms-live').setData({
        type: 'FeatureCollection',
        features: items.slice(0, 2000).map((a) => ({ type: 'Feature', properties: { id: a.id, severity: a.severity }, geometry: { type: 'Point', coordinates: [a.lon, a.lat] } })),
      });
      fleet.setAlarmDevices(items.map((a) => a.device_id).filter(Boolean));
    },
  });
  hook.alarms = alarms;
  // The list from the ledger: at start, and whenever live events may have been missed
  // (a reconnect, or the server dropping events for a slow console).
  async function syncAlarms() {
    try {
      const [open, recent] = await Promise.all([
        api('/alarms?state=unacknowledged&limit=5000'),
        api('/alarms?state=all&limit=5000'),
      ]);
      alarms.load(open);
      for (const a of recent) alarmHistory.set(a.id, [Date.parse(a.raised_at), a.kind]);
    } catch (err) {
      if (err instanceof SessionExpired) endSession(expiredMessage(err.message));
      else console.warn('alarms:', err.message);
    }
  }
  hook.stage = 'alarms';
  await syncAlarms();
  hook.stage = 'live';
  let resync = null;
  const syncSoon = () => { clearTimeout(resync); resync = setTimeout(syncAlarms, 500); };

  // ---------------------------------------------------------------- the live socket
  const socket = new LiveSocket({
    onMessage: (msg) => {
      hook.stats.wsBytes = socket.bytes;
      hook.stats.wsMessages = socket.messages;
      if (msg.type === 'positions') {
        hook.stats.states += fleet.applyFrame(msg.buffer);
        hook.stats.lastStates = Date.now();
      } else if (msg.type === 'states' || msg.type === 'hello') {
        const animate = msg.type === 'states';
        const t = fleet.now();
        const ix = msg.ix || [];
        (msg.items || []).forEach((s, k) => fleet.apply(s, animate, ix[k] ?? -1, t));
        if (animate) hook.stats.states += (msg.items || []).length;
        for (const [id, , online] of msg.online || []) fleet.setOnline(id, online);
        hook.stats.lastStates = Date.now();
      } else if (msg.type === 'alarm') {
        if (msg.event === 'raised') alarmHistory.set(msg.id, [Date.parse(msg.at) || Date.now(), msg.kind]);
        alarms.event(msg);
      } else if (msg.type === 'dropped') {
        toast(t('ws_dropped', { n: msg.events }));
        syncSoon();
      } else {
        panels.emit(msg); // an application's event, for the panels that asked for its type
      }
    },
    onStatus: (state, attempt, delay) => {
      setConn(state, attempt, delay);
      if (state === 'restored') { syncSoon(); panels.reconnected(); }
    },
    onAuthFailed: (reason) => endSession(expiredMessage(reason)),
    format: 'bin', // moving units as compact binary frames; everything else stays JSON
  });
  hook.socket = socket;

  // ---------------------------------------------------------------- overview
  const districtNames = new Map();
  const overview = new Overview({
    charts: { units: $('chart-units'), alarms: $('chart-alarms'), air: $('chart-air'), gauges: $('chart-gauges') },
    kpis: { unitsOnline: $('kpi-units'), moving: $('kpi-moving'), alarms: $('kpi-alarms'), offline: $('kpi-offline'), gauges: $('kpi-gauges') },
  });
  function facts() {
    if (!districtNames.size && layers.districtFeatures) {
      for (const f of layers.districtFeatures) districtNames.set(String(f.id), f.properties);
    }
    const units = {};
    let unitsOnline = 0, unitsTotal = 0, offline = 0, gaugesOver = 0;
    const pm = new Map();
    const now = Date.now();
    for (const rec of fleet.records.values()) {
      const stale = fleet.isStale(rec, now);
      if (stale) offline += 1;
      if (isMobile(rec.kind)) {
        unitsTotal += 1;
        if (!stale) unitsOnline += 1;
        const s = fleet.statusOf(rec);
        units[s] = (units[s] || 0) + 1;
      } else if (rec.kind === 'water_level' && fleet.sensorWarning(rec)) {
        gaugesOver += 1;
      } else if (rec.kind === 'air' && typeof rec.reading.pm25 === 'number') {
        const d = (meta.get(rec.id) || {}).district;
        if (d) {
          const acc = pm.get(String(d)) || [0, 0];
          acc[0] += rec.reading.pm25; acc[1] += 1;
          pm.set(String(d), acc);
        }
      }
    }
    const byKind = {};
    const since = now - 3600_000;
    for (const [ms, kind] of alarmHistory.values()) if (ms >= since) byKind[kind] = (byKind[kind] || 0) + 1;
    const pm25ByDistrict = [...pm.entries()].map(([code, [sum, n]]) => {
      const p = districtNames.get(code) || {};
      return { code, name_zh: p.name_zh || code, name_en: p.name_en || code, value: sum / n };
    });
    return { units, unitsOnline, unitsTotal, offline, gaugesOver, openAlarms: alarms.count(), alarmsByKind: byKind, pm25ByDistrict };
  }
  const refreshOverview = () => { if (!replay.active) overview.update(facts()); };
  setInterval(refreshOverview, 3000);

  // ---------------------------------------------------------------- replay
  const replay = new Replay({
    fleet: replayFleet,
    liveFleet: fleet,
    map,
    els: { slider: $('replay-slider'), speed: $('replay-speed'), play: $('replay-play'), load: $('replay-load'), from: $('replay-from'), to: $('replay-to'), clock: $('replay-clock'), status: $('replay-status') },
    onEnter: () => {
      active = replayFleet;
      $('live-canvas').hidden = true;
      $('replay-canvas').hidden = false;
      map.getSource('trail').setData(emptyFc());
      $('alarm-title').dataset.i18n = 'replay_alarms';
      $('alarm-title').textContent = t('replay_alarms');
    },
    onExit: () => {
      active = fleet;
      $('replay-canvas').hidden = true;
      $('live-canvas').hidden = false;
      $('alarm-title').dataset.i18n = 'alarms';
      $('alarm-title').textContent = t('alarms');
      alarms.showLive();
    },
    onAlarms: (shown, raised) => {
      hook.stats.alarmMarkers = shown.filter((a) => a.lon != null).map((a) => a.id);
      alarms.showReplay(raised);
      map.getSource('alarms-live').setData({
        type: 'FeatureCollection',
        features: shown.filter((a) => a.lon != null).map((a) => ({ type: 'Feature', properties: { id: a.id }, geometry: { type: 'Point', coordinates: [a.lon, a.lat] } })),
      });
      replayFleet.setAlarmDevices(shown.map((a) => a.device_id).filter(Boolean));
    },
  });
  hook.replay = replay;
  $('btn-replay').addEventListener('click', () => {
    const bar = $('replay-bar');
    bar.hidden = !bar.hidden;
    $('btn-replay').classList.toggle('active', !bar.hidden);
    if (!bar.hidden) replay.defaults();
    else if (replay.active) replay.exit();
  });
  $('replay-exit').addEventListener('click', () => {
    replay.exit();
    $('replay-bar').hidden = true;
    $('btn-replay').classList.remove('active');
  });

  // ---------------------------------------------------------------- layer panel and report
  $('btn-layers').addEventListener('click', () => {
    const panel = $('layer-panel');
    panel.hidden = !panel.hidden;
    $('btn-layers').classList.toggle('active', !panel.hidden);
  });
  $('btn-report').addEventListener('click', async () => {
    const chosen = layers.collections.filter((c) => layers.visible(c.id)).map((c) => c.id);
    if (!chosen.length) return;
    const b = map.getBounds();
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(',');
    toast(t('report_making'));
    try {
      const res = await api(`/reports/map?layers=${chosen.join(',')}&bbox=${bbox}&lang=${lang}`);
      const blob = await res.blob();
      const name = (/filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '') || [])[1] || 'report.html';
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      toast(t('report_done'));
    } catch (err) {
      if (err instanceof SessionExpired) endSession(expiredMessage(err.message));
      else toast(err.message);
    }
  });

  // ---------------------------------------------------------------- panels
  // The platform's own first (device health, geofences: everybody may see the fences; the
  // health button shows only to the roles that may read it), then each application's that the
  // user's roles allow, as GET /apps lists them (dispatch's incidents, ...).
  hook.stage = 'panels';
  panels.mountModule(healthPanel, null, { id: 'health', roles: [] });
  panels.mountModule(geofencePanel, null, { id: 'geofences', roles: [] });
  await panels.mountApps(apps.applications);
  // The feed once every panel listens: none of their events is lost to a late mount.
  socket.open();

  // Test hooks: where a unit is drawn, and what the layers show.
  hook.unitScreenPos = (id) => {
    const rec = active.records.get(id);
    return rec && rec.slot >= 0 ? active.screenPos(rec) : null;
  };
  hook.layerVisible = (id) => {
    const lid = ['circle', 'line', 'fill'].map((s) => `${id}-${s}`).find((x) => map.getLayer(x));
    return lid ? map.getLayoutProperty(lid, 'visibility') !== 'none' : null;
  };
  hook.ready = true;
  setTimeout(refreshOverview, 1200);
}

// ------------------------------------------------------------------ small helpers

function emptyFc() { return { type: 'FeatureCollection', features: [] }; }

let toastTimer = null;
function toast(text) {
  const el = $('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

let bannerTimer = null;

function connText(state, attempt, delay) {
  return {
    connecting: t('ws_connecting'),
    open: t('ws_open'),
    reconnecting: t('ws_reconnecting'),
    restored: t('ws_restored'),
    down: t('ws_down', { s: Math.ceil((delay || 0) / 1000), n: attempt }),
  }[state];
}

// A language switch re-words the connection state (and its banner, if shown), nothing more.
onLang(() => {
  if (!hook.conn) return;
  const text = connText(hook.conn, ...(hook.connArgs || []));
  $('conn-text').textContent = text;
  if (!$('banner').hidden && $('banner').dataset.conn) $('banner').textContent = text;
});

function setConn(state, attempt, delay) {
  hook.connArgs = [attempt, delay];
  const conn = $('conn');
  conn.dataset.state = state;
  const text = connText(state, attempt, delay);
  $('conn-text').textContent = text;
  const banner = $('banner');
  banner.dataset.conn = '1';
  clearTimeout(bannerTimer);
  if (state === 'down' || state === 'reconnecting') {
    banner.className = 'banner down';
    banner.textContent = text;
    banner.hidden = false;
  } else if (state === 'restored') {
    banner.className = 'banner ok';
    banner.textContent = text;
    banner.hidden = false;
    bannerTimer = setTimeout(() => { banner.hidden = true; }, 5000);
  } else {
    banner.hidden = true;
  }
  hook.conn = state;
}

// The legend's glyph of a kind: its marker shape (live-gl.js's order, as GET /apps gives it)
// in the colour the map draws it with, a unit's "available" or a station's "normal".
const GLYPHS = [
  ['path', { d: 'M8 1 13 9a5 5 0 1 1-10 0Z' }], // arrow
  ['circle', { cx: 8, cy: 8, r: 5.5 }], // circle
  ['path', { d: 'M8 2 14 8 8 14 2 8Z' }], // diamond
  ['rect', { x: 3, y: 3, width: 10, height: 10 }], // square
  ['circle', { cx: 8, cy: 8, r: 4 }], // dot
  ['path', { d: 'M8 2 14 13H2Z' }], // triangle
];
const SVG = 'http://www.w3.org/2000/svg';

function svgNode(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function kindGlyph(kind) {
  const fill = isMobile(kind) ? STATUS_COLORS.available : SENSOR_COLORS.normal;
  const svg = svgNode('svg', { class: 'kind-glyph', viewBox: '0 0 16 16', fill, stroke: '#0b1622' });
  const [tag, attrs] = GLYPHS[shapeIndex(kind)] || GLYPHS[1];
  svg.append(svgNode(tag, attrs));
  return svg;
}

function swatch(style) {
  const i = el('i');
  Object.assign(i.style, style);
  return i;
}

function renderLiveKinds(kinds, hidden = new Set()) {
  $('live-kinds').replaceChildren(...kinds.map((k) => el('label', { class: 'lp-row' },
    el('input', { type: 'checkbox', dataset: { kind: k }, checked: !hidden.has(k) }),
    kindGlyph(k),
    el('span', { class: 'lp-name' }, tOr(`kind.${k}`, k)))));
  const legend = Object.entries(STATUS_COLORS).filter(([s]) => s !== 'unknown')
    .map(([s, c]) => el('span', {}, swatch({ background: c }), t(`status.${s}`)));
  legend.push(el('span', {}, swatch({ background: SENSOR_COLORS.warning }), t('sensor.warning')));
  legend.push(el('span', {}, swatch({ background: '#59636e', opacity: '.6' }), t('stale')));
  for (const [d, c] of Object.entries(DEPT_COLORS)) {
    legend.push(el('span', {}, swatch({ background: 'transparent', border: `2px solid ${c}` }), tOr(`dept.${d}`, d)));
  }
  $('live-legend').replaceChildren(...legend);
}

// ------------------------------------------------------------------ boot

applyStatic();
tickClock();
const pending = sessionStorage.getItem(MSG_KEY);
sessionStorage.removeItem(MSG_KEY);
if (session.load()) {
  $('login').hidden = true;
  start().catch((err) => {
    console.error('console start:', err && err.message);
    hook.errors.push(String(err && err.message));
    showLogin(`${t('login_failed')}${err.message}`);
  });
} else {
  showLogin(pending || '');
}

// The live layer: every unit and sensor as a WebGL point sprite on a canvas over the map.
//
// Why not a MapLibre GeoJSON source: re-tiling 10,000+ moving points every second costs the
// worker and repaints the whole map; here a tick rewrites one typed array, the GPU interpolates
// each marker from its last to its new position, and only this canvas is redrawn each frame.
// The map is kept north-up and flat, so screen position is plain Web Mercator arithmetic.
// The drawing itself runs in a worker on an OffscreenCanvas where the browser has one
// (live-worker.js); the state (records, the attribute array, picking) stays here.

import { PointRenderer, GL_OPTIONS, STRIDE } from './live-gl.js';
import { isMobile, shapeIndex, intervalOf, overThreshold } from './kinds.js';

export const STATUS_COLORS = {
  available: '#2fbf71',
  dispatched: '#f5c542',
  en_route: '#ff8c1a',
  on_scene: '#d05cff',
  out_of_service: '#7d8590',
  unknown: '#9aa4b2',
};
export const SENSOR_COLORS = { normal: '#36cfc9', warning: '#ff3b3b' };
export const DEPT_COLORS = { fire: '#ff4d4f', medical: '#f4f6fa', police: '#3d8bfd' };
const STALE_INTERVALS = 3;

const F_STALE = 1, F_SELECTED = 2, F_MINE = 4, F_HIDDEN = 8, F_ALARM = 16;

function rgb24(hex) {
  const v = parseInt(hex.slice(1), 16);
  return Number.isFinite(v) ? v : 0x9aa4b2;
}

export function mercX(lon) { return (lon + 180) / 360; }
export function mercY(lat) {
  const s = Math.sin((lat * Math.PI) / 180);
  return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
}

export class LiveFleet {
  // `replay`: records carry past times, so none of them is ever stale.
  constructor(map, canvas, { origin, meta = new Map(), myDept = null, replay = false } = {}) {
    this.map = map;
    this.replay = replay;
    this.canvas = canvas;
    this.meta = meta;
    this.myDept = myDept;
    this.records = new Map();
    this.slots = [];
    this.cap = 1024;
    this.data = new Float32Array(this.cap * STRIDE);
    this.dirty = true;
    this.ox = mercX(origin[0]);
    this.oy = mercY(origin[1]);
    this.hiddenKinds = new Set();
    this.deptOnly = false;
    this.selected = null;
    this.alarmDevices = new Set();
    this.duration = 1.0;
    this.t0 = performance.now();
    this.drawnCount = 0;
    this.visible = true;
    this.lastDraw = 0;
    this.lastUpdate = -1e6;
    this.frameGap = 100;
    this.byIndex = []; // the live feed's device index -> record (binary position frames)
    this.inflight = false;
    this.pendingDraw = false;
    this.worker = null;
    this.renderer = null;
    if (offscreenWebGL2() && canvas.transferControlToOffscreen) {
      const offscreen = canvas.transferControlToOffscreen();
      this.worker = new Worker(new URL('./live-worker.js', import.meta.url), { type: 'module' });
      this.worker.onmessage = (ev) => {
        if (ev.data.type === 'error') { console.warn('live layer:', ev.data.message); return; }
        this.inflight = false;
        if (this.pendingDraw) { this.pendingDraw = false; this.draw(); }
      };
      this.worker.postMessage({ type: 'init', canvas: offscreen }, [offscreen]);
    } else {
      const gl = canvas.getContext('webgl2', GL_OPTIONS);
      if (!gl) throw new Error('WebGL2 is not available');
      this.renderer = new PointRenderer(gl);
    }
  }

  now() { return (performance.now() - this.t0) / 1000; }

  grow() {
    const next = new Float32Array(this.cap * 2 * STRIDE);
    next.set(this.data);
    this.data = next;
    this.cap *= 2;
  }

  // ----------------------------------------------------------------- state

  // One state [id, kind, lon, lat, ts, status, reading]; `ix` is the feed's index for it.
  apply(state, animate = true, ix = -1, t = this.now()) {
    const [id, kind, lon, lat, ts, status, reading] = state;
    let rec = this.records.get(id);
    if (!rec) {
      rec = { id, kind, slot: -1, lon: null, lat: null, ts: 0, status: null, reading: {}, online: true };
      this.records.set(id, rec);
    }
    if (ix >= 0) this.byIndex[ix] = rec;
    rec.kind = kind;
    rec.ts = ts;
    rec.status = status;
    rec.reading = reading || {};
    if (rec.online === false && ts > Date.now() - 60000) rec.online = true;
    if (lon == null || lat == null) return rec;
    rec.lon = lon;
    rec.lat = lat;
    const x = mercX(lon) - this.ox, y = mercY(lat) - this.oy;
    const d = this.data;
    if (rec.slot < 0) {
      if (this.slots.length >= this.cap) this.grow();
      rec.slot = this.slots.length;
      this.slots.push(rec);
      const o = rec.slot * STRIDE;
      d[o] = x; d[o + 1] = y; d[o + 2] = x; d[o + 3] = y; d[o + 4] = -1e6;
    } else {
      const o = rec.slot * STRIDE;
      this.move(o, x, y, animate, t);
      // A unit that only moved keeps its colours: turn it, skip the restyle.
      const rs = rec.reading.status;
      if (isMobile(kind) && rec.styledStatus === status && rec.styledReadingStatus === rs && !(d[o + 9] & F_STALE)) {
        const h = rec.reading.heading_deg;
        d[o + 8] = typeof h === 'number' ? h : 0;
        return rec;
      }
    }
    this.style(rec);
    return rec;
  }

  move(o, x, y, animate, t) {
    const d = this.data;
    if (animate) {
      // From wherever the marker is drawn right now, so a late tick never jumps back.
      const k = Math.min(1, Math.max(0, (t - d[o + 4]) / this.duration));
      d[o] = d[o] + (d[o + 2] - d[o]) * k;
      d[o + 1] = d[o + 1] + (d[o + 3] - d[o + 1]) * k;
      d[o + 4] = t;
      this.lastUpdate = t;
    } else {
      d[o] = x; d[o + 1] = y; d[o + 4] = -1e6;
    }
    d[o + 2] = x; d[o + 3] = y;
    this.dirty = true;
  }

  // A binary position frame of the live feed (see web/routers/live.py): units whose status and
  // reading are as last sent, with new positions, times, headings and speeds. Only numbers are
  // touched: no objects are made per unit, and colours stay as they were.
  applyFrame(buffer) {
    const head = new DataView(buffer, 0, 16);
    const n = head.getUint32(4, true);
    const base = head.getFloat64(8, true);
    const ix = new Uint32Array(buffer, 16, n);
    const lon = new Int32Array(buffer, 16 + 4 * n, n);
    const lat = new Int32Array(buffer, 16 + 8 * n, n);
    const dt = new Int32Array(buffer, 16 + 12 * n, n);
    const heading = new Uint16Array(buffer, 16 + 16 * n, n);
    const speed = new Uint16Array(buffer, 16 + 18 * n, n);
    const t = this.now();
    const recent = Date.now() - 60000;
    const d = this.data;
    let restyle = null;
    for (let i = 0; i < n; i++) {
      const rec = this.byIndex[ix[i]];
      if (!rec) continue; // its first state has not arrived (cannot happen on one socket)
      const x0 = lon[i] / 1e7, y0 = lat[i] / 1e7;
      rec.lon = x0; rec.lat = y0;
      rec.ts = base + dt[i];
      if (rec.online === false && rec.ts > recent) rec.online = true; // reporting again
      const r = rec.reading;
      if (heading[i] !== 0xffff) r.heading_deg = heading[i] / 100;
      if (speed[i] !== 0xffff) r.speed_kmh = speed[i] / 10;
      if (rec.slot < 0) { (restyle || (restyle = [])).push(rec); continue; }
      const o = rec.slot * STRIDE;
      this.move(o, mercX(x0) - this.ox, mercY(y0) - this.oy, true, t);
      if (heading[i] !== 0xffff && isMobile(rec.kind)) d[o + 8] = heading[i] / 100;
      if (d[o + 9] & F_STALE) this.style(rec); // fresh again
    }
    // Rare: a unit first seen without a position gets its slot through the general path.
    if (restyle) for (const rec of restyle) this.apply([rec.id, rec.kind, rec.lon, rec.lat, rec.ts, rec.status, rec.reading], false);
    return n;
  }

  // A replayed unit before its first report: kept, not drawn.
  setAbsent(id, absent) {
    const rec = this.records.get(id);
    if (!rec || rec.slot < 0 || Boolean(rec.absent) === absent) return;
    rec.absent = absent;
    this.style(rec);
  }

  setOnline(id, online) {
    const rec = this.records.get(id);
    if (!rec) return;
    rec.online = online;
    if (rec.slot >= 0) this.style(rec);
  }

  isStale(rec, nowMs = Date.now()) {
    if (this.replay) return false;
    if (rec.online === false) return true;
    const m = this.meta.get(rec.id);
    const interval = (m && m.interval_s) || intervalOf(rec.kind) || 600;
    return nowMs - rec.ts > Math.max(STALE_INTERVALS * interval * 1000, 15000);
  }

  statusOf(rec) {
    if (!isMobile(rec.kind)) return this.sensorWarning(rec) ? 'warning' : 'normal';
    const m = this.meta.get(rec.id);
    return (rec.reading && rec.reading.status) || rec.status || (m && m.unit_status) || 'unknown';
  }

  // A station over any threshold its kind declares (GET /apps), with its site's thresholds and
  // its permit's limits from the device list; a flag only, the alarms say the rest.
  sensorWarning(rec) {
    const m = this.meta.get(rec.id);
    return overThreshold(rec.kind, rec.reading, m && m.thresholds, m && m.limits);
  }

  style(rec, nowMs = Date.now()) {
    const o = rec.slot * STRIDE;
    const d = this.data;
    const m = this.meta.get(rec.id);
    const dept = m ? (m.unit_department || m.department) : null;
    const status = this.statusOf(rec);
    const mobile = isMobile(rec.kind);
    const fill = mobile
      ? (STATUS_COLORS[status] || STATUS_COLORS.unknown)
      : SENSOR_COLORS[status];
    let flags = 0;
    if (this.isStale(rec, nowMs)) flags |= F_STALE;
    if (this.selected === rec.id) flags |= F_SELECTED;
    if (this.myDept && dept === this.myDept) flags |= F_MINE;
    if (rec.absent || this.hiddenKinds.has(rec.kind) || (this.deptOnly && this.myDept && dept !== this.myDept)) {
      flags |= F_HIDDEN;
    }
    if (this.alarmDevices.has(rec.id)) flags |= F_ALARM;
    d[o + 5] = shapeIndex(rec.kind);
    d[o + 6] = rgb24(fill);
    d[o + 7] = rgb24(mobile ? (DEPT_COLORS[dept] || '#e6edf3') : '#0b1622');
    const heading = rec.reading && rec.reading.heading_deg;
    d[o + 8] = typeof heading === 'number' ? heading : 0;
    d[o + 9] = flags;
    d[o + 10] = mobile ? 22 : 15;
    rec.styledStatus = rec.status;
    rec.styledReadingStatus = rec.reading && rec.reading.status;
    this.dirty = true;
  }

  restyleAll() {
    const now = Date.now();
    for (const rec of this.slots) this.style(rec, now);
  }

  setKindHidden(kind, hidden) {
    if (hidden) this.hiddenKinds.add(kind); else this.hiddenKinds.delete(kind);
    this.restyleAll();
  }

  setDeptOnly(on) {
    this.deptOnly = on;
    this.restyleAll();
  }

  select(id) {
    const prev = this.selected ? this.records.get(this.selected) : null;
    this.selected = id;
    if (prev && prev.slot >= 0) this.style(prev);
    const rec = id ? this.records.get(id) : null;
    if (rec && rec.slot >= 0) this.style(rec);
  }

  setAlarmDevices(ids) {
    const changed = new Set([...this.alarmDevices, ...ids]);
    this.alarmDevices = new Set(ids);
    for (const id of changed) {
      const rec = this.records.get(id);
      if (rec && rec.slot >= 0) this.style(rec);
    }
  }

  clear() {
    this.records.clear();
    this.slots = [];
    this.byIndex = [];
    this.dirty = true;
  }

  // ----------------------------------------------------------------- drawing

  camera() {
    const c = this.map.getCenter();
    const z = this.map.getZoom();
    return { cx: mercX(c.lng) - this.ox, cy: mercY(c.lat) - this.oy, world: 512 * 2 ** z, z };
  }

  // Called every animation frame: redraws when something changed, and moves markers at most
  // ten times a second — smooth enough for 1 Hz reports, and it leaves the GPU (often a
  // software one on wall controllers) free for the map. Camera moves draw at once (draw()).
  tick(nowMs) {
    const animating = this.now() - this.lastUpdate < this.duration + 0.1 || this.alarmDevices.size || this.selected;
    if ((this.dirty || animating) && nowMs - this.lastDraw >= this.frameGap) this.draw();
  }

  draw() {
    if (this.inflight) { this.pendingDraw = true; return; } // one frame in the worker at a time
    this.lastDraw = performance.now();
    const dpr = window.devicePixelRatio || 1;
    const width = Math.round(this.canvas.clientWidth * dpr), height = Math.round(this.canvas.clientHeight * dpr);
    const count = this.visible ? this.slots.length : 0;
    const cam = this.camera();
    if (!this.rem || width !== this.lastWidth) {
      // Read once per size: a style read every frame costs a style recalculation.
      this.rem = parseFloat(getComputedStyle(document.documentElement).fontSize) / 16 || 1;
      this.lastWidth = width;
    }
    const zoomScale = cam.z < 7 ? 0.45 : cam.z < 9 ? 0.6 : cam.z < 11 ? 0.8 : 1.0;
    const frame = {
      type: 'frame', width, height, cx: cam.cx, cy: cam.cy, world: cam.world * dpr,
      now: this.now(), dur: this.duration, scale: dpr * Math.min(this.rem, 2.5) * zoomScale, count,
    };
    const upload = this.dirty || count !== this.sentCount;
    this.dirty = false;
    this.sentCount = count;
    this.drawnCount = count;
    if (this.worker) {
      const transfer = [];
      if (upload) {
        frame.data = this.data.slice(0, count * STRIDE);
        transfer.push(frame.data.buffer);
      }
      this.inflight = true;
      this.worker.postMessage(frame, transfer);
      return;
    }
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    if (upload) this.renderer.upload(this.data, count);
    this.renderer.draw(frame);
  }

  // Where a record is drawn now, in CSS pixels of the map container.
  screenPos(rec, cam = this.camera(), t = this.now()) {
    const o = rec.slot * STRIDE;
    const d = this.data;
    const k = Math.min(1, Math.max(0, (t - d[o + 4]) / this.duration));
    const x = d[o] + (d[o + 2] - d[o]) * k, y = d[o + 1] + (d[o + 3] - d[o + 1]) * k;
    return [
      (x - cam.cx) * cam.world + this.canvas.clientWidth / 2,
      (y - cam.cy) * cam.world + this.canvas.clientHeight / 2,
    ];
  }

  pick(px, py, radius = 14) {
    const cam = this.camera();
    const t = this.now();
    let best = null, bestD = radius * radius;
    for (const rec of this.slots) {
      if (this.data[rec.slot * STRIDE + 9] & F_HIDDEN) continue;
      const [x, y] = this.screenPos(rec, cam, t);
      const dd = (x - px) ** 2 + (y - py) ** 2;
      if (dd < bestD) { bestD = dd; best = rec; }
    }
    return best;
  }

  // Interpolated lon/lat of a record now (for the trail's head and fly-to).
  lonLat(rec) {
    return [rec.lon, rec.lat];
  }
}

// WebGL2 on an OffscreenCanvas (in the page's thread, as a probe for the worker's).
function offscreenWebGL2() {
  try {
    return typeof OffscreenCanvas !== 'undefined' && Boolean(new OffscreenCanvas(1, 1).getContext('webgl2'));
  } catch {
    return false;
  }
}

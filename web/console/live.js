// The live layer: every unit and sensor as a WebGL point sprite on a canvas over the map.
//
// Why not a MapLibre GeoJSON source: re-tiling 10,000+ moving points every second costs the
// worker and repaints the whole map; here a tick rewrites one typed array, the GPU interpolates
// each marker from its last to its new position, and only this canvas is redrawn each frame.
// The map is kept north-up and flat, so screen position is plain Web Mercator arithmetic.

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
export const KIND_SHAPES = {
  vehicle: 0, air: 1, water_level: 2, rain: 3, soil: 4, water_quality: 1, emission: 5, signal: 4,
};
export const KINDS = Object.keys(KIND_SHAPES);
// GB 3095-2012 hourly limits the alarm rules use (µg/m³; CO mg/m³).
const AIR_LIMITS = { pm25: 150, pm10: 350, so2: 500, no2: 200, o3: 200, co: 10 };
const STALE_INTERVALS = 3;

const STRIDE = 12; // fromX fromY toX toY t0 shape fill ring heading flags size pad
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

const VS = `#version 300 es
in vec2 a_from; in vec2 a_to; in float a_t0;
in vec4 a_style; // shape, fill rgb24, ring rgb24, heading
in vec2 a_flags; // flags, size
uniform vec2 u_center; uniform float u_world; uniform vec2 u_viewport;
uniform float u_now; uniform float u_dur; uniform float u_scale;
out vec3 v_fill; out vec3 v_ring; out float v_shape; out vec2 v_rot; out float v_flags;
vec3 unpack(float c) {
  float r = floor(c / 65536.0); float g = floor((c - r * 65536.0) / 256.0);
  float b = c - r * 65536.0 - g * 256.0;
  return vec3(r, g, b) / 255.0;
}
void main() {
  float flags = a_flags.x;
  float k = clamp((u_now - a_t0) / u_dur, 0.0, 1.0);
  vec2 m = mix(a_from, a_to, k);
  vec2 px = (m - u_center) * u_world;
  gl_Position = vec4(px.x / (u_viewport.x * 0.5), -px.y / (u_viewport.y * 0.5), 0.0, 1.0);
  bool hidden = mod(floor(flags / 8.0), 2.0) > 0.5;
  bool selected = mod(floor(flags / 2.0), 2.0) > 0.5;
  bool alarm = mod(floor(flags / 16.0), 2.0) > 0.5;
  float size = a_flags.y * u_scale * (selected ? 2.0 : (alarm ? 1.6 : 1.0));
  gl_PointSize = hidden ? 0.0 : size;
  if (hidden) gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
  v_fill = unpack(a_style.y); v_ring = unpack(a_style.z);
  float h = a_style.x < 0.5 ? radians(a_style.w) : 0.0;
  v_shape = a_style.x; v_rot = vec2(cos(h), sin(h)); v_flags = flags;
}`;

// Shapes come from a small atlas drawn once (fill in red, silhouette in green): a texture
// fetch per pixel instead of distance maths, which a software renderer feels at 10,000 units.
const FS = `#version 300 es
precision highp float;
in vec3 v_fill; in vec3 v_ring; in float v_shape; in vec2 v_rot; in float v_flags;
uniform float u_now;
uniform sampler2D u_atlas;
out vec4 color;
void main() {
  vec2 p = gl_PointCoord * 2.0 - 1.0;
  float halo = 0.0;
  float shrink = 1.0;
  bool selected = mod(floor(v_flags / 2.0), 2.0) > 0.5;
  bool alarm = mod(floor(v_flags / 16.0), 2.0) > 0.5;
  if (selected) { shrink = 0.5; halo = 1.0 - smoothstep(0.06, 0.12, abs(length(p) - 0.88)); }
  else if (alarm) {
    shrink = 0.62;
    float r = 0.7 + 0.25 * fract(u_now * 0.8);
    halo = (1.0 - smoothstep(0.05, 0.1, abs(length(p) - r))) * (1.0 - fract(u_now * 0.8));
  }
  vec2 q = p / shrink;
  vec2 r = vec2(v_rot.x * q.x + v_rot.y * q.y, -v_rot.y * q.x + v_rot.x * q.y);
  vec4 m = vec4(0.0);
  if (abs(r.x) < 1.0 && abs(r.y) < 1.0) {
    m = texture(u_atlas, vec2((v_shape + r.x * 0.5 + 0.5) / 6.0, r.y * 0.5 + 0.5));
  }
  vec3 fill = v_fill;
  float alpha = 1.0;
  if (mod(v_flags, 2.0) > 0.5) { fill = mix(v_fill, vec3(0.35, 0.38, 0.42), 0.75); alpha = 0.55; }
  vec3 rgb = mix(v_ring, fill, m.r);
  float a = m.g * alpha;
  vec3 haloColor = selected ? vec3(1.0) : vec3(1.0, 0.23, 0.23);
  rgb = mix(haloColor, rgb, a);
  a = max(a, halo);
  if (a < 0.01) discard;
  color = vec4(rgb * a, a);
}`;

const CELL = 64;

// The six marker shapes, each in a 64 px cell; the vehicle points up (north) before rotation.
function shapePath(i, inset) {
  const p = new Path2D();
  const c = CELL / 2;
  if (i === 0) {
    p.moveTo(c, 3 + inset * 1.6);
    p.lineTo(c + 17 - inset, 30);
    p.arc(c, 38, 17 - inset, -0.1 * Math.PI, 1.1 * Math.PI);
    p.lineTo(c - 17 + inset, 30);
    p.closePath();
  } else if (i === 1) p.arc(c, c, 22 - inset, 0, 2 * Math.PI);
  else if (i === 2) {
    const r = 26 - inset * 1.4;
    p.moveTo(c, c - r); p.lineTo(c + r, c); p.lineTo(c, c + r); p.lineTo(c - r, c); p.closePath();
  } else if (i === 3) p.rect(12 + inset, 12 + inset, 40 - 2 * inset, 40 - 2 * inset);
  else if (i === 4) p.arc(c, c, 15 - inset, 0, 2 * Math.PI);
  else {
    p.moveTo(c, 6 + inset * 2); p.lineTo(58 - inset * 1.7, 54 - inset); p.lineTo(6 + inset * 1.7, 54 - inset);
    p.closePath();
  }
  return p;
}

function atlasPixels() {
  const draw = (inset) => {
    const cv = document.createElement('canvas');
    cv.width = CELL * 6; cv.height = CELL;
    const g = cv.getContext('2d');
    g.fillStyle = '#fff';
    for (let i = 0; i < 6; i++) {
      g.save(); g.translate(i * CELL, 0); g.fill(shapePath(i, inset)); g.restore();
    }
    return g.getImageData(0, 0, cv.width, cv.height).data;
  };
  const outer = draw(0), inner = draw(5);
  const out = new Uint8Array(outer.length);
  for (let k = 0; k < outer.length; k += 4) {
    out[k] = inner[k + 3]; out[k + 1] = outer[k + 3]; out[k + 3] = 255;
  }
  return out;
}

function compile(gl, type, src) {
  const sh = gl.createShader(type);
  gl.shaderSource(sh, src);
  gl.compileShader(sh);
  if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(sh));
  return sh;
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
    this.gl = canvas.getContext('webgl2', { premultipliedAlpha: true, antialias: false, alpha: true });
    if (!this.gl) throw new Error('WebGL2 is not available');
    this.initGL();
  }

  initGL() {
    const gl = this.gl;
    const prog = gl.createProgram();
    gl.attachShader(prog, compile(gl, gl.VERTEX_SHADER, VS));
    gl.attachShader(prog, compile(gl, gl.FRAGMENT_SHADER, FS));
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    this.prog = prog;
    this.buf = gl.createBuffer();
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buf);
    const attr = (name, size, offset) => {
      const loc = gl.getAttribLocation(prog, name);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, gl.FLOAT, false, STRIDE * 4, offset * 4);
    };
    attr('a_from', 2, 0);
    attr('a_to', 2, 2);
    attr('a_t0', 1, 4);
    attr('a_style', 4, 5);
    attr('a_flags', 2, 9);
    gl.bindVertexArray(null);
    this.atlas = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.atlas);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, CELL * 6, CELL, 0, gl.RGBA, gl.UNSIGNED_BYTE, atlasPixels());
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    this.u = {};
    for (const n of ['u_center', 'u_world', 'u_viewport', 'u_now', 'u_dur', 'u_scale', 'u_atlas']) {
      this.u[n] = gl.getUniformLocation(prog, n);
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

  apply(state, animate = true) {
    const [id, kind, lon, lat, ts, status, reading] = state;
    let rec = this.records.get(id);
    if (!rec) {
      rec = { id, kind, slot: -1, lon: null, lat: null, ts: 0, status: null, reading: {}, online: true };
      this.records.set(id, rec);
    }
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
      if (animate) {
        // From wherever the marker is drawn right now, so a late tick never jumps back.
        const k = Math.min(1, Math.max(0, (this.now() - d[o + 4]) / this.duration));
        d[o] = d[o] + (d[o + 2] - d[o]) * k;
        d[o + 1] = d[o + 1] + (d[o + 3] - d[o + 1]) * k;
        d[o + 4] = this.now();
        this.lastUpdate = d[o + 4];
      } else {
        d[o] = x; d[o + 1] = y; d[o + 4] = -1e6;
      }
      d[o + 2] = x; d[o + 3] = y;
    }
    this.style(rec);
    return rec;
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
    const interval = (m && m.interval_s) || (rec.kind === 'vehicle' ? 5 : 600);
    return nowMs - rec.ts > Math.max(STALE_INTERVALS * interval * 1000, 15000);
  }

  statusOf(rec) {
    if (rec.kind !== 'vehicle') return this.sensorWarning(rec) ? 'warning' : 'normal';
    const m = this.meta.get(rec.id);
    return (rec.reading && rec.reading.status) || rec.status || (m && m.unit_status) || 'unknown';
  }

  sensorWarning(rec) {
    const r = rec.reading || {};
    const m = this.meta.get(rec.id);
    if (rec.kind === 'water_level') {
      const warn = m && m.thresholds && m.thresholds.warning_m;
      return typeof r.level_m === 'number' && warn != null && r.level_m > warn;
    }
    if (rec.kind === 'air') {
      return Object.entries(AIR_LIMITS).some(([k, lim]) => typeof r[k] === 'number' && r[k] > lim);
    }
    if (rec.kind === 'signal') return Boolean(r.fault);
    if (rec.kind === 'water_quality') {
      return (typeof r.ph === 'number' && (r.ph < 6 || r.ph > 9))
        || (typeof r.cod_mgl === 'number' && r.cod_mgl > 20);
    }
    return false;
  }

  style(rec, nowMs = Date.now()) {
    const o = rec.slot * STRIDE;
    const d = this.data;
    const m = this.meta.get(rec.id);
    const dept = m ? (m.unit_department || m.department) : null;
    const status = this.statusOf(rec);
    const fill = rec.kind === 'vehicle'
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
    d[o + 5] = KIND_SHAPES[rec.kind] ?? 1;
    d[o + 6] = rgb24(fill);
    d[o + 7] = rgb24(rec.kind === 'vehicle' ? (DEPT_COLORS[dept] || '#e6edf3') : '#0b1622');
    const heading = rec.reading && rec.reading.heading_deg;
    d[o + 8] = typeof heading === 'number' ? heading : 0;
    d[o + 9] = flags;
    d[o + 10] = rec.kind === 'vehicle' ? 22 : 15;
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
    this.dirty = true;
  }

  // ----------------------------------------------------------------- drawing

  camera() {
    const c = this.map.getCenter();
    const z = this.map.getZoom();
    return { cx: mercX(c.lng) - this.ox, cy: mercY(c.lat) - this.oy, world: 512 * 2 ** z, z };
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(this.canvas.clientWidth * dpr), h = Math.round(this.canvas.clientHeight * dpr);
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
  }

  // Called every animation frame: redraws when something changed, and moves markers at most
  // ten times a second — smooth enough for 1 Hz reports, and it leaves the GPU (often a
  // software one on wall controllers) free for the map. Camera moves draw at once (draw()).
  tick(nowMs) {
    const animating = this.now() - this.lastUpdate < this.duration + 0.1 || this.alarmDevices.size || this.selected;
    if ((this.dirty || animating) && nowMs - this.lastDraw >= this.frameGap) this.draw();
  }

  draw() {
    this.lastDraw = performance.now();
    const gl = this.gl;
    this.resize();
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (!this.visible || !this.slots.length) { this.drawnCount = 0; return; }
    gl.useProgram(this.prog);
    gl.bindBuffer(gl.ARRAY_BUFFER, this.buf);
    if (this.dirty) {
      gl.bufferData(gl.ARRAY_BUFFER, this.data.subarray(0, this.slots.length * STRIDE), gl.DYNAMIC_DRAW);
      this.dirty = false;
    }
    const dpr = window.devicePixelRatio || 1;
    const cam = this.camera();
    if (!this.rem || this.canvas.width !== this.lastWidth) {
      // Read once per size: a style read every frame costs a style recalculation.
      this.rem = parseFloat(getComputedStyle(document.documentElement).fontSize) / 16 || 1;
      this.lastWidth = this.canvas.width;
    }
    const rem = this.rem;
    const zoomScale = cam.z < 7 ? 0.45 : cam.z < 9 ? 0.6 : cam.z < 11 ? 0.8 : 1.0;
    gl.uniform2f(this.u.u_center, cam.cx, cam.cy);
    gl.uniform1f(this.u.u_world, cam.world * dpr);
    gl.uniform2f(this.u.u_viewport, this.canvas.width, this.canvas.height);
    gl.uniform1f(this.u.u_now, this.now());
    gl.uniform1f(this.u.u_dur, this.duration);
    gl.uniform1f(this.u.u_scale, dpr * Math.min(rem, 2.5) * zoomScale);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.atlas);
    gl.uniform1i(this.u.u_atlas, 0);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.POINTS, 0, this.slots.length);
    gl.bindVertexArray(null);
    this.drawnCount = this.slots.length;
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

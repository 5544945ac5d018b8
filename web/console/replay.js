// Time-synced replay: tracks of the vehicles in view, series of the sensors in view and the
// alarms of a past window, animated together on the client at 1x to 60x. The window is picked
// in Beijing time, the time every clock on the console shows.

import { api } from './api.js';
import { t, fmtTime } from './i18n.js';
import { isMobile, kindOf, primaryField } from './kinds.js';

const MAX_VEHICLES = 300;
const MAX_SENSORS = 80;

// The figure a station is replayed by: its kind's primary field, when that is a number.
function sensorField(kind) {
  const field = primaryField(kind);
  const spec = field && (kindOf(kind).fields || []).find((f) => f.name === field);
  return spec && (spec.type === 'num' || spec.type === 'int') ? field : null;
}
const BEIJING_MS = 8 * 3600_000; // UTC+8 all year (no daylight saving since 1991)

// A datetime-local value (wall time in Beijing, seconds optional) and back.
export function fromBeijingInput(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)) - BEIJING_MS;
}
export function toBeijingInput(ms) {
  return new Date(Math.floor(ms / 1000) * 1000 + BEIJING_MS).toISOString().slice(0, 19);
}

async function pool(items, size, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      try { out[i] = await fn(items[i]); } catch (err) { out[i] = null; console.warn('replay:', err.message); }
    }
  }
  await Promise.all(Array.from({ length: Math.min(size, items.length) }, worker));
  return out;
}

// The index of the last time <= t (times ascending), or -1.
function before(times, t) {
  let lo = 0, hi = times.length - 1, ans = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid] <= t) { ans = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return ans;
}

export class Replay {
  constructor({ fleet, liveFleet, map, els, onEnter, onExit, onAlarms, onFrame }) {
    this.fleet = fleet;
    this.liveFleet = liveFleet;
    this.map = map;
    this.els = els;
    this.onEnter = onEnter;
    this.onExit = onExit;
    this.onAlarms = onAlarms;
    this.onFrame = onFrame || (() => {});
    this.tracks = [];
    this.sensors = [];
    this.alarms = [];
    this.start = 0;
    this.end = 0;
    this.now = 0;
    this.speed = 10;
    this.playing = false;
    this.active = false;
    this.lastFrame = 0;
    this.shownAlarms = '';
    this.generation = 0; // a load answered after the user left replay is thrown away
    els.slider.addEventListener('input', () => {
      this.now = this.start + (this.end - this.start) * (Number(els.slider.value) / 1000);
      this.render();
    });
    els.speed.addEventListener('change', () => { this.speed = Number(els.speed.value); });
    els.play.addEventListener('click', async () => {
      if (this.playing) { this.pause(); return; }
      if (!this.active) await this.loadFromInputs(); // "play" on a fresh window loads it first
      this.play();
    });
    els.load.addEventListener('click', () => this.loadFromInputs());
  }

  defaults() {
    const end = Date.now();
    const start = end - 30 * 60 * 1000;
    if (!this.els.from.value) this.els.from.value = toBeijingInput(start);
    if (!this.els.to.value) this.els.to.value = toBeijingInput(end);
  }

  async loadFromInputs() {
    const start = fromBeijingInput(this.els.from.value);
    const end = fromBeijingInput(this.els.to.value);
    if (!(start < end)) {
      this.els.status.textContent = t('replay_bad_window');
      return;
    }
    await this.load(start, end);
  }

  inView(rec, bounds) {
    return rec.lon != null && rec.lon >= bounds.getWest() && rec.lon <= bounds.getEast()
      && rec.lat >= bounds.getSouth() && rec.lat <= bounds.getNorth();
  }

  async load(start, end) {
    this.pause();
    const generation = ++this.generation;
    this.els.status.textContent = t('replay_loading');
    const bounds = this.map.getBounds();
    const records = [...this.liveFleet.records.values()];
    const vehicles = records.filter((r) => isMobile(r.kind) && this.inView(r, bounds)).slice(0, MAX_VEHICLES);
    const sensors = records.filter((r) => !isMobile(r.kind) && sensorField(r.kind) && this.inView(r, bounds)).slice(0, MAX_SENSORS);
    const qs = `start=${encodeURIComponent(new Date(start).toISOString())}&end=${encodeURIComponent(new Date(end).toISOString())}`;
    const bucket = Math.max(60, Math.round((end - start) / 1000 / 300));
    const [tracks, series, alarms] = await Promise.all([
      pool(vehicles, 6, (r) => api(`/devices/${encodeURIComponent(r.id)}/track?${qs}&max_points=800`)),
      pool(sensors, 6, (r) => api(`/devices/${encodeURIComponent(r.id)}/series?field=${sensorField(r.kind)}&${qs}&bucket_s=${bucket}`)),
      api(`/alarms?state=all&limit=5000&${qs}`).catch(() => []),
    ]);
    if (generation !== this.generation) return; // left replay, or picked another window
    this.tracks = [];
    vehicles.forEach((r, i) => {
      const tr = tracks[i];
      if (!tr || !tr.geometry.coordinates.length) return;
      this.tracks.push({
        id: r.id,
        kind: r.kind,
        coords: tr.geometry.coordinates,
        times: tr.properties.times.map((s) => Date.parse(s)),
        speed: tr.properties.speed_kmh,
      });
    });
    this.sensors = [];
    sensors.forEach((r, i) => {
      const s = series[i];
      if (!s || !s.points.length) return;
      this.sensors.push({
        id: r.id, kind: r.kind, lon: r.lon, lat: r.lat, field: s.field,
        times: s.points.map((p) => Date.parse(p.t)), values: s.points.map((p) => p.avg),
      });
    });
    this.alarms = alarms
      .map((a) => ({ ...a, raised: Date.parse(a.raised_at), clearedMs: a.cleared_at ? Date.parse(a.cleared_at) : Infinity }))
      .filter((a) => a.raised >= start && a.raised <= end)
      .sort((a, b) => a.raised - b.raised);
    this.alarmTimes = this.alarms.map((a) => a.raised);
    this.start = start;
    this.end = end;
    this.now = start;
    this.enter();
    this.els.status.textContent = t('replay_loaded', { u: this.tracks.length, s: this.sensors.length, a: this.alarms.length });
    this.render();
  }

  enter() {
    this.shownAlarms = '';
    this.fleet.clear();
    if (this.active) return;
    this.active = true;
    this.onEnter();
  }

  exit() {
    this.pause();
    this.generation += 1;
    this.els.status.textContent = '';
    if (!this.active) return;
    this.active = false;
    this.fleet.clear();
    this.onExit();
  }

  play() {
    if (!this.active) return;
    if (this.now >= this.end) this.now = this.start;
    this.playing = true;
    this.lastFrame = performance.now();
    this.els.play.textContent = t('replay_pause');
    const step = (ts) => {
      if (!this.playing) return;
      this.now = Math.min(this.end, this.now + (ts - this.lastFrame) * this.speed);
      this.lastFrame = ts;
      this.render();
      if (this.now >= this.end) { this.pause(); return; }
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }

  pause() {
    this.playing = false;
    this.els.play.textContent = t('replay_play');
  }

  // Every unit, sensor and alarm as it stood at `this.now`.
  render() {
    const now = this.now;
    for (const tr of this.tracks) {
      const i = before(tr.times, now);
      if (i < 0) { this.fleet.setAbsent(tr.id, true); continue; } // not on the road yet
      const j = Math.min(i + 1, tr.times.length - 1);
      const span = tr.times[j] - tr.times[i];
      const k = span > 0 ? Math.min(1, (now - tr.times[i]) / span) : 0;
      const [x0, y0] = tr.coords[i], [x1, y1] = tr.coords[j];
      const lon = x0 + (x1 - x0) * k, lat = y0 + (y1 - y0) * k;
      const heading = (Math.atan2((x1 - x0) * Math.cos((lat * Math.PI) / 180), y1 - y0) * 180) / Math.PI;
      const speed = tr.speed[i] ?? 0;
      const moving = speed > 3 || (x1 !== x0 || y1 !== y0);
      this.fleet.apply([tr.id, tr.kind, lon, lat, tr.times[i], moving ? 'en_route' : 'available', {
        speed_kmh: speed, heading_deg: (heading + 360) % 360, status: moving ? 'en_route' : 'available',
      }], false);
      this.fleet.setAbsent(tr.id, false);
    }
    for (const s of this.sensors) {
      const i = before(s.times, now);
      if (i < 0) { this.fleet.setAbsent(s.id, true); continue; }
      this.fleet.apply([s.id, s.kind, s.lon, s.lat, s.times[i], null, { [s.field]: s.values[i] }], false);
      this.fleet.setAbsent(s.id, false);
    }
    // The alarms raised by now: open ones on the map, all of them (cleared or not) in the list.
    const upto = before(this.alarmTimes || [], now);
    const raised = this.alarms.slice(0, upto + 1);
    const open = raised.filter((a) => a.clearedMs > now);
    const key = `${raised.length}:${open.map((a) => a.id).join(',')}`;
    if (key !== this.shownAlarms) {
      this.shownAlarms = key;
      this.onAlarms(open, raised.map((a) => ({ ...a, cleared_at: a.clearedMs > now ? null : a.cleared_at })));
    }
    this.els.slider.value = String(Math.round(((now - this.start) / Math.max(1, this.end - this.start)) * 1000));
    this.els.clock.textContent = fmtTime(now, true);
    this.onFrame(now);
  }
}

// The device kinds, as GET /apps describes them: the console keeps no list of its own. The shell
// calls setKinds() with the answer before anything is drawn; every module that needs a kind's
// shape, colour, interval, figure or thresholds asks here. Labels go into the dictionary as
// `kind.<name>`, so t('kind.rain') is whatever the application that owns rain calls it.

import { addStrings } from './i18n.js';

// The names, in the order /apps lists them (applications as installed, kinds as declared).
// Filled in place, so a module that imported it sees the server's list once it has come.
export const KINDS = [];
const BY_NAME = new Map();

export function setKinds(list) {
  KINDS.length = 0;
  BY_NAME.clear();
  const zh = {}, en = {};
  for (const k of list || []) {
    if (!k || typeof k.name !== 'string' || BY_NAME.has(k.name)) continue;
    KINDS.push(k.name);
    BY_NAME.set(k.name, k);
    zh[`kind.${k.name}`] = k.label_zh || k.name;
    en[`kind.${k.name}`] = k.label_en || k.name;
  }
  addStrings({ zh, en });
}

export function kindOf(name) { return BY_NAME.get(name) || null; }

// A moving unit (a vehicle, a patrol): positioned by every reading, coloured by its status.
export function isMobile(name) {
  const k = BY_NAME.get(name);
  return Boolean(k && k.mobile);
}

// Index into live-gl.js's marker shapes (arrow, circle, diamond, square, dot, triangle).
export function shapeIndex(name) {
  const k = BY_NAME.get(name);
  return k && Number.isInteger(k.shape_index) ? k.shape_index : 1;
}

export function kindColor(name, fallback = '#ff7a45') {
  const k = BY_NAME.get(name);
  return (k && k.color) || fallback;
}

export function intervalOf(name) {
  const k = BY_NAME.get(name);
  return (k && k.interval_s) || null;
}

// The figure a station is shown by (overview, replay); null for kinds without one.
export function primaryField(name) {
  const k = BY_NAME.get(name);
  return (k && k.primary_field) || null;
}

function truthy(v) {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

// One threshold against one value, as realtime/rules.py tests it but without its hysteresis
// band (the console only flags; the alarm ledger is the ingest's). `site` is the device's site
// thresholds, `permit` its permit limits: a rule naming a key the device lacks falls back to
// its own limit, and without any limit it says nothing.
export function breaches(threshold, value, site = null, permit = null) {
  if (value === undefined || value === null) return false;
  if (threshold.test === 'truthy') return truthy(value);
  if (typeof value !== 'number' || !Number.isFinite(value)) return false;
  if (threshold.test === 'outside') {
    const low = threshold.low ?? -Infinity, high = threshold.high ?? Infinity;
    return value < low || value > high;
  }
  let limit = threshold.limit;
  if (threshold.site_key != null) {
    if (site && Object.hasOwn(site, threshold.site_key)) limit = site[threshold.site_key];
  } else if (threshold.permit_key != null) {
    if (permit && Object.hasOwn(permit, threshold.permit_key)) limit = permit[threshold.permit_key];
  }
  if (typeof limit !== 'number' || !Number.isFinite(limit)) return false;
  if (threshold.test === 'above') return value > limit;
  if (threshold.test === 'below') return value < limit;
  return false;
}

// Whether any of the kind's thresholds is crossed by this reading.
export function overThreshold(kind, reading, site = null, permit = null) {
  const k = BY_NAME.get(kind);
  if (!k || !reading) return false;
  return (k.thresholds || []).some((th) => breaches(th, reading[th.field], site, permit));
}

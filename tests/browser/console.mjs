// Browser scenarios of the command console, driven from tests/test_console.py.
//
// Debian's Chromium through playwright-core (no browser download). Every request the page makes
// is checked: anything to a host other than this machine fails the scenario. When the scenario
// needs the platform to act it prints "STEP name" and waits for one line on stdin.

import {
  ART, CHROMIUM_ARGS, URL_, check, finish, chromium, env, logIn as logInAs, step, watch,
} from './harness.mjs';

const browser = await chromium.launchPersistentContext(env.CHROMIUM_USER_DATA, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: CHROMIUM_ARGS,
  viewport: { width: 1920, height: 1080 },
});

async function newPage(context = browser) {
  return watch(await context.newPage());
}

function logIn(page, user = env.CONSOLE_USER, password = env.CONSOLE_PASSWORD) {
  return logInAs(page, user, password);
}

async function colours(page, file, clip) {
  const png = await page.screenshot({ path: file, clip });
  const b64 = png.toString('base64');
  return page.evaluate(async (data) => {
    const img = new Image();
    img.src = `data:image/png;base64,${data}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width; c.height = img.height;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < px.length; i += 4 * 7) seen.add((px[i] >> 3) << 10 | (px[i + 1] >> 3) << 5 | (px[i + 2] >> 3));
    return seen.size;
  }, b64);
}

// Pixels the live layer puts on screen: the map area with its canvas shown and hidden.
async function livePixels(page) {
  const box = await mapBox(page);
  const shown = await page.screenshot({ clip: box });
  await page.evaluate(() => { document.getElementById('live-canvas').style.visibility = 'hidden'; });
  const hidden = await page.screenshot({ clip: box });
  await page.evaluate(() => { document.getElementById('live-canvas').style.visibility = ''; });
  return page.evaluate(async ([a, b]) => {
    const load = async (data) => {
      const img = new Image();
      img.src = `data:image/png;base64,${data}`;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width; c.height = img.height;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      return g.getImageData(0, 0, c.width, c.height).data;
    };
    const [pa, pb] = [await load(a), await load(b)];
    let differ = 0;
    for (let i = 0; i < pa.length; i += 4) {
      if (Math.abs(pa[i] - pb[i]) + Math.abs(pa[i + 1] - pb[i + 1]) + Math.abs(pa[i + 2] - pb[i + 2]) > 30) differ += 1;
    }
    return differ;
  }, [shown.toString('base64'), hidden.toString('base64')]);
}

async function mapBox(page) {
  return page.evaluate(() => {
    const r = document.getElementById('map').getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  });
}

// What would look broken on a wall: boxes whose content spills out of them, columns that
// overlap; and how big the text and the map's controls are.
async function layout(page) {
  return page.evaluate(() => {
    const problems = [];
    const boxes = ['#topbar', '.brand', '.top-right', '.kpi-grid', '.kpi', '.panel', '.map-tools',
      '#layer-panel', '#details', '#replay-bar', '.legend', '.login-card'];
    for (const sel of boxes) {
      for (const el of document.querySelectorAll(sel)) {
        if (!el.getClientRects().length) continue; // not shown
        const over = el.scrollWidth - el.clientWidth;
        if (over > 1) problems.push(`${sel}${el.id ? `#${el.id}` : ''} spills ${over}px: ${el.textContent.trim().slice(0, 40)}`);
      }
    }
    const box = (q) => document.querySelector(q).getBoundingClientRect();
    const [l, m, r] = [box('#left'), box('#mapwrap'), box('#right')];
    if (l.right > m.left + 1 || m.right > r.left + 1 || r.right > innerWidth + 1) problems.push('columns overlap');
    const zoomIn = document.querySelector('.maplibregl-ctrl-zoom-in');
    return {
      problems,
      rem: parseFloat(getComputedStyle(document.documentElement).fontSize),
      zoom_button_px: zoomIn ? zoomIn.getBoundingClientRect().width : 0,
      title_px: parseFloat(getComputedStyle(document.querySelector('#topbar h1')).fontSize),
    };
  });
}

const scenarios = {
  async main() {
    const page = await newPage();
    await page.goto(URL_);
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#login-user', env.CONSOLE_USER);
    await page.fill('#login-pass', 'not-the-password');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-msg').textContent.length > 0);
    const wrong = await page.textContent('#login-msg');
    await page.fill('#login-pass', env.CONSOLE_PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => window.__console && window.__console.ready, null, { timeout: 45000 });
    await step('publish');
    await page.waitForFunction(() => window.__console.stats.drawn >= 10, null, { timeout: 20000 });
    await page.waitForFunction(() => window.__console.map.areTilesLoaded(), null, { timeout: 30000 }).catch(() => {});
    await page.waitForTimeout(2500); // charts refresh, tiles settle
    const box = await mapBox(page);
    const mapColours = await colours(page, `${ART}/console-1920.png`, undefined);
    const mapOnly = await colours(page, `${ART}/console-map.png`, box);
    // A unit moves: its drawn position two seconds apart.
    const id = await page.evaluate(() => {
      const f = window.__console.fleet;
      const rec = [...f.records.values()].find((r) => r.kind === 'vehicle' && r.slot >= 0);
      return rec.id;
    });
    // Zoomed in on it so a few metres are visible pixels.
    await page.evaluate((i) => {
      const rec = window.__console.fleet.records.get(i);
      window.__console.map.jumpTo({ center: [rec.lon, rec.lat], zoom: 16 });
    }, id);
    await page.waitForTimeout(300);
    const p0 = await page.evaluate((i) => window.__console.unitScreenPos(i), id);
    const c0 = await page.evaluate(() => window.__console.map.getCenter());
    await page.waitForTimeout(2200);
    const p1 = await page.evaluate((i) => window.__console.unitScreenPos(i), id);
    const c1 = await page.evaluate(() => window.__console.map.getCenter());
    check(c0.lng === c1.lng && c0.lat === c1.lat, 'the camera stayed put');
    const moved = Math.hypot(p1[0] - p0[0], p1[1] - p0[1]);
    // Zoom in on it and click it: the details card shows it.
    await page.evaluate((i) => {
      const rec = window.__console.fleet.records.get(i);
      window.__console.map.jumpTo({ center: [rec.lon, rec.lat], zoom: 14 });
    }, id);
    await page.waitForTimeout(1200);
    const pos = await page.evaluate((i) => window.__console.unitScreenPos(i), id);
    await page.mouse.click(box.x + pos[0], box.y + pos[1]);
    await page.waitForSelector('#details:not([hidden])', { timeout: 10000 });
    await page.waitForTimeout(800);
    const detailsId = await page.evaluate(() => window.__console.fleet.selected);
    const drawnPixels = await livePixels(page);
    const drawnBy = await page.evaluate(() => (window.__console.fleet.worker ? 'worker' : 'page'));
    const detailsText = await page.textContent('#details-body');
    check(detailsText.includes(detailsId), 'the details card names the selected unit');
    await page.screenshot({ path: `${ART}/console-details.png` });
    // Layer toggles: hospitals off, schools on (and their tiles are fetched).
    let schoolTiles = 0;
    page.on('request', (r) => { if (r.url().includes('/collections/schools/tiles/')) schoolTiles += 1; });
    await page.evaluate(() => window.__console.map.jumpTo({ center: [113.11, 36.19], zoom: 11 }));
    await page.click('#btn-layers');
    await page.click('[data-layer-toggle="hospitals"]');
    await page.click('[data-layer-toggle="schools"]');
    await page.waitForTimeout(2000);
    const hospitals = await page.evaluate(() => window.__console.layerVisible('hospitals'));
    const schools = await page.evaluate(() => window.__console.layerVisible('schools'));
    await page.screenshot({ path: `${ART}/console-layers.png` });
    const layoutZh = await layout(page);
    // English.
    await page.click('#lang-btn');
    const title = await page.textContent('#topbar h1');
    await page.waitForTimeout(3200);
    await page.screenshot({ path: `${ART}/console-english.png` });
    const layoutEn = await layout(page);
    const connEn = await page.textContent('#conn-text');
    await page.click('#lang-btn');
    // The same console on a 4K wall.
    await page.setViewportSize({ width: 3840, height: 2160 });
    await page.evaluate(() => window.__console.map.fitBounds([111.978, 35.823, 113.73, 37.125], { padding: 20, duration: 0 }));
    await page.waitForTimeout(3500);
    await page.screenshot({ path: `${ART}/console-3840.png` });
    await page.screenshot({ path: `${ART}/console-3840-corner.png`, clip: { x: 2440, y: 1560, width: 1400, height: 600 } });
    await page.screenshot({ path: `${ART}/console-3840-topleft.png`, clip: { x: 0, y: 0, width: 1400, height: 700 } });
    const layoutWall = await layout(page);
    return {
      layout_zh: layoutZh,
      layout_en: layoutEn,
      layout_wall: layoutWall,
      conn_text_en: connEn,
      wrong_password_message: wrong,
      map_colours: Math.min(mapColours, mapOnly),
      units_drawn: await page.evaluate(() => window.__console.stats.drawn),
      moved_px: moved,
      details_id: detailsId,
      live_pixels: drawnPixels,
      live_drawn_by: drawnBy,
      details_text: detailsText,
      hospitals_after_toggle: hospitals,
      schools_after_toggle: schools,
      schools_tiles_requested: schoolTiles,
      english_title: title,
    };
  },

  async ack() {
    const a = await newPage();
    // A second console, another dispatcher (each tab keeps its own session).
    const b = await newPage();
    await logIn(a);
    await logIn(b, env.CONSOLE_USER2, env.CONSOLE_PASSWORD2);
    const { id } = await step('raise');
    const sel = `[data-alarm="${id}"]`;
    await a.waitForSelector(sel, { timeout: 15000 });
    await b.waitForSelector(sel, { timeout: 15000 });
    // Clicking it flies the map there.
    await a.click(`${sel} .al-msg`);
    await a.waitForTimeout(2500);
    const flew = await a.evaluate((alarmId) => {
      const item = window.__console.alarms.items.get(alarmId);
      const c = window.__console.map.getCenter();
      return Math.abs(c.lng - item.lon) < 0.01 && Math.abs(c.lat - item.lat) < 0.01;
    }, id);
    await a.screenshot({ path: `${ART}/console-alarm-focus.png` });
    await a.click(`${sel} [data-ack]`);
    await a.waitForSelector(sel, { state: 'detached', timeout: 10000 });
    await b.waitForSelector(sel, { state: 'detached', timeout: 10000 });
    const goneA = await a.evaluate((i) => !window.__console.alarms.items.has(i), id);
    const goneB = await b.evaluate((i) => !window.__console.alarms.items.has(i), id);
    return { seen_on_both: true, gone_on_a: goneA, gone_on_b: goneB, flew_to_alarm: flew };
  },

  async burst() {
    const page = await newPage();
    await logIn(page);
    await page.evaluate(() => {
      window.__frames = [];
      let last = performance.now();
      const tick = (t) => { window.__frames.push(t - last); last = t; requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
    });
    const before = await page.evaluate(() => window.__console.alarms.count());
    await step('burst');
    await page.waitForFunction((n) => window.__console.alarms.count() >= n + 1000, before, { timeout: 30000 });
    const t0 = Date.now();
    await page.evaluate(() => document.getElementById('alarm-list').scrollTop = 20000);
    const evalMs = Date.now() - t0;
    await page.waitForTimeout(800);
    await page.screenshot({ path: `${ART}/console-burst.png` });
    const rows = await page.evaluate(() => document.querySelectorAll('#alarm-list .al-row').length);
    // On the map: counted clusters at city zoom, holding every alarm.
    await page.evaluate(() => window.__console.map.jumpTo({ center: [113.25, 36.15], zoom: 9 }));
    await page.waitForTimeout(1500);
    const clusters = await page.evaluate(() => {
      const map = window.__console.map;
      const seen = map.queryRenderedFeatures({ layers: ['alarms-cluster', 'alarms-live'] });
      const c = seen.filter((f) => f.properties.point_count);
      return { circles: seen.length, clustered: c.reduce((n, f) => n + f.properties.point_count, 0) };
    });
    await page.screenshot({ path: `${ART}/console-burst-clusters.png` });
    const worst = await page.evaluate(() => Math.max(...window.__frames.slice(2)));
    return {
      count: await page.evaluate(() => window.__console.alarms.count()),
      rows_in_dom: rows,
      map_circles: clusters.circles,
      map_clustered: clusters.clustered,
      eval_ms: evalMs,
      worst_frame_ms: worst,
    };
  },

  async expired() {
    const page = await newPage();
    await page.addInitScript((token) => {
      if (!sessionStorage.getItem('cz-test-seeded')) {
        sessionStorage.setItem('cz-test-seeded', '1');
        sessionStorage.setItem('changzhi.console.session', JSON.stringify({
          token, user: { username: 'console-disp', roles: ['dispatcher'] }, expiresAt: Date.now() + 3600_000,
        }));
      }
    }, env.EXPIRED_TOKEN);
    await page.goto(URL_);
    await page.waitForSelector('#login:not([hidden])', { timeout: 20000 });
    await page.waitForFunction(() => document.getElementById('login-msg').textContent.length > 0);
    await page.screenshot({ path: `${ART}/console-expired.png` });
    return {
      login_visible: await page.isVisible('#login'),
      message: await page.textContent('#login-msg'),
    };
  },

  async drop() {
    const page = await newPage();
    // This console runs as on a browser without OffscreenCanvas: the live layer draws in the
    // page's own thread, and must look the same.
    await page.addInitScript(() => { delete window.OffscreenCanvas; });
    const routes = [];
    await page.routeWebSocket(/\/ws\/live/, (ws) => {
      ws.connectToServer();
      routes.push(ws);
    });
    await logIn(page);
    await step('publish');
    await page.waitForFunction(() => window.__console.conn === 'open', null, { timeout: 15000 });
    await page.waitForFunction(() => window.__console.stats.drawn > 0, null, { timeout: 15000 });
    await page.waitForTimeout(1000);
    const fallback = {
      drawn_by: await page.evaluate(() => (window.__console.fleet.worker ? 'worker' : 'page')),
      pixels: await livePixels(page),
    };
    // The network drops the socket under the page.
    await routes[routes.length - 1].close({ code: 1011, reason: 'network drop' });
    await page.waitForFunction(() => window.__console.conn === 'down', null, { timeout: 10000 });
    const down = await page.textContent('#banner');
    await page.screenshot({ path: `${ART}/console-ws-down.png` });
    await page.waitForFunction(() => window.__console.conn === 'restored', null, { timeout: 30000 });
    const after = await page.textContent('#banner');
    const m0 = await page.evaluate(() => window.__console.socket.messages);
    await page.waitForTimeout(2500);
    const m1 = await page.evaluate(() => window.__console.socket.messages);
    await page.screenshot({ path: `${ART}/console-ws-restored.png` });
    return {
      banner_when_down: down,
      state_after: await page.evaluate(() => window.__console.conn),
      banner_after: after,
      sockets_opened: routes.length,
      messages_after_reconnect: m1 - m0,
      fallback,
    };
  },

  async viewer() {
    const page = await newPage();
    const restricted = [];
    page.on('request', (r) => {
      if (/\/collections\/(parcels|mining_rights|incidents|pollution_sources)\b/.test(r.url())) restricted.push(r.url());
    });
    // What reaches each console over the live socket: the viewer's and a dispatcher's.
    const frames = { viewer: [], dispatcher: [] };
    const listen = (p, who) => p.on('websocket', (ws) => ws.on('framereceived', (f) => {
      if (typeof f.payload === 'string') frames[who].push(f.payload);
    }));
    listen(page, 'viewer');
    await logIn(page);
    const control = await newPage();
    listen(control, 'dispatcher');
    await logIn(control, env.CONSOLE_USER2, env.CONSOLE_PASSWORD2);
    await page.waitForFunction(() => window.__console.conn === 'open', null, { timeout: 15000 });
    await control.waitForFunction(() => window.__console.conn === 'open', null, { timeout: 15000 });
    const { marker } = await step('incident');
    const deadline = Date.now() + 10000;
    while (!frames.dispatcher.some((f) => f.includes(marker)) && Date.now() < deadline) await page.waitForTimeout(200);
    await page.waitForTimeout(1000); // the viewer's socket had as long as the dispatcher's
    await page.waitForTimeout(1500);
    await page.click('#btn-layers');
    const layers = await page.evaluate(() => [...document.querySelectorAll('[data-layer-toggle]')].map((e) => e.dataset.layerToggle));
    await page.screenshot({ path: `${ART}/console-viewer.png` });
    return {
      layers,
      restricted_requests: restricted,
      ack_buttons: await page.evaluate(() => document.querySelectorAll('[data-ack]').length),
      incidents_text: await page.textContent('#incident-list'),
      incident_frames_dispatcher: frames.dispatcher.filter((f) => f.includes(marker)).length,
      incident_frames_viewer: frames.viewer.filter((f) => f.includes(marker)).length,
      viewer_frames: frames.viewer.length,
    };
  },
};

// Where a unit was at time t by its reports (linear between fixes, as a replay draws it).
function positionAt(fixes, t) {
  if (t <= fixes[0][0]) return [fixes[0][1], fixes[0][2]];
  for (let i = 1; i < fixes.length; i++) {
    const [t1, x1, y1] = fixes[i];
    if (t1 >= t) {
      const [t0, x0, y0] = fixes[i - 1];
      const k = t1 > t0 ? (t - t0) / (t1 - t0) : 1;
      return [x0 + (x1 - x0) * k, y0 + (y1 - y0) * k];
    }
  }
  const last = fixes[fixes.length - 1];
  return [last[1], last[2]];
}

function metres([x0, y0], [x1, y1]) {
  const k = Math.cos((y0 * Math.PI) / 180);
  return Math.hypot((x1 - x0) * k, y1 - y0) * 111_320;
}

// Beijing wall time for a datetime-local input, to the second (the console's clock is in it).
function beijingInput(ms) {
  return new Date(ms + 8 * 3600_000).toISOString().slice(0, 19);
}

scenarios.replay = async function replay() {
  const page = await newPage();
  await logIn(page);
  await step('publish');
  const history = await step('history');
  const ids = Object.keys(history.sent);
  // The vehicles are on the live map (the ingest worker announced them).
  await page.waitForFunction((want) => want.every((i) => window.__console.fleet.records.has(i)), ids, { timeout: 20000 });
  await page.click('#btn-replay');
  await page.waitForSelector('#replay-bar:not([hidden])');
  // Whole seconds: what a datetime-local input holds.
  const start = Math.floor(history.start_ms / 1000) * 1000 - 2000;
  const end = Math.ceil(history.end_ms / 1000) * 1000 + 2000;
  await page.fill('#replay-from', beijingInput(start));
  await page.fill('#replay-to', beijingInput(end));
  await page.click('#replay-load');
  await page.waitForFunction(() => window.__console.replay.active && window.__console.replay.tracks.length > 0, null, { timeout: 30000 });
  const loaded = await page.evaluate(() => ({
    tracks: window.__console.replay.tracks.map((tr) => tr.id),
    start: window.__console.replay.start,
    end: window.__console.replay.end,
    liveHidden: document.getElementById('live-canvas').hidden,
    replayShown: !document.getElementById('replay-canvas').hidden,
    status: document.getElementById('replay-status').textContent,
  }));
  check(loaded.start === start && loaded.end === end, `the window is the one picked: ${JSON.stringify(loaded)}`);

  // Scrub: click the slider at a few places, as a user drags it.
  const slider = await page.locator('#replay-slider').boundingBox();
  const probes = [];
  for (const f of [0.2, 0.5, 0.85]) {
    await page.mouse.click(slider.x + slider.width * f, slider.y + slider.height / 2);
    await page.waitForTimeout(150);
    const seen = await page.evaluate((want) => {
      const h = window.__console;
      const out = { now: h.replay.now, units: {} };
      for (const i of want) {
        const rec = h.replay.fleet.records.get(i);
        const drawn = h.unitScreenPos(i);
        const p = rec ? h.map.project([rec.lon, rec.lat]) : null;
        out.units[i] = rec ? { lon: rec.lon, lat: rec.lat, drawn, projected: [p.x, p.y], hidden: rec.absent } : null;
      }
      return out;
    }, ids);
    for (const i of ids) {
      const u = seen.units[i];
      check(u && !u.hidden, `unit ${i} is drawn at ${seen.now}`);
      const want = positionAt(history.sent[i], seen.now);
      probes.push({
        fraction: f,
        id: i,
        now: seen.now,
        error_m: metres(want, [u.lon, u.lat]),
        drawn_error_px: Math.hypot(u.drawn[0] - u.projected[0], u.drawn[1] - u.projected[1]),
      });
    }
  }

  // The alarm: before it was raised, while it was open, after it was cleared.
  const al = history.alarm;
  const at = async (label, t) => {
    await page.evaluate((v) => {
      const el = document.getElementById('replay-slider');
      el.value = String(v);
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, Math.round(((t - start) / (end - start)) * 1000));
    await page.waitForTimeout(400);
    const probe = await page.evaluate(({ id, device }) => {
      const h = window.__console;
      const row = document.querySelector(`#alarm-list [data-alarm="${id}"]`);
      return {
        now: h.replay.now,
        in_list: Boolean(row),
        cleared: Boolean(row && row.classList.contains('al-cleared')),
        on_map: (h.stats.alarmMarkers || []).includes(id),
        halo: h.replay.fleet.alarmDevices.has(device),
        ack_buttons: document.querySelectorAll('#alarm-list [data-ack]').length,
      };
    }, { id: al.id, device: al.device_id });
    probe.label = label;
    return probe;
  };
  const alarmProbes = [
    await at('before', Math.max(start, al.raised_ms - 3000)),
    await at('during', (al.raised_ms + al.cleared_ms) / 2),
  ];
  await page.screenshot({ path: `${ART}/console-replay.png` });
  alarmProbes.push(await at('after', Math.min(end, al.cleared_ms + 1500)));
  check(alarmProbes.every((p) => p.ack_buttons === 0), 'a replayed alarm cannot be acknowledged');

  // Play: the replay clock against the wall clock, at 1x and 60x, from inside the page.
  const measure = (ms, alarm) => page.evaluate(({ ms, alarm }) => new Promise((resolve) => {
    const h = window.__console;
    const samples = [];
    const t0 = performance.now();
    const tick = (ts) => {
      samples.push([ts, h.replay.now, h.replay.playing,
        Boolean(document.querySelector(`#alarm-list [data-alarm="${alarm}"]`)), (h.stats.alarmMarkers || []).includes(alarm)]);
      if (performance.now() - t0 < ms && (h.replay.playing || samples.length < 3)) requestAnimationFrame(tick);
      else {
        const playing = samples.filter((x) => x[2]);
        const a = playing[1] || playing[0], b = playing[playing.length - 2] || a;
        resolve({ samples: samples.map((x) => [Math.round(x[0]), x[1], x[3], x[4]]), rate: b[0] > a[0] ? (b[1] - a[1]) / (b[0] - a[0]) : null, frames: samples.length, playingAtEnd: h.replay.playing, now: h.replay.now });
      }
    };
    requestAnimationFrame(tick);
  }), { ms, alarm });
  await page.selectOption('#replay-speed', '1');
  await page.evaluate(() => { const el = document.getElementById('replay-slider'); el.value = '100'; el.dispatchEvent(new Event('input', { bubbles: true })); });
  await page.click('#replay-play');
  const one = await measure(800, null);
  await page.click('#replay-play'); // pause
  check(!(await page.evaluate(() => window.__console.replay.playing)), 'the play button pauses');
  await page.selectOption('#replay-speed', '60');
  await page.evaluate(() => { const el = document.getElementById('replay-slider'); el.value = '0'; el.dispatchEvent(new Event('input', { bubbles: true })); });
  await page.click('#replay-play');
  const sixty = await measure(10000, al.id);
  const ended = await page.evaluate(() => ({
    playing: window.__console.replay.playing,
    atEnd: window.__console.replay.now === window.__console.replay.end,
    button: document.getElementById('replay-play').textContent,
  }));

  // Back to live.
  const m0 = await page.evaluate(() => window.__console.socket.messages);
  await page.click('#replay-exit');
  await page.waitForTimeout(2500);
  const afterExit = await page.evaluate((m) => ({
    replay_active: window.__console.replay.active,
    live_canvas_visible: !document.getElementById('live-canvas').hidden,
    replay_canvas_hidden: document.getElementById('replay-canvas').hidden,
    bar_hidden: document.getElementById('replay-bar').hidden,
    messages_since: window.__console.socket.messages - m,
    list_mode: window.__console.alarms.mode,
    drawn: window.__console.stats.drawn,
  }), m0);
  await page.screenshot({ path: `${ART}/console-replay-exit.png` });
  return {
    entered: true,
    live_canvas_hidden: loaded.liveHidden && loaded.replayShown,
    status: loaded.status,
    tracks: loaded.tracks,
    probes,
    alarm_probes: alarmProbes,
    rate_1x: one.rate,
    rate_60x: sixty.rate,
    played_to_end: !ended.playing && ended.atEnd && ended.button === '播放',
    // [replay time, alarm row in the list, alarm marker on the map] each frame at 60x
    frames_60x: sixty.samples.map((x) => [x[1], x[2], x[3]]),
    after_exit: afterExit,
  };
};

await finish(browser, scenarios[env.SCENARIO]);

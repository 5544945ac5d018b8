// The dispatcher's workflow on two consoles, driven from tests/test_console_dispatch.py.
//
// Debian's Chromium through playwright-core (no browser download); two browser contexts, so two
// separate sessions and sockets. Every request is checked: anything to a host other than this
// machine fails the scenario. Prints one "RESULT {...}" line.

import {
  ART, check, finish, env, launch, logIn as logInAs, step, watch,
} from './harness.mjs';

const USERS = JSON.parse(env.USERS);

const browser = await launch();

async function consolePage(viewport = { width: 1920, height: 1080 }) {
  const context = await browser.newContext({ viewport, locale: 'zh-CN' });
  // The 409 and 422 answers are the scenario's own doing; the page shows them in the panel.
  const page = watch(await context.newPage(), { expected: /status of 409|status of 422/ });
  // Every full page load counts: the point is that nothing needs one.
  page.loads = 0;
  page.on('load', () => { page.loads += 1; });
  return page;
}

async function logIn(page, user) {
  await logInAs(page, user, USERS[user]);
  page.loads = 0;
}

const panelOf = (page, expr) => page.evaluate(`(() => { const p = window.__console.incidents.panel; return ${expr}; })()`);

async function timeline(page) {
  return page.evaluate(() => [...document.querySelectorAll('#dispatch-body .dsp-timeline li')].map((li) => li.dataset.event));
}

async function stepOf(page, unit) {
  return page.evaluate((u) => {
    const el = document.querySelector(`#dispatch-body [data-unit-id="${u}"] [data-step-now]`);
    return el ? el.dataset.stepNow : null;
  }, unit);
}

async function main() {
  const a = await consolePage();
  const b = await consolePage();
  // Console B's live feed passes through here, so the test can make it lag like a slow network.
  let holdB = false;
  const heldB = [];
  let socketB = null;
  await b.routeWebSocket(/\/ws\/live/, (ws) => {
    const server = ws.connectToServer();
    socketB = ws;
    server.onMessage((m) => { if (holdB) heldB.push(m); else ws.send(m); });
  });
  await logIn(a, 'cd-fire-a');
  await logIn(b, 'cd-fire-b');
  await a.waitForFunction(() => window.__console.conn === 'open', null, { timeout: 15000 });
  await b.waitForFunction(() => window.__console.conn === 'open', null, { timeout: 15000 });
  const dispatcherNew = await a.isVisible('#incident-new');

  // ---- console A takes a call: first a place the city does not have
  await a.click('#incident-new');
  await a.waitForSelector('#dispatch-body form[data-form=new]');
  await a.fill('#dispatch-body [name=address]', env.NONSENSE);
  await a.click('#dispatch-body [data-action=geocode]');
  await a.waitForSelector('#dispatch-body .dsp-match.bad', { timeout: 15000 });
  const unmatchedText = await a.textContent('#dispatch-body .dsp-match.bad');
  const suggestions = await a.locator('#dispatch-body [data-suggest]').count();
  await a.screenshot({ path: `${ART}/dispatch-unmatched.png` });
  // A suggestion is one click away from being looked up.
  if (suggestions) {
    await a.click('#dispatch-body [data-suggest] >> nth=0');
    await a.waitForSelector('#dispatch-body .dsp-match', { timeout: 15000 });
  }

  // ---- then the real address, looked up before creating
  await a.fill('#dispatch-body [name=address]', env.ADDRESS);
  await a.click('#dispatch-body [data-action=geocode]');
  await a.waitForFunction((addr) => {
    const el = document.querySelector('#dispatch-body .dsp-match.ok');
    return el && el.textContent.includes(addr);
  }, env.ADDRESS, { timeout: 15000 });
  const matchText = await a.textContent('#dispatch-body .dsp-match.ok');
  await a.selectOption('#dispatch-body [name=incident_type]', 'structure_fire');
  await a.fill('#dispatch-body [name=caller]', '李女士 139****0000');
  await a.fill('#dispatch-body [name=description]', '三楼厨房起火，有浓烟 <b>测试</b>');
  await a.waitForTimeout(900); // the map flies to the match
  await a.screenshot({ path: `${ART}/dispatch-new.png` });
  await a.click('#dispatch-body button[type=submit]');
  await a.waitForSelector('#dispatch-body .dsp-head', { timeout: 20000 });
  const incidentId = await panelOf(a, 'p.selectedId');
  check(Number.isInteger(incidentId), 'the new incident is selected');

  // ---- console B hears of it, without a reload, and opens it too
  await b.waitForSelector(`#incident-list [data-incident="${incidentId}"]`, { timeout: 15000 });
  await b.click(`#incident-list [data-incident="${incidentId}"]`);

  // ---- console A: the recommendation, the routes on the map
  await a.waitForSelector('#dispatch-body .dsp-cand [data-assign]', { timeout: 60000 });
  await b.waitForSelector('#dispatch-body .dsp-cand [data-assign]', { timeout: 60000 });
  await a.waitForTimeout(1500); // the camera fits the incident and its routes
  await a.waitForFunction(() => window.__console.map.areTilesLoaded(), null, { timeout: 20000 }).catch(() => {});
  const routes = await a.evaluate(async () => {
    const map = window.__console.map;
    const data = await map.getSource('dispatch-routes').getData();
    const lines = data.features.filter((f) => f.geometry.type === 'LineString' && f.geometry.coordinates.length >= 2);
    const drawn = map.queryRenderedFeatures({ layers: ['dispatch-routes'] }).length;
    const p = window.__console.incidents.panel;
    const c = map.project([p.detail.lon, p.detail.lat]);
    const box = map.getContainer().getBoundingClientRect();
    const panel = document.getElementById('dispatch-panel').getBoundingClientRect();
    return {
      lines: lines.length,
      emphasised: lines.filter((f) => f.properties.emph === 1).length,
      drawn,
      // The scene is on the map and not under the panel.
      inView: c.x > panel.right - box.left && c.x < box.width && c.y > 0 && c.y < box.height,
    };
  });
  const candidates = await a.locator('#dispatch-body .dsp-cand').count();
  const top = await panelOf(a, 'p.emphUnit');
  check(top, 'a unit is emphasised');
  const etaText = await a.textContent(`#dispatch-body .dsp-cand[data-unit="${top}"] .dsp-eta`);
  await a.screenshot({ path: `${ART}/dispatch-recommend.png` });

  // ---- one click: the top unit
  await a.click(`#dispatch-body .dsp-cand[data-unit="${top}"] [data-assign]`);
  await a.waitForSelector(`#dispatch-body [data-unit-id="${top}"] [data-step-now]`, { timeout: 15000 });
  // ---- console B sees the unit's new status and the timeline, live
  await b.waitForSelector(`#dispatch-body [data-unit-id="${top}"] [data-step-now]`, { timeout: 15000 });
  const bStatus = await stepOf(b, top);
  await b.waitForFunction(() => document.querySelectorAll('#dispatch-body .dsp-timeline li').length >= 2, null, { timeout: 10000 });
  const bTimeline = await timeline(b);

  // ---- operator status: en route, seen on B
  await a.click(`#dispatch-body [data-unit-id="${top}"] [data-step="en_route"]`);
  await b.waitForFunction((u) => {
    const el = document.querySelector(`#dispatch-body [data-unit-id="${u}"] [data-step-now]`);
    return el && el.dataset.stepNow === 'en_route';
  }, top, { timeout: 15000 });
  const bStatusEnRoute = await stepOf(b, top);
  await b.waitForTimeout(600);
  await b.screenshot({ path: `${ART}/dispatch-b-live.png` });

  // ---- the race: B's feed lags while A takes the next unit B still sees
  await b.waitForFunction((u) => !document.querySelector(`#dispatch-body .dsp-cand[data-unit="${u}"]`), top, { timeout: 10000 });
  await a.waitForFunction((u) => !document.querySelector(`#dispatch-body .dsp-cand[data-unit="${u}"]`), top, { timeout: 10000 });
  const raced = await b.evaluate(() => document.querySelector('#dispatch-body .dsp-cand [data-assign]').dataset.assign);
  holdB = true;
  await a.waitForSelector(`#dispatch-body .dsp-cand[data-unit="${raced}"] [data-assign]:not([disabled])`, { timeout: 10000 });
  await a.click(`#dispatch-body .dsp-cand[data-unit="${raced}"] [data-assign]`);
  await a.waitForSelector(`#dispatch-body [data-unit-id="${raced}"] [data-step-now]`, { timeout: 15000 });
  check(await b.isVisible(`#dispatch-body .dsp-cand[data-unit="${raced}"] [data-assign]`), 'B still offers the unit');
  await b.click(`#dispatch-body .dsp-cand[data-unit="${raced}"] [data-assign]`);
  await b.waitForSelector('#dispatch-body .dsp-msg.error', { timeout: 15000 });
  const conflictText = await b.textContent('#dispatch-body .dsp-msg.error');
  await b.waitForFunction((u) => !document.querySelector(`#dispatch-body .dsp-cand[data-unit="${u}"]`), raced, { timeout: 15000 });
  const racedStillOffered = await b.isVisible(`#dispatch-body .dsp-cand[data-unit="${raced}"]`);
  await b.screenshot({ path: `${ART}/dispatch-conflict.png` });
  holdB = false;
  for (const m of heldB.splice(0)) socketB.send(m);
  const aTimeline = await timeline(a);

  // ---- declared joint: the other agencies' units come into view, on both consoles
  check(await a.isVisible('#dispatch-body .dsp-hidden'), 'the ambulance is hidden before the incident is joint');
  // Only a supervisor declares an incident joint (README, "Dispatch: departments"): the
  // test's supervisor does it through the API, and both fire consoles see it.
  await step('joint');
  await b.waitForSelector('#dispatch-body .dsp-head .dsp-joint', { timeout: 15000 });
  const ambulanceOnB = await b.waitForFunction(() => {
    const p = window.__console.incidents.panel;
    return p.rec && p.rec.candidates.some((c) => c.unit_type === 'ambulance') && !document.querySelector('#dispatch-body .dsp-hidden');
  }, null, { timeout: 15000 }).then(() => true, () => false);

  // ---- a second call, placed with a click on the map
  await a.click('#incident-new');
  await a.waitForSelector('#dispatch-body form[data-form=new]');
  await a.click('#dispatch-body [data-action=pick]');
  await a.waitForFunction(() => !window.__console.map.isMoving(), null, { timeout: 10000 });
  const mapBox = await a.evaluate(() => {
    const r = document.getElementById('map').getBoundingClientRect();
    const panel = document.getElementById('dispatch-panel').getBoundingClientRect();
    return { x: Math.round((panel.right + r.right) / 2), y: Math.round(r.y + r.height / 2) };
  });
  const aimed = await a.evaluate(([x, y]) => {
    const r = document.getElementById('map').getBoundingClientRect();
    return window.__console.map.unproject([x - r.x, y - r.y]).toArray();
  }, [mapBox.x, mapBox.y]);
  await a.mouse.click(mapBox.x, mapBox.y);
  await a.waitForSelector('#dispatch-body .dsp-match.ok', { timeout: 10000 });
  const pickedText = await a.textContent('#dispatch-body .dsp-match.ok');
  await a.selectOption('#dispatch-body [name=incident_type]', 'rescue');
  await a.click('#dispatch-body button[type=submit]');
  await a.waitForFunction((first) => {
    const p = window.__console.incidents.panel;
    return p.detail && p.detail.id !== first;
  }, incidentId, { timeout: 20000 });
  const second = await panelOf(a, '({ id: p.detail.id, lon: p.detail.lon, lat: p.detail.lat, method: p.detail.geocode.method })');
  await b.waitForSelector(`#incident-list [data-incident="${second.id}"]`, { timeout: 15000 });

  // ---- closing the first: gone from B's list, B's panel says closed, its routes are gone
  await a.click(`#incident-list [data-incident="${incidentId}"]`);
  await a.waitForSelector('#dispatch-body [data-action=close]', { timeout: 15000 });
  await a.click('#dispatch-body [data-action=close]');
  await a.fill('#dispatch-body [name=close_note]', '明火已扑灭');
  await a.click('#dispatch-body [data-action=close-confirm]');
  await b.waitForSelector(`#incident-list [data-incident="${incidentId}"]`, { state: 'detached', timeout: 15000 });
  await b.waitForSelector('#dispatch-body .dsp-status.st-closed', { timeout: 15000 });
  const bClosed = {
    timeline: await timeline(b),
    routes: await b.evaluate(async () => (await window.__console.map.getSource('dispatch-routes').getData()).features.length),
    assign_buttons: await b.locator('#dispatch-body [data-assign]').count(),
  };
  await b.screenshot({ path: `${ART}/dispatch-closed.png` });

  // ---- English on console A
  await a.click('#lang-btn');
  await a.waitForTimeout(400);
  const englishHeading = await a.evaluate(() => [...document.querySelectorAll('#dispatch-body .dsp-h')].map((h) => h.firstChild.textContent.trim()).pop());
  await a.screenshot({ path: `${ART}/dispatch-english.png` });
  await a.click('#lang-btn');

  // ---- a laptop screen: the panel and the map still share it
  const laptop = await consolePage({ width: 1366, height: 768 });
  await logIn(laptop, 'cd-fire-b');
  await laptop.waitForSelector(`#incident-list [data-incident="${second.id}"]`, { timeout: 15000 });
  // This time the incident is opened from its marker on the map.
  await laptop.evaluate(([lon, lat]) => window.__console.map.jumpTo({ center: [lon, lat], zoom: 12 }), [second.lon, second.lat]);
  await laptop.waitForTimeout(500);
  const marker = await laptop.evaluate(([lon, lat]) => {
    const r = document.getElementById('map').getBoundingClientRect();
    const p = window.__console.map.project([lon, lat]);
    return { x: Math.round(r.x + p.x), y: Math.round(r.y + p.y) };
  }, [second.lon, second.lat]);
  await laptop.mouse.click(marker.x, marker.y);
  await laptop.waitForFunction((id) => {
    const p = window.__console.incidents.panel;
    return p.selectedId === id && !document.getElementById('dispatch-panel').hidden;
  }, second.id, { timeout: 10000 });
  await laptop.waitForSelector('#dispatch-body .dsp-cand', { timeout: 60000 });
  await laptop.waitForTimeout(1500);
  await laptop.screenshot({ path: `${ART}/dispatch-laptop.png` });

  // ---- a viewer: no controls
  const viewer = await consolePage();
  await logIn(viewer, 'cd-viewer');
  await viewer.waitForTimeout(1000);
  const viewerNew = await viewer.isVisible('#incident-new');
  const viewerAssign = await viewer.locator('[data-assign], [data-step], [data-action=close]').count();

  return {
    dispatcher_new_button: dispatcherNew,
    unmatched_text: unmatchedText,
    suggestions,
    match_text: matchText,
    incident_id: incidentId,
    candidates,
    route_lines: routes.lines,
    route_lines_drawn: routes.drawn,
    emphasised_routes: routes.emphasised,
    incident_in_view: routes.inView,
    eta_text: etaText,
    top_unit: top,
    b_unit_status: bStatus,
    b_unit_status_after_en_route: bStatusEnRoute,
    b_timeline: bTimeline,
    raced_unit: raced,
    conflict_text: conflictText,
    raced_still_offered_on_b: racedStillOffered,
    a_timeline: aTimeline,
    english_heading: englishHeading,
    ambulance_after_joint_on_b: ambulanceOnB,
    picked_text: pickedText,
    aimed_at: aimed,
    second,
    b_closed: bClosed,
    viewer_new_button: viewerNew,
    viewer_assign_buttons: viewerAssign,
    a_reloads: a.loads,
    b_reloads: b.loads,
  };
}

await finish(browser, main);

// The devices & data quality panel, driven from tests/test_console_health.py.
//
// Debian's Chromium through playwright-core (no browser download). Every request is checked:
// anything to a host other than this machine fails the scenario. When the platform has to act
// the scenario prints "STEP name" and waits for one line on stdin. Prints one "RESULT {...}".

import {
  ART, check, finish, env, launch, logIn as logInAs, step, watch,
} from './harness.mjs';

const USERS = JSON.parse(env.USERS);
const OFFLINE = env.OFFLINE_DEVICE;
const XSS = env.XSS_PAYLOAD;
const dialogs = [];

const browser = await launch();

async function consolePage(viewport = { width: 1920, height: 1080 }) {
  const context = await browser.newContext({ viewport, locale: 'zh-CN' });
  const page = watch(await context.newPage());
  page.healthRequests = 0;
  page.on('request', (req) => {
    if (new URL(req.url()).pathname.startsWith('/telemetry/')) page.healthRequests += 1;
  });
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  return page;
}

const logIn = (page, user) => logInAs(page, user, USERS[user]);

const loads = (page) => page.evaluate(() => window.__console.health.loads);
// Whatever the panel does next, wait until it has loaded once more.
async function nextLoad(page, before) {
  await page.waitForFunction((n) => window.__console.health.loads > n, before, { timeout: 15000 });
}

// What the panel shows, read back from the page (rendered text, not the panel's state).
function shown(page) {
  return page.evaluate(() => {
    const cells = (tr) => [...tr.querySelectorAll('th, td')].map((c) => c.textContent.trim());
    const panel = document.getElementById('health-panel');
    return {
      kinds: Object.fromEntries([...panel.querySelectorAll('tr[data-kind]')].map((tr) => [tr.dataset.kind, cells(tr)])),
      totals: cells(panel.querySelector('tr.hl-totals')),
      head: [...panel.querySelectorAll('.hl-table thead th')].map((c) => c.textContent.trim()),
      offline: [...panel.querySelectorAll('.hl-dev')].map((d) => d.dataset.device),
      reasons: Object.fromEntries([...panel.querySelectorAll('.hl-reason')].map((r) => [r.dataset.reason, [r.querySelector('.hl-reason-name').firstChild.textContent, r.querySelector('.hl-reason-n').textContent]])),
      letters: [...panel.querySelectorAll('.hl-letter')].map((l) => ({
        id: l.dataset.id,
        reason: l.dataset.reason,
        pill: l.querySelector('.hl-pill').textContent,
        device: l.querySelector('.hl-letter-dev').textContent,
        time: l.querySelector('time').textContent,
        payload: l.querySelector('.hl-payload').textContent,
        size: l.querySelector('.hl-size').textContent,
      })),
      title: panel.querySelector('.hl-title').textContent,
      button: document.getElementById('btn-health').textContent,
      images: panel.querySelectorAll('img').length,
      elementsInPayloads: panel.querySelectorAll('.hl-payload *').length,
    };
  });
}

// Where the panel sits: inside the map, clear of both side columns and of the toolbar.
function box(page) {
  return page.evaluate(() => {
    const r = (id) => document.getElementById(id).getBoundingClientRect();
    const p = r('health-panel');
    const tools = document.querySelector('.map-tools').getBoundingClientRect();
    const body = document.querySelector('#health-panel .hl-body');
    return {
      inside: p.left >= r('mapwrap').left && p.right <= r('mapwrap').right + 0.5
        && p.top >= r('mapwrap').top && p.bottom <= r('mapwrap').bottom + 0.5,
      clearOfColumns: p.left >= r('left').right && p.right <= r('right').left + 0.5,
      belowTools: p.top >= tools.bottom,
      width: p.width,
      height: p.height,
      scrolls: body.scrollHeight > body.clientHeight + 1,
    };
  });
}

async function main() {
  // ---- an inspector: the button, the panel, its counts
  const page = await consolePage();
  await logIn(page, 'hl-inspector');
  const buttonVisible = await page.isVisible('#btn-health');
  check(buttonVisible, 'the inspector sees the button');
  check(await page.isHidden('#health-panel'), 'the panel starts closed');
  await page.click('#btn-health');
  await page.waitForFunction(() => window.__console.health.loads >= 1, null, { timeout: 15000 });
  await page.waitForSelector('#health-panel tr[data-kind="air"]');
  const first = await shown(page);
  const data = await page.evaluate(() => {
    const h = window.__console.health;
    return { kinds: h.health.kinds, totals: h.health.totals, counts: h.letters.counts_last_day };
  });
  const layout = await box(page);
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${ART}/health-open.png` });

  // ---- the offline device, for its kind only, and a click flies the map there
  let n = await loads(page);
  await page.click('#health-panel tr[data-kind="air"]');
  await nextLoad(page, n);
  const airOnly = await shown(page);
  await page.click(`#health-panel .hl-dev[data-device="${OFFLINE}"]`);
  await page.waitForTimeout(300);
  await page.waitForFunction(() => !window.__console.map.isMoving(), null, { timeout: 15000 });
  const center = await page.evaluate(() => window.__console.map.getCenter().toArray());
  const focus = await page.evaluate(async () => (await window.__console.map.getSource('focus').getData()).geometry.coordinates);
  await page.screenshot({ path: `${ART}/health-offline-focus.png` });

  // ---- the hostile payload is characters on screen, nothing more
  const xssLetter = first.letters.find((l) => l.payload.includes(XSS));

  // ---- filter by reason (the select), then by a reason row, then by device
  n = await loads(page);
  await page.selectOption('#health-panel .hl-reason-select', 'bad_json');
  await nextLoad(page, n);
  const byJson = await shown(page);
  n = await loads(page);
  await page.click('#health-panel .hl-reason[data-reason="out_of_area"]');
  await nextLoad(page, n);
  const byArea = await shown(page);
  const selectAfterRow = await page.inputValue('#health-panel .hl-reason-select');
  n = await loads(page);
  await page.click('#health-panel [data-action="clear-filters"]');
  await nextLoad(page, n);
  n = await loads(page);
  await page.fill('#health-panel .hl-device-input', OFFLINE);
  await page.press('#health-panel .hl-device-input', 'Enter');
  await nextLoad(page, n);
  const byDevice = await shown(page);
  await page.screenshot({ path: `${ART}/health-filtered.png` });

  // ---- auto-refresh: a new refused message shows up with nobody clicking
  const fresh = await step('new_letter');
  const autoStart = Date.now();
  await page.waitForSelector(`#health-panel .hl-letter[data-id="${fresh.id}"]`, { timeout: 20000 });
  const autoMs = Date.now() - autoStart;

  // ---- English
  await page.click('#lang-btn');
  await page.waitForTimeout(300);
  n = await loads(page);
  await page.click('#health-panel [data-action="refresh"]');
  await nextLoad(page, n);
  const english = await shown(page);
  await page.screenshot({ path: `${ART}/health-english.png` });
  await page.click('#lang-btn');

  // ---- closing stops the requests
  await page.click('#btn-health');
  const closedAt = page.healthRequests;
  await page.waitForTimeout(13000);
  const requestsWhileClosed = page.healthRequests - closedAt;

  // ---- the 4K wall: the same layout, twice the size
  const wall = await consolePage({ width: 3840, height: 2160 });
  await logIn(wall, 'hl-inspector');
  await wall.click('#btn-health');
  await wall.waitForFunction(() => window.__console.health.loads >= 1, null, { timeout: 15000 });
  await wall.waitForTimeout(500);
  const wallLayout = await box(wall);
  await wall.screenshot({ path: `${ART}/health-4k.png` });

  // ---- a viewer: no button, no requests
  const viewer = await consolePage();
  await logIn(viewer, 'hl-viewer');
  await viewer.waitForTimeout(1000);
  const viewerButton = await viewer.isVisible('#btn-health');
  const viewerPanel = await viewer.isVisible('#health-panel');
  await viewer.screenshot({ path: `${ART}/health-viewer.png` });

  return {
    button_visible: buttonVisible,
    first,
    data,
    layout,
    air_only: airOnly,
    center,
    focus,
    xss_letter: xssLetter || null,
    by_json: byJson.letters,
    by_area: byArea.letters,
    select_after_row: selectAfterRow,
    by_device: byDevice.letters,
    fresh_id: fresh.id,
    auto_ms: autoMs,
    english,
    requests_while_closed: requestsWhileClosed,
    wall_layout: wallLayout,
    viewer_button: viewerButton,
    viewer_panel: viewerPanel,
    viewer_requests: viewer.healthRequests,
  };
}

await finish(browser, main, { extra: () => ({ dialogs }) });

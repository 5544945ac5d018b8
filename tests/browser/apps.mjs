// One application's panel on the console, driven from tests/test_console_apps.py: log in as a
// user whose roles allow it, open its tab, wait until the figures the test read from the API
// show in its pane, in Chinese and then in English, and on the 4K wall. With APP=broken_panel
// the application's first panel throws in mount(ctx): the scenario reads what the wall shows
// in its place and checks that the rest of the console still works.

import { ART, check, finish, env, launch, logIn, watch } from './harness.mjs';

const browser = await launch();
const APP = env.APP;
const EXPECT = JSON.parse(env.EXPECT || '{"zh": [], "en": []}');
const SEARCH = env.SEARCH || '';

async function consolePage(viewport) {
  const context = await browser.newContext({ viewport, locale: 'zh-CN' });
  const page = watch(await context.newPage());
  await logIn(page, env.CONSOLE_USER, env.CONSOLE_PASSWORD);
  await page.click(`#tab-${APP}`);
  await page.waitForSelector(`#pane-${APP}:not([hidden])`);
  if (SEARCH) {
    await page.fill(`#pane-${APP} input[type=search]`, SEARCH);
    await page.press(`#pane-${APP} input[type=search]`, 'Enter');
  }
  return page;
}

// Waits until every text shows in the pane (or 30 s pass: the test then says which is missing).
async function waitForTexts(page, texts) {
  await page.waitForFunction(([app, wanted]) => {
    const pane = document.getElementById(`pane-${app}`);
    return pane && wanted.every((x) => pane.innerText.includes(x));
  }, [APP, texts], { timeout: 30000 }).catch(() => {});
}

// What the wall shows: read back from the page, not from the panels' state.
function shown(page) {
  return page.evaluate((app) => {
    const box = (q) => { const n = document.querySelector(q); return n ? n.getBoundingClientRect() : null; };
    const [l, m, r, deck] = [box('#left'), box('#mapwrap'), box('#right'), box('#app-deck')];
    const problems = [];
    if (l.right > m.left + 1 || m.right > r.left + 1 || r.right > innerWidth + 1) problems.push('columns overlap');
    if (!deck || deck.bottom > innerHeight + 1 || deck.left < r.left - 1 || deck.right > r.right + 1) problems.push('the deck leaves its column');
    const tools = box('#mapwrap .map-tools');
    if (tools && (tools.right > m.right + 1 || tools.bottom > m.bottom + 1)) problems.push('the tool bar leaves the map');
    const pane = document.getElementById(`pane-${app}`);
    const hook = window.__console;
    return {
      pane: pane ? pane.innerText : null,
      tab: (document.getElementById(`tab-${app}`) || {}).textContent || null,
      tabs: [...document.querySelectorAll('#app-tabs .app-tab')].map((b) => b.dataset.app),
      shown: hook.shownApp,
      visible_panes: [...document.querySelectorAll('.app-pane:not([hidden])')].map((p) => p.dataset.app),
      app_buttons: [...document.querySelectorAll('.map-tools button[data-app]:not([hidden])')].map((b) => b.dataset.app),
      panel_errors: hook.panelErrors || [],
      errors: hook.errors,
      error_lines: [...document.querySelectorAll('.panel-error')].map((e) => [e.dataset.panel, e.textContent]),
      problems,
    };
  }, APP);
}

async function main() {
  const page = await consolePage({ width: 1920, height: 1080 });
  await waitForTexts(page, EXPECT.zh);
  await page.waitForTimeout(1500); // map layers the panel added, tiles settle
  const zh = await shown(page);
  await page.screenshot({ path: `${ART}/apps-${APP}-1920-zh.png` });

  await page.click('#lang-btn');
  await waitForTexts(page, EXPECT.en);
  await page.waitForTimeout(800);
  const en = await shown(page);
  await page.screenshot({ path: `${ART}/apps-${APP}-1920-en.png` });

  // The rest of the wall still answers: another application's tab, then the map's layers.
  let other = null;
  const tabs = zh.tabs.filter((a) => a !== APP);
  if (tabs.length) {
    await page.click(`#tab-${tabs[0]}`);
    other = await page.evaluate((a) => ({
      shown: window.__console.shownApp,
      visible: !document.getElementById(`pane-${a}`).hidden,
      children: document.getElementById(`pane-${a}`).children.length,
    }), tabs[0]);
  }
  await page.click('#btn-layers');
  const layersOpen = await page.isVisible('#layer-panel');
  await page.click('#btn-layers');

  // The same console on the 4K wall, in Chinese, with the application's tab open again.
  // (Clicked from the page: software GL at 4K keeps the main thread busy for Playwright's
  // after-click waits on a loaded machine.)
  await page.click('#lang-btn');
  await page.setViewportSize({ width: 3840, height: 2160 });
  await page.evaluate((app) => {
    // Twice the pixels each way: one zoom level more shows the city as it was at 1920.
    const { map } = window.__console;
    map.setZoom(map.getZoom() + 1);
    document.getElementById(`tab-${app}`).click();
    document.getElementById('btn-layers').click(); // the legend on the wall's picture
  }, APP);
  await waitForTexts(page, EXPECT.zh);
  await page.waitForTimeout(2000);
  const big = await shown(page);
  await page.screenshot({ path: `${ART}/apps-${APP}-3840-zh.png`, timeout: 120000 });
  check(zh.pane !== null, `the pane of ${APP} is on the page`);
  return { zh, en, wall: big, other, layers_open: layersOpen };
}

await finish(browser, main);

// The console built from GET /apps, driven from tests/test_console_seam.py: the platform runs
// with the seam probe installed (tests/seam_app), and nothing in web/console names it. Its
// panel must mount through the ctx contract with its title in both languages, its device kind
// must appear in the live-kinds legend with its label and shape, and its threshold must flag
// a station over it. Screenshots at 1920×1080 and on the 4K wall.

import { ART, check, finish, env, launch, logIn, watch } from './harness.mjs';

const browser = await launch();
const USER = env.CONSOLE_USER;
const PASSWORD = env.CONSOLE_PASSWORD;
const HOT = env.HOT_BEACON;
const CALM = env.CALM_BEACON;
const failed = []; // answers of 400 and above, by path

async function consolePage(viewport) {
  const context = await browser.newContext({ viewport, locale: 'zh-CN' });
  const page = watch(await context.newPage());
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${new URL(r.url()).pathname}`); });
  return page;
}

// What the wall shows of the probe: read back from the page, not from the panel's state.
function shown(page) {
  return page.evaluate(() => {
    const probe = document.getElementById('probe-panel');
    const row = document.querySelector('#live-kinds input[data-kind="beacon"]');
    const label = row && row.closest('label');
    const glyph = label && label.querySelector('svg.kind-glyph');
    return {
      probe_title: probe ? probe.querySelector('h2').textContent : null,
      probe_column: probe ? probe.closest('.column').id : null,
      beacon_label: label ? label.querySelector('.lp-name').textContent : null,
      beacon_checked: row ? row.checked : null,
      beacon_glyph: glyph ? [...glyph.children].map((c) => c.tagName.toLowerCase()) : null,
      kinds: [...document.querySelectorAll('#live-kinds input[data-kind]')].map((i) => i.dataset.kind),
    };
  });
}

async function main() {
  const page = await consolePage({ width: 1920, height: 1080 });
  await logIn(page, USER, PASSWORD);
  // Applications' panels sit in the right column's deck, one tab each: open the probe's.
  await page.click('#tab-seam_probe');
  await page.waitForSelector('#probe-panel h2');
  // The live layer has both beacons once the socket said hello.
  await page.waitForFunction(([a, b]) => {
    const f = window.__console.fleet;
    return f.records.has(a) && f.records.has(b);
  }, [HOT, CALM], { timeout: 20000 });
  const status = await page.evaluate(([a, b]) => {
    const f = window.__console.fleet;
    return { hot: f.statusOf(f.records.get(a)), calm: f.statusOf(f.records.get(b)) };
  }, [HOT, CALM]);
  await page.click('#btn-layers');
  await page.waitForSelector('#layer-panel:not([hidden])');
  const zh = await shown(page);
  check(zh.probe_title === '接缝探针', `the probe's title in Chinese, got ${zh.probe_title}`);
  await page.waitForTimeout(1500); // tiles and the live layer settle before the picture
  await page.screenshot({ path: `${ART}/seam-console.png` });

  await page.click('#lang-btn');
  const en = await shown(page);
  check(en.probe_title === 'Seam probe', `the probe's title in English, got ${en.probe_title}`);
  await page.waitForTimeout(500);
  await page.screenshot({ path: `${ART}/seam-console-en.png` });
  await page.click('#lang-btn');

  const wall = await consolePage({ width: 3840, height: 2160 });
  await logIn(wall, USER, PASSWORD);
  // Clicked from the page: software GL at 4K keeps the main thread too busy for Playwright's
  // click checks on a loaded machine.
  await wall.evaluate(() => document.getElementById('tab-seam_probe').click());
  await wall.waitForSelector('#probe-panel h2');
  await wall.evaluate(() => document.getElementById('btn-layers').click());
  await wall.waitForTimeout(2000);
  await wall.screenshot({ path: `${ART}/seam-console-4k.png`, timeout: 120000 });
  const wallShown = await shown(wall);

  return {
    zh,
    en,
    wall: wallShown,
    status,
    failed_requests: [...new Set(failed)],
    errors: await page.evaluate(() => window.__console.errors),
    panels: await page.evaluate(() => Object.keys(window.__console).filter((k) => ['probe', 'incidents', 'health', 'geofences'].includes(k)).sort()),
  };
}

await finish(browser, main);

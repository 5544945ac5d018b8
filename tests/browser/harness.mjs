// What every browser scenario of the console shares: Debian's Chromium through playwright-core
// (no browser download), a watch on every request (anything to a host other than this machine
// fails the scenario), page errors collected, the login, and the "STEP name" handshake by which
// a scenario waits for the Python side to make the platform act.

import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import path from 'node:path';

const require = createRequire(path.join(process.cwd(), 'package.json'));
export const { chromium } = require('playwright-core');

export const env = process.env;
export const URL_ = env.CONSOLE_URL;
export const ART = env.ARTIFACTS || 'test-artifacts';
export const LOCAL = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update',
  '--disable-sync'];
// Requests to other hosts, and errors the pages reported, over the whole scenario.
export const external = [];
export const pageErrors = [];
// Every watched page, so that a failing scenario can say where each page's console stopped.
const watched = [];

export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

let lines = null;
export async function step(name) {
  lines = lines || createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  console.log(`STEP ${name}`);
  const { value } = await lines.next();
  return JSON.parse(value);
}

export function launch() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
}

// Watches a page: requests and sockets leaving the machine, page errors, console errors other
// than those matching `expected` (answers the scenario provokes on purpose).
export function watch(page, { expected = null } = {}) {
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.protocol === 'data:' || u.protocol === 'blob:') return;
    if (!LOCAL.has(u.hostname)) external.push(req.url());
  });
  page.on('websocket', (ws) => {
    const u = new URL(ws.url());
    if (!LOCAL.has(u.hostname)) external.push(ws.url());
  });
  page.on('pageerror', (e) => { pageErrors.push(e.message); console.error('pageerror:', e.message); });
  // Failed and refused requests go to stderr (not to pageErrors: scenarios provoke some).
  page.on('requestfailed', (req) => {
    const why = (req.failure() || {}).errorText || '';
    if (why === 'net::ERR_ABORTED') return; // tiles the map no longer wants: not a failure
    console.error('requestfailed:', req.url(), why);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) console.error(`http ${res.status()}:`, res.request().method(), res.url());
  });
  watched.push(page);
  page.on('console', (m) => {
    if (m.type() !== 'error' || /GL Driver|GPU stall/.test(m.text())) return;
    if (expected && expected.test(m.text())) return;
    pageErrors.push(m.text());
    console.error('console:', m.text());
  });
  return page;
}

export async function logIn(page, user, password) {
  await page.goto(URL_);
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#login-user', user);
  await page.fill('#login-pass', password);
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => window.__console && window.__console.ready, null, { timeout: 45000 });
}

// Where each watched page's console stopped (its start-up stage and the errors it caught).
async function describePages() {
  for (const [i, page] of watched.entries()) {
    if (page.isClosed()) continue;
    const seen = await page.evaluate(() => {
      const hook = window.__console;
      const said = (document.getElementById('login-msg') || {}).textContent;
      return hook ? { stage: hook.stage, ready: hook.ready, errors: hook.errors, login: said } : null;
    }).catch((e) => `not readable: ${e.message}`);
    console.error(`page ${i}: console ${JSON.stringify(seen)}`);
  }
}

// Runs a scenario's `main` and ends the process: one "RESULT {...}" line with what `main`
// returned, the requests that left the machine, the page errors and whatever `extra()` adds
// (on failure: the error instead of the result, after `onError` had its look), exit code 0/1.
export async function finish(browser, main, { extra = () => ({}), onError = async () => {} } = {}) {
  let code = 0;
  try {
    const result = await main();
    Object.assign(result, { external, page_errors: pageErrors }, extra());
    console.log(`RESULT ${JSON.stringify(result)}`);
  } catch (err) {
    console.error(err.stack || String(err));
    await describePages();
    await onError();
    console.log(`RESULT ${JSON.stringify({ error: String(err), external, ...extra() })}`);
    code = 1;
  } finally {
    await browser.close();
  }
  process.exit(code);
}

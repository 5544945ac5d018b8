// `bench console`, the page side: log in to the console in headless Chromium, wait until the
// fleet is drawn, then record requestAnimationFrame intervals and the WebSocket bytes received
// for BENCH_SECONDS. Prints one JSON line of figures on stdout; progress goes to stderr.

import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.cwd(), 'package.json'));
const { chromium } = require('playwright-core');

const env = process.env;
const units = Number(env.BENCH_UNITS || 10000);
const seconds = Number(env.BENCH_SECONDS || 30);
const log = (...a) => console.error(...a);

const context = await chromium.launchPersistentContext(env.CHROMIUM_USER_DATA, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1920, height: 1080 },
});
try {
  const page = await context.newPage();
  page.on('pageerror', (e) => log('pageerror:', e.message));
  await page.goto(env.CONSOLE_URL);
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#login-user', env.CONSOLE_USER);
  await page.fill('#login-pass', env.CONSOLE_PASSWORD);
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => window.__console && window.__console.ready, null, { timeout: 60000 })
    .catch(async (err) => {
      log('console not ready:', await page.evaluate(() => JSON.stringify({
        message: document.getElementById('login-msg').textContent, stage: window.__console && window.__console.stage, login: document.getElementById('login').hidden, errors: window.__console && window.__console.errors,
      })));
      throw err;
    });
  const want = Math.floor(units * 0.98);
  await page.waitForFunction((n) => window.__console.stats.drawn >= n, want, { timeout: 60000 });
  await page.waitForTimeout(3000); // tiles and charts settle; the first ticks are out of the way
  const renderer = await page.evaluate(() => {
    const gl = document.createElement('canvas').getContext('webgl2');
    const ext = gl && gl.getExtension('WEBGL_debug_renderer_info');
    return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : 'unknown';
  });
  log(`drawing ${await page.evaluate(() => window.__console.stats.drawn)} units on ${renderer}`);
  // BENCH_PROFILE=file: a JavaScript CPU profile and the renderer's task times over the
  // measurement, summarised (self time by function) into that file — where the frames go.
  let cdp = null;
  let metrics0 = null;
  if (env.BENCH_PROFILE) {
    cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
    metrics0 = (await cdp.send('Performance.getMetrics')).metrics;
    await cdp.send('Profiler.start');
  }
  const figures = await page.evaluate(async (ms) => {
    const frames = [];
    let longTasks = 0;
    try {
      new PerformanceObserver((list) => { longTasks += list.getEntries().length; })
        .observe({ type: 'longtask', buffered: false });
    } catch { /* not every build reports long tasks */ }
    const bytes0 = window.__console.socket.bytes;
    const states0 = window.__console.stats.states;
    const start = performance.now();
    await new Promise((resolve) => {
      let last = start;
      const tick = (t) => {
        frames.push(t - last);
        last = t;
        if (t - start < ms) requestAnimationFrame(tick); else resolve();
      };
      requestAnimationFrame(tick);
    });
    const elapsed = (performance.now() - start) / 1000;
    const bytes = window.__console.socket.bytes - bytes0;
    frames.shift();
    frames.sort((a, b) => a - b);
    const q = (p) => frames[Math.min(frames.length - 1, Math.floor((frames.length - 1) * p))];
    return {
      frames: frames.length,
      seconds: Math.round(elapsed * 10) / 10,
      frame_p50_ms: Math.round(q(0.5) * 10) / 10,
      frame_p95_ms: Math.round(q(0.95) * 10) / 10,
      frame_max_ms: Math.round(frames[frames.length - 1] * 10) / 10,
      ws_bytes_per_s: Math.round(bytes / elapsed),
      // unit states the page applied per second: what the feed delivered, not what was sent
      states_per_s: Math.round((window.__console.stats.states - states0) / elapsed),
      long_tasks: longTasks,
      drawn_units: window.__console.stats.drawn,
    };
  }, seconds * 1000);
  if (cdp) {
    const { profile } = await cdp.send('Profiler.stop');
    const metrics1 = (await cdp.send('Performance.getMetrics')).metrics;
    const m0 = Object.fromEntries(metrics0.map((m) => [m.name, m.value]));
    const tasks = Object.fromEntries(metrics1
      .filter((m) => /Duration$/.test(m.name))
      .map((m) => [m.name, Math.round((m.value - (m0[m.name] || 0)) * 1000)]));
    const self = new Map();
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const dt = profile.timeDeltas;
    profile.samples.forEach((id, i) => {
      const n = byId.get(id);
      const f = n.callFrame;
      const key = `${f.functionName || '(anon)'} ${f.url.split('/').pop()}:${f.lineNumber + 1}`;
      self.set(key, (self.get(key) || 0) + (dt[i] || 0) / 1000);
    });
    const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40)
      .map(([k, ms]) => `${ms.toFixed(0).padStart(7)} ms  ${k}`);
    const fs = await import('node:fs');
    fs.writeFileSync(`${env.BENCH_PROFILE}.${units}.txt`, `${JSON.stringify({ units, seconds, tasks_ms: tasks, figures })}\n${top.join('\n')}\n`);
  }
  figures.renderer = renderer;
  figures.units = units;
  console.log(JSON.stringify(figures));
} finally {
  await context.close();
}

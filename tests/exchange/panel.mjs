// The exchange panel in Chromium, driven from tests/exchange/test_console.py.
//
// The console's shell that mounts application panels is not merged yet, so the scenario logs
// in to the real console, builds the panel's ctx to the documented contract around the
// console's own map and session, imports the served module and mounts it. It then reads back
// what the panel shows: sources, a district choropleth on the map, a chart, both languages;
// and, as a user of another department, the apply button. No request may leave the machine.

import { check, env, finish, launch, logIn, watch } from '../browser/harness.mjs';

const browser = await launch();

async function mounted(user) {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 }, locale: 'zh-CN' });
  const page = watch(await context.newPage());
  await logIn(page, user.username, env.PASSWORD);
  await page.evaluate(async (who) => {
    const script = document.querySelector('script[type=module][src*="/app.js"]');
    const base = script.src.replace(/app\.js.*$/, '');
    const strings = await (await fetch(`${base}apps/exchange/strings.json`)).json();
    const { token } = JSON.parse(sessionStorage.getItem('changzhi.console.session'));
    let current = 'zh';
    const langFns = [];
    const el = (tag, props = {}, ...children) => {
      const node = document.createElement(tag);
      if (props.class) node.className = props.class;
      if (props.text !== undefined) node.textContent = props.text;
      for (const [k, v] of Object.entries(props.dataset || {})) node.dataset[k] = v;
      for (const [k, v] of Object.entries(props.attrs || {})) node.setAttribute(k, v);
      node.append(...children);
      return node;
    };
    const columns = { left: document.createElement('div'), right: document.createElement('div') };
    for (const c of Object.values(columns)) {
      c.style.cssText = 'position:fixed;top:0;left:0;z-index:9999;background:#fff;max-height:100vh;overflow:auto;width:600px';
      document.body.append(c);
    }
    const ctx = {
      app: 'exchange',
      panel: 'exchange',
      el,
      t: (key, vars = {}) => (strings[current][key] ?? key).replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? '')),
      lang: () => current,
      onLang: (fn) => langFns.push(fn),
      api: async (path, options = {}) => {
        const res = await fetch(path, { ...options, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' } });
        const data = await res.json().catch(() => ({}));
        if (!res.ok) throw new Error(typeof data.detail === 'string' ? data.detail : `HTTP ${res.status}`);
        return data;
      },
      map: window.__console.map,
      user: who,
      kinds: {},
      column: (where) => columns[where],
      toolbarButton: () => {},
      onEvent: () => {},
      onReconnect: () => {},
      claimMapClicks: () => {},
    };
    const module = await import(`${base}apps/exchange/exchange.js`);
    window.__exchange = { handle: module.mount(ctx), setLang: (l) => { current = l; langFns.forEach((f) => f()); } };
  }, user);
  await page.waitForSelector('#exchange-panel tr[data-source="census_2020"]', { timeout: 20000 });
  return page;
}

const texts = (page, selector) => page.$$eval(selector, (nodes) => nodes.map((n) => n.textContent.trim()));

await finish(browser, async () => {
  const clerk = JSON.parse(env.CLERK);
  const page = await mounted(clerk);
  const result = {};
  result.sources = await page.$$eval('#exchange-panel tr[data-source]', (rows) => rows.map((r) => [r.dataset.source, ...[...r.querySelectorAll('td')].map((c) => c.textContent.trim())]));

  // The census by district, as a choropleth.
  const form = '#exchange-panel .exchange-map .exchange-form';
  await page.selectOption(`${form} select:nth-of-type(1)`, 'census_2020');
  await page.selectOption(`${form} select:nth-of-type(3)`, 'district');
  await page.click(`${form} button:nth-of-type(1)`);
  await page.waitForSelector('#exchange-panel .exchange-join-result p');
  result.joined = (await texts(page, '#exchange-panel .exchange-join-result p'))[0];
  result.map = await page.evaluate(() => {
    const data = window.__console.map.getSource('exchange-areas').serialize().data;
    return data.features.map((f) => [f.properties.code, f.properties.value, f.properties.colour]);
  });

  // Statistics: population 2020 as bars.
  const stats = '#exchange-panel .exchange-stats .exchange-form';
  await page.selectOption(`${stats} select:nth-of-type(1)`, 'census_2020');
  await page.fill(`${stats} input:nth-of-type(2)`, '2020');
  await page.click(`${stats} button:nth-of-type(1)`);
  await page.waitForSelector('#exchange-panel .exchange-chart canvas', { timeout: 20000 });
  result.stat_rows = await page.$$eval('#exchange-panel .exchange-table tbody tr', (rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
  result.note_zh = (await texts(page, '#exchange-panel .exchange-table p'))[0];

  await page.evaluate(() => window.__exchange.setLang('en'));
  result.title_en = (await texts(page, '#exchange-panel h2'))[0];
  result.headings_en = await texts(page, '#exchange-panel h3');
  result.head_en = await texts(page, '#exchange-panel .exchange-sources thead th');

  // Another department: the census is published but not readable, so it offers an apply button.
  const market = await mounted(JSON.parse(env.MARKET));
  result.market_buttons = await market.$$eval('#exchange-panel tr[data-source="census_2020"] button', (b) => b.map((x) => x.textContent));
  result.market_map = (await texts(market, '#exchange-panel .exchange-map p'))[0];
  await market.click('#exchange-panel tr[data-source="census_2020"] button');
  await market.waitForFunction(() => !document.querySelector('#exchange-panel tr[data-source="census_2020"] button'), null, { timeout: 10000 }).catch(() => {});
  result.market_error = (await texts(market, '#exchange-panel .exchange-error'))[0];
  check(true, 'done');
  return result;
});

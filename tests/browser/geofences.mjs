// The geofence panel, driven from tests/test_console_geofences.py.
//
// A dispatcher draws a fence with four clicks on the map (the last a double-click), names it
// and saves it; draws a bow-tie that the server refuses, sees why in the form, drags a vertex
// to fix it and saves it under a hostile name; zooms to a fence from the list, deletes one
// with the confirmation inside the page, aborts a drawing with Esc, reads it all in English;
// the 4K wall; a viewer sees the list and no editing controls. Prints one "RESULT {...}".

import {
  ART, check, finish, env, launch, logIn as logInAs, step, watch,
} from './harness.mjs';

const USERS = JSON.parse(env.USERS);
const NAME = env.FENCE_NAME;
const XSS = env.XSS_NAME;
const VIEW = JSON.parse(env.VIEW); // { center: [lon, lat], zoom }
const dialogs = [];
const pages = [];

const browser = await launch();

async function consolePage(viewport = { width: 1920, height: 1080 }) {
  const context = await browser.newContext({ viewport, locale: 'zh-CN' });
  // The 422 the bow-tie provokes is logged by the browser as a failed resource.
  const page = watch(await context.newPage(), { expected: /status of 422/ });
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  pages.push(page);
  return page;
}

const logIn = (page, user) => logInAs(page, user, USERS[user]);

async function settle(page) {
  await page.waitForTimeout(200);
  await page.waitForFunction(() => !window.__console.map.isMoving(), null, { timeout: 15000 });
}

// A point of the map's box, in page (client) coordinates, and where it is on the earth by the
// map's own projection, as the page computes it.
async function mapPoint(page, fx, fy) {
  return page.evaluate(([a, b]) => {
    const map = window.__console.map;
    const r = map.getCanvas().getBoundingClientRect();
    const x = Math.round(r.left + a * r.width), y = Math.round(r.top + b * r.height);
    const ll = map.unproject([x - r.left, y - r.top]);
    return { x, y, lngLat: [ll.lng, ll.lat] };
  }, [fx, fy]);
}

// What the panel and the map show, read back from the page.
function shown(page) {
  return page.evaluate(() => {
    const panel = document.getElementById('geofence-panel');
    const g = window.__console.geofences;
    const visible = (node) => Boolean(node) && node.getClientRects().length > 0;
    return {
      rows: [...panel.querySelectorAll('.gf-row')].map((r) => ({
        id: Number(r.dataset.id),
        name: r.querySelector('.gf-name').textContent,
        kinds: r.querySelector('.gf-kinds-shown').textContent,
        flags: [...r.querySelectorAll('.gf-flag')].map((f) => f.textContent),
        delete: visible(r.querySelector('.gf-del')),
        selected: r.classList.contains('selected'),
      })),
      drawn: g.map.getSource('geofences-console').serialize().data.features.map((f) => f.properties.id),
      fillVisible: g.map.getLayoutProperty('gf-fill', 'visibility'),
      title: panel.querySelector('.gf-title').textContent,
      count: panel.querySelector('.gf-n').textContent,
      button: document.getElementById('btn-geofences').textContent,
      newButton: visible(panel.querySelector('.gf-new')),
      newText: panel.querySelector('.gf-new').textContent,
      message: panel.querySelector('.gf-msg').textContent,
      formError: panel.querySelector('.gf-form-error').textContent,
      formShown: visible(panel.querySelector('.gf-form')),
      drawShown: visible(panel.querySelector('.gf-draw')),
      readonly: visible(panel.querySelector('.gf-readonly')),
      mode: g.mode,
      draft: g.draft.length,
      images: panel.querySelectorAll('img').length,
      elementsInNames: panel.querySelectorAll('.gf-name *').length,
      labels: [...panel.querySelectorAll('.gf-form legend, .gf-form .gf-check span, .gf-field > span, .gf-form button')].map((n) => n.textContent),
    };
  });
}

// Is the fence drawn at this screen point (the fill layer rendered there)?
function fenceAt(page, pt) {
  return page.evaluate(([x, y]) => {
    const map = window.__console.map;
    const r = map.getCanvas().getBoundingClientRect();
    return map.queryRenderedFeatures([x - r.left, y - r.top], { layers: ['gf-fill'] }).map((f) => f.properties.id);
  }, [pt.x, pt.y]);
}

function box(page) {
  return page.evaluate(() => {
    const r = (id) => document.getElementById(id).getBoundingClientRect();
    const p = r('geofence-panel');
    const tools = document.querySelector('.map-tools').getBoundingClientRect();
    return {
      inside: p.left >= r('mapwrap').left && p.right <= r('mapwrap').right + 0.5
        && p.top >= r('mapwrap').top && p.bottom <= r('mapwrap').bottom + 0.5,
      clearOfColumns: p.left >= r('left').right && p.right <= r('right').left + 0.5,
      belowTools: p.top >= tools.bottom,
      toolsInside: tools.left >= r('mapwrap').left,
      width: p.width,
    };
  });
}

async function clickMap(page, pt) {
  await page.mouse.move(pt.x, pt.y, { steps: 4 });
  await page.mouse.click(pt.x, pt.y);
  await page.waitForTimeout(350); // apart from the next click: no double-click by accident
}

async function main() {
  // ---- a dispatcher opens the panel: the list, the new-fence button
  const page = await consolePage();
  await logIn(page, 'gf-dispatcher');
  check(await page.isVisible('#btn-geofences'), 'the dispatcher sees the button');
  await page.click('#btn-geofences');
  await page.waitForFunction(() => window.__console.geofences.loads >= 1, null, { timeout: 15000 });
  await page.evaluate((v) => window.__console.map.jumpTo(v), VIEW);
  await settle(page);
  const before = await shown(page);
  const layout = await box(page);

  // ---- draw: three clicks, a double-click on the fourth corner; the preview follows the mouse
  await page.click('#geofence-panel [data-action="new"]');
  const corners = [];
  for (const [fx, fy] of [[0.15, 0.25], [0.5, 0.22], [0.52, 0.7], [0.18, 0.72]]) corners.push(await mapPoint(page, fx, fy));
  for (const c of corners.slice(0, 3)) await clickMap(page, c);
  await page.mouse.move(corners[3].x + 30, corners[3].y + 20, { steps: 5 });
  await page.waitForTimeout(200);
  const preview = await page.evaluate(() => {
    const f = window.__console.map.getSource('geofence-draft').serialize().data.features;
    return { parts: f.map((x) => x.properties.part), area: (f.find((x) => x.properties.part === 'area') || {}).geometry };
  });
  const whileDrawing = await shown(page);
  await page.screenshot({ path: `${ART}/geofences-drawing.png` });
  await page.mouse.move(corners[3].x, corners[3].y, { steps: 3 });
  await page.mouse.dblclick(corners[3].x, corners[3].y);
  await page.waitForSelector('#geofence-panel .gf-form:not([hidden])');
  const zoomAfterDbl = await page.evaluate(() => window.__console.map.getZoom());
  const atForm = await shown(page);

  // ---- the form: name, kinds (vehicle already checked), only on entering; save
  await page.fill('#geofence-panel input[name=name]', NAME);
  await page.check('#geofence-panel input[name=kind][value=air]');
  await page.uncheck('#geofence-panel input[name=on_leave]');
  await page.screenshot({ path: `${ART}/geofences-form.png` });
  await page.click('#geofence-panel [data-action="save"]');
  await page.waitForFunction((n) => [...document.querySelectorAll('#geofence-panel .gf-name')].some((x) => x.textContent === n), NAME, { timeout: 15000 });
  const saved = await shown(page);
  const savedRow = saved.rows.find((r) => r.name === NAME);
  const middle = { x: Math.round((corners[0].x + corners[2].x) / 2), y: Math.round((corners[0].y + corners[2].y) / 2) };
  await page.mouse.move(middle.x, middle.y);
  await page.waitForTimeout(300);
  const drawnAtMiddle = await fenceAt(page, middle);
  const api1 = await step('saved');
  await page.screenshot({ path: `${ART}/geofences-saved.png` });

  // ---- a bow-tie: the server refuses it, the form says why, the drawing stays
  await page.click('#geofence-panel [data-action="new"]');
  const bow = [];
  for (const [fx, fy] of [[0.2, 0.3], [0.55, 0.75], [0.55, 0.3], [0.2, 0.75]]) bow.push(await mapPoint(page, fx, fy));
  for (const c of bow) await clickMap(page, c);
  await page.click('#geofence-panel [data-action="finish"]');
  await page.fill('#geofence-panel input[name=name]', XSS);
  await page.click('#geofence-panel [data-action="save"]');
  await page.waitForFunction(() => document.querySelector('#geofence-panel .gf-form-error').textContent.length > 0, null, { timeout: 15000 });
  const refused = await shown(page);
  await page.screenshot({ path: `${ART}/geofences-refused.png` });
  const apiRefused = await step('refused');

  // ---- fix it: drag the second vertex up and to the right, save again
  const fixedTo = await mapPoint(page, 0.62, 0.22);
  await page.mouse.move(bow[1].x, bow[1].y, { steps: 3 });
  await page.mouse.down();
  await page.mouse.move((bow[1].x + fixedTo.x) / 2, (bow[1].y + fixedTo.y) / 2, { steps: 6 });
  await page.mouse.move(fixedTo.x, fixedTo.y, { steps: 6 });
  await page.mouse.up();
  await page.waitForTimeout(300);
  const draftAfterDrag = await page.evaluate(() => window.__console.geofences.draft);
  const centerAfterDrag = await page.evaluate(() => window.__console.map.getCenter().toArray());
  await page.click('#geofence-panel [data-action="save"]');
  await page.waitForFunction((n) => [...document.querySelectorAll('#geofence-panel .gf-name')].some((x) => x.textContent === n), XSS, { timeout: 15000 });
  const fixed = await shown(page);
  const apiFixed = await step('fixed');
  await page.screenshot({ path: `${ART}/geofences-xss.png` });

  // ---- a click in the list zooms to the fence: all its corners in view, left of the panel
  await page.evaluate(() => window.__console.map.jumpTo({ center: [112.6, 36.5], zoom: 9 }));
  await settle(page);
  await page.click(`#geofence-panel .gf-row[data-id="${savedRow.id}"] .gf-name`);
  await page.waitForTimeout(300);
  await settle(page);
  const zoomed = await page.evaluate((pts) => {
    const map = window.__console.map;
    const w = map.getCanvas().getBoundingClientRect();
    const panel = document.getElementById('geofence-panel').getBoundingClientRect();
    const inView = pts.every(([lon, lat]) => {
      const p = map.project([lon, lat]);
      return p.x >= 0 && p.y >= 0 && p.y <= w.height && w.left + p.x <= panel.left;
    });
    return { inView, zoom: map.getZoom() };
  }, corners.map((c) => c.lngLat));
  const afterZoom = await shown(page);

  // ---- English
  await page.click('#lang-btn');
  await page.waitForTimeout(300);
  await page.click('#geofence-panel [data-action="new"]');
  const englishDrawing = await page.evaluate(() => document.querySelector('#geofence-panel .gf-draw').textContent);
  await page.keyboard.press('Escape');
  const english = await shown(page);
  await page.screenshot({ path: `${ART}/geofences-english.png` });
  await page.click('#lang-btn');
  await page.waitForTimeout(200);

  // ---- Esc drops a drawing in progress
  await page.click('#geofence-panel [data-action="new"]');
  const p1 = await mapPoint(page, 0.3, 0.4), p2 = await mapPoint(page, 0.4, 0.5);
  await clickMap(page, p1);
  await clickMap(page, p2);
  const twoPoints = (await shown(page)).draft;
  await page.keyboard.press('Escape');
  await page.waitForTimeout(200);
  const afterEsc = await shown(page);
  const draftFeaturesAfterEsc = await page.evaluate(() => window.__console.map.getSource('geofence-draft').serialize().data.features.length);

  // ---- delete: asked inside the page; "cancel" keeps it, "delete" removes it everywhere
  const rowSel = `#geofence-panel .gf-row[data-id="${savedRow.id}"]`;
  await page.click(`${rowSel} [data-action="delete"]`);
  const confirmText = await page.textContent(`${rowSel} .gf-confirm`);
  await page.screenshot({ path: `${ART}/geofences-confirm.png` });
  await page.click(`${rowSel} [data-action="cancel-delete"]`);
  const keptAfterCancel = (await shown(page)).rows.some((r) => r.id === savedRow.id);
  await page.click(`${rowSel} [data-action="delete"]`);
  await page.click(`${rowSel} [data-action="confirm-delete"]`);
  await page.waitForSelector(rowSel, { state: 'detached', timeout: 15000 });
  await page.waitForTimeout(300);
  const deleted = await shown(page);
  await page.mouse.move(middle.x, middle.y);
  const drawnAfterDelete = await page.evaluate(() => window.__console.map.getSource('geofences-console').serialize().data.features.map((f) => f.properties.id));
  const apiDeleted = await step('deleted');

  // ---- closed, the fences leave the map
  await page.click('#btn-geofences');
  const closedVisibility = await page.evaluate(() => window.__console.map.getLayoutProperty('gf-fill', 'visibility'));

  // ---- the 4K wall
  const wall = await consolePage({ width: 3840, height: 2160 });
  await logIn(wall, 'gf-dispatcher');
  await wall.click('#btn-geofences');
  await wall.waitForFunction(() => window.__console.geofences.loads >= 1, null, { timeout: 15000 });
  await wall.evaluate((v) => window.__console.map.jumpTo(v), VIEW);
  await wall.click('#geofence-panel [data-action="new"]');
  for (const [fx, fy] of [[0.2, 0.3], [0.45, 0.28], [0.4, 0.6]]) await clickMap(wall, await mapPoint(wall, fx, fy));
  await wall.click('#geofence-panel [data-action="finish"]');
  await settle(wall);
  const wallLayout = await box(wall);
  await wall.screenshot({ path: `${ART}/geofences-4k.png` });
  await wall.click('#geofence-panel [data-action="cancel-form"]');

  // ---- a viewer: the list and the map, no drawing, no deleting
  const viewer = await consolePage();
  await logIn(viewer, 'gf-viewer');
  const viewerButton = await viewer.isVisible('#btn-geofences');
  await viewer.click('#btn-geofences');
  await viewer.waitForFunction(() => window.__console.geofences.loads >= 1, null, { timeout: 15000 });
  await viewer.waitForTimeout(300);
  const viewerShown = await shown(viewer);
  const vpt = await mapPoint(viewer, 0.3, 0.4);
  await viewer.mouse.click(vpt.x, vpt.y);
  const viewerMode = await viewer.evaluate(() => [window.__console.geofences.mode, window.__console.geofences.draft.length]);
  await viewer.screenshot({ path: `${ART}/geofences-viewer.png` });

  return {
    before,
    layout,
    corners: corners.map((c) => c.lngLat),
    preview,
    while_drawing: whileDrawing,
    zoom_after_dbl: zoomAfterDbl,
    at_form: atForm,
    saved,
    saved_id: savedRow.id,
    drawn_at_middle: drawnAtMiddle,
    api_saved: api1,
    bow: bow.map((c) => c.lngLat),
    refused,
    api_refused: apiRefused,
    fixed_to: fixedTo.lngLat,
    draft_after_drag: draftAfterDrag,
    center_after_drag: centerAfterDrag,
    fixed,
    api_fixed: apiFixed,
    zoomed,
    after_zoom: afterZoom,
    english,
    english_drawing: englishDrawing,
    two_points: twoPoints,
    after_esc: afterEsc,
    draft_features_after_esc: draftFeaturesAfterEsc,
    confirm_text: confirmText,
    kept_after_cancel: keptAfterCancel,
    deleted,
    drawn_after_delete: drawnAfterDelete,
    api_deleted: apiDeleted,
    closed_visibility: closedVisibility,
    wall_layout: wallLayout,
    viewer_button: viewerButton,
    viewer: viewerShown,
    viewer_mode: viewerMode,
  };
}

await finish(browser, main, {
  extra: () => ({ dialogs }),
  // What the page looked like when it went wrong.
  onError: () => Promise.all(pages.map((p, i) => p.screenshot({ path: `${ART}/geofences-failed-${i}.png` }).catch(() => {}))),
});

// Panels: what an application (or the platform itself) puts on the console. Each is an ES module
// exporting `mount(ctx)`; the shell reads GET /apps after log-in, loads the panels the user's
// roles allow with a dynamic import() of STATIC + '/' + panel.module, merges the panel's strings
// JSON into the dictionary, and calls mount(ctx). An application's panel lives in its own
// `console/` folder (served under <static>/apps/<name>/) and reaches the console's shared
// modules by relative path: `../../dom.js` is the console's dom.js.
//
// The ctx contract: what mount(ctx) may use, and all it may rely on.
//
//   ctx.app, ctx.panel        the application's and the panel's entries of GET /apps
//   ctx.el(tag, props, ...children)
//                             the safe DOM builder of dom.js: strings become text, never markup
//                             (no HTML strings assembled with data, anywhere)
//   ctx.t(key, vars), ctx.lang(), ctx.onLang(fn)
//                             words in the wall's language (its strings are merged already), the
//                             language now, and a call whenever it changes
//   ctx.api(path, options)    authenticated JSON fetch (api.js); a dead session throws
//                             SessionExpired, which the panel hands to ctx.onExpired
//   ctx.map                   the MapLibre map
//   ctx.user                  {username, roles, department}
//   ctx.kinds                 the device kinds of GET /apps
//   ctx.collections           the catalog collections this user may read (GET /collections)
//   ctx.column('left'|'right') where to append a panel section: for a platform panel the wall's
//                             column; for an application's panel its application's pane in the
//                             right column's deck (one tab per application, one pane shown)
//   ctx.onShow(fn)            fn() whenever the application's pane is shown (charts measure
//                             themselves then: a hidden pane has no size)
//   ctx.overlay()             the box over the map that floating panels are appended to (it
//                             carries state classes such as `dispatching` for the page's CSS)
//   ctx.toolbarButton(id, labelKey, onClick)
//                             a button in the map tool bar (label from the dictionary); returned.
//                             An application's buttons show while its pane is shown
//   ctx.sharePlace(place, close)
//                             a floating panel that shares its place over the map with others
//                             (e.g. 'map-right'): returns opened(), to call when it opens, which
//                             has the others of that place close()
//   ctx.focus({lon, lat, id}) fly the map to a place and ring it; with the id of a device on the
//                             live layer, select it (its details card and trail)
//   ctx.onEvent(type, fn)     live events of that type from the socket (`msg.app` names the
//                             application that published it)
//   ctx.onReconnect(fn)       after the live socket came back: events may have been missed
//   ctx.onExpired(reason)     the session is over: back to the log-in screen, saying why
//   ctx.claimMapClicks(fn)    fn(lngLat, ev) sees every map click first (the clicked place, and
//                             MapLibre's event for its pixel); it returns true when it took it
//                             (picking a place, a click on its own markers)
//
// mount(ctx) returns an object (optionally with refresh(), called after a reconnect); the shell
// keeps it as window.__console[panel.id] for tests. A panel that fails to load or mount (an
// exception in mount(ctx), a module that does not load) leaves one line saying so in its place
// and the rest of the wall working.

import { el } from './dom.js';
import { t, lang, onLang, addStrings, applyStatic, hasKey } from './i18n.js';
import { api } from './api.js';

// Whether a user sees a panel: no roles listed means every logged-in user; admins see all.
export function allowed(panel, user) {
  const mine = (user && user.roles) || [];
  const wanted = panel.roles || [];
  return !wanted.length || mine.includes('admin') || wanted.some((r) => mine.includes(r));
}

export class Panels {
  // `shell`: { staticRoot, map, user, kinds, collections, columns: {left, right}, overlay,
  //            toolbar, onExpired, focus, hook }
  constructor(shell) {
    this.shell = shell;
    this.listeners = new Map(); // event type -> [fn]
    this.reconnects = [];
    this.clickClaims = [];
    this.mounted = [];
    this.places = new Map(); // place over the map -> close() of each panel sharing it
    this.decks = new Map(); // application name -> {tab, pane, buttons, shows}
    this.deck = null;
    this.shown = null; // the application whose pane is shown
  }

  // The ctx one panel gets; everything it registers is kept here for the shell to call.
  // `app` is null for the platform's own panels (health, geofences).
  context(app, panel) {
    const s = this.shell;
    const deck = app ? this.decks.get(app.name) : null;
    // The panel's own word for a key, else the wall's (see addStrings).
    const own = (key) => (app && hasKey(`${app.name}:${key}`) ? `${app.name}:${key}` : key);
    return {
      app,
      panel,
      el,
      t: (key, vars) => t(own(key), vars),
      lang: () => lang,
      onLang,
      api,
      map: s.map,
      user: s.user,
      kinds: s.kinds,
      collections: s.collections,
      column: (side) => {
        const col = s.columns[side];
        if (!col) throw new Error(`ctx.column: 'left' or 'right', not ${JSON.stringify(side)}`);
        return deck ? deck.pane : col;
      },
      overlay: () => s.overlay,
      toolbarButton: (id, labelKey, onClick) => {
        const key = own(labelKey);
        const button = el('button', { id, class: 'btn', type: 'button', i18n: key }, t(key));
        if (onClick) button.addEventListener('click', onClick);
        if (deck) {
          button.dataset.app = app.name;
          button.hidden = this.shown !== app.name;
          deck.buttons.push(button);
        }
        s.toolbar.append(button);
        return button;
      },
      onShow: (fn) => { if (deck) deck.shows.push(fn); },
      onEvent: (type, fn) => {
        if (!this.listeners.has(type)) this.listeners.set(type, []);
        this.listeners.get(type).push(fn);
      },
      sharePlace: (place, close) => {
        if (!this.places.has(place)) this.places.set(place, []);
        const sharing = this.places.get(place);
        sharing.push(close);
        return () => { for (const other of sharing) if (other !== close) other(); };
      },
      focus: (place) => s.focus(place),
      onReconnect: (fn) => { this.reconnects.push(fn); },
      onExpired: (reason) => s.onExpired(reason),
      claimMapClicks: (fn) => { this.clickClaims.push({ app: app && app.name, fn }); },
    };
  }

  // Mounts one panel module already imported (the platform's own panels come this way). An
  // exception in its mount leaves one line in its place; the wall goes on without it.
  mountModule(module, app, panel) {
    // What was in the application's pane before: a panel that throws takes its half-built
    // sections with it.
    const deck = app ? this.decks.get(app.name) : null;
    const before = deck ? new Set(deck.pane.children) : null;
    try {
      let made = module.mount(this.context(app, panel)) || {};
      const entry = { id: panel.id, made };
      this.mounted.push(entry);
      if (typeof made.then === 'function') {
        // An async mount: its failure, when it comes, is reported in its place the same way.
        made.then((done) => {
          entry.made = done || {};
          if (this.shell.hook) this.shell.hook[panel.id] = entry.made;
        }, (err) => this.failed(app, panel, err));
        made = {};
      }
      if (this.shell.hook) this.shell.hook[panel.id] = made;
      return made;
    } catch (err) {
      if (deck) for (const node of [...deck.pane.children]) if (!before.has(node)) node.remove();
      this.failed(app, panel, err);
      return null;
    }
  }

  // One line, in the panel's place, saying which panel is missing and why.
  failed(app, panel, err) {
    const why = (err && err.message) || String(err);
    console.warn(`panel ${panel.id}:`, why);
    if (this.shell.hook) (this.shell.hook.panelErrors ||= []).push({ panel: panel.id, error: why });
    const deck = app ? this.decks.get(app.name) : null;
    const place = deck ? deck.pane : this.shell.columns.right;
    const line = el('div', { class: 'panel panel-error', role: 'alert', dataset: { panel: panel.id } });
    const say = () => line.replaceChildren(t('panel_failed', { panel: this.title(panel), error: why }));
    say();
    onLang(say);
    place.append(line);
  }

  title(item) {
    return (lang === 'en' ? item.title_en : item.title_zh) || item.title_zh || item.id || item.name;
  }

  // The deck in the right column: a tab for every application with a panel this user may see,
  // its pane under it; one application shows at a time (a wall has no room for seven).
  buildDeck(apps) {
    const tabs = el('nav', { class: 'app-tabs', id: 'app-tabs', role: 'tablist' });
    const panes = el('div', { class: 'app-panes' });
    this.deck = el('section', { class: 'panel app-deck', id: 'app-deck' }, tabs, panes);
    for (const app of apps) {
      const tab = el('button', {
        class: 'app-tab', type: 'button', role: 'tab', id: `tab-${app.name}`,
        dataset: { app: app.name }, 'aria-selected': 'false',
      }, this.title(app));
      const pane = el('div', { class: 'app-pane', id: `pane-${app.name}`, role: 'tabpanel', hidden: true, dataset: { app: app.name } });
      tab.addEventListener('click', () => this.show(app.name));
      tabs.append(tab);
      panes.append(pane);
      this.decks.set(app.name, { app, tab, pane, buttons: [], shows: [] });
    }
    onLang(() => { for (const { app, tab } of this.decks.values()) tab.textContent = this.title(app); });
    this.deck.hidden = !apps.length;
    this.shell.columns.right.classList.toggle('with-deck', apps.length > 0);
    this.shell.columns.right.append(this.deck);
  }

  // Shows one application's pane and tool-bar buttons, hides the others'.
  show(name) {
    if (!this.decks.has(name)) return false;
    this.shown = name;
    for (const [other, { tab, pane, buttons }] of this.decks) {
      const on = other === name;
      tab.classList.toggle('active', on);
      tab.setAttribute('aria-selected', String(on));
      pane.hidden = !on;
      for (const b of buttons) b.hidden = !on;
    }
    for (const fn of this.decks.get(name).shows) {
      try { fn(); } catch (err) { console.warn(`show ${name}:`, err && err.message); }
    }
    if (this.shell.hook) this.shell.hook.shownApp = name;
    return true;
  }

  // Every allowed panel of every application in GET /apps, in the order listed.
  async mountApps(applications) {
    const wanted = [];
    const withPanels = [];
    for (const app of applications || []) {
      const mine = (app.panels || []).filter((panel) => allowed(panel, this.shell.user));
      if (mine.length) withPanels.push(app);
      for (const panel of mine) wanted.push([app, panel]);
    }
    this.buildDeck(withPanels);
    if (withPanels.length) this.show(withPanels[0].name);
    // Fetched together, mounted in order: the tabs read the same on every wall.
    const loaded = await Promise.all(wanted.map(([app, panel]) => this.load(app, panel)));
    wanted.forEach(([app, panel], i) => {
      const { module, error } = loaded[i];
      if (module) this.mountModule(module, app, panel);
      else this.failed(app, panel, error);
    });
    applyStatic();
    if (this.shown) this.show(this.shown); // the first pane's charts measure themselves now
  }

  async load(app, panel) {
    const root = this.shell.staticRoot;
    try {
      const [module, strings] = await Promise.all([
        import(`${root}/${panel.module}`),
        panel.strings ? fetch(`${root}/${panel.strings}`).then((r) => {
          if (!r.ok) throw new Error(`${panel.strings}: HTTP ${r.status}`);
          return r.json();
        }) : null,
      ]);
      if (typeof module.mount !== 'function') throw new Error(`${panel.module} exports no mount(ctx)`);
      if (strings) addStrings(strings, `${app.name}:`);
      return { module };
    } catch (err) {
      return { error: err };
    }
  }

  // A live message for the panels that asked for its type; true when any did.
  emit(msg) {
    const fns = this.listeners.get(msg.type);
    if (!fns) return false;
    for (const fn of fns) {
      try { fn(msg); } catch (err) { console.error(`event ${msg.type}:`, err && err.message); }
    }
    return true;
  }

  reconnected() {
    for (const fn of this.reconnects) fn();
    for (const { made } of this.mounted) if (typeof made.refresh === 'function') made.refresh();
  }

  // A map click: the first panel that claims it has it. An application's panel sees clicks
  // while its pane is shown; one that throws has not taken the click.
  claimClick(ev) {
    return this.clickClaims.some(({ app, fn }) => {
      if (app && app !== this.shown) return false;
      try {
        return fn(ev.lngLat, ev) === true;
      } catch (err) {
        console.warn('map click:', err && err.message);
        return false;
      }
    });
  }
}

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
//   ctx.column('left'|'right') the DOM column to append a panel section to
//   ctx.overlay()             the box over the map that floating panels are appended to (it
//                             carries state classes such as `dispatching` for the page's CSS)
//   ctx.toolbarButton(id, labelKey, onClick)
//                             a button in the map tool bar (label from the dictionary); returned
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
// keeps it as window.__console[panel.id] for tests. A panel that fails to load or mount is
// reported on the console and leaves the rest of the wall working.

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
  }

  // The ctx one panel gets; everything it registers is kept here for the shell to call.
  context(app, panel) {
    const s = this.shell;
    // The panel's own word for a key, else the wall's (see addStrings).
    const own = (key) => (hasKey(`${app.name}:${key}`) ? `${app.name}:${key}` : key);
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
        return col;
      },
      overlay: () => s.overlay,
      toolbarButton: (id, labelKey, onClick) => {
        const key = own(labelKey);
        const button = el('button', { id, class: 'btn', type: 'button', i18n: key }, t(key));
        if (onClick) button.addEventListener('click', onClick);
        s.toolbar.append(button);
        return button;
      },
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
      claimMapClicks: (fn) => { this.clickClaims.push(fn); },
    };
  }

  // Mounts one panel module already imported (the platform's own panels come this way).
  mountModule(module, app, panel) {
    const made = module.mount(this.context(app, panel)) || {};
    this.mounted.push({ id: panel.id, made });
    if (this.shell.hook) this.shell.hook[panel.id] = made;
    return made;
  }

  // Every allowed panel of every application in GET /apps, in the order listed.
  async mountApps(applications) {
    const wanted = [];
    for (const app of applications || []) {
      for (const panel of app.panels || []) if (allowed(panel, this.shell.user)) wanted.push([app, panel]);
    }
    // Fetched together, mounted in order: the columns read the same on every wall.
    const loaded = await Promise.all(wanted.map(([app, panel]) => this.load(app, panel)));
    wanted.forEach(([app, panel], i) => {
      const module = loaded[i];
      if (!module) return;
      try {
        this.mountModule(module, app, panel);
      } catch (err) {
        console.error(`panel ${panel.id}: mount failed:`, err && err.message);
      }
    });
    applyStatic();
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
      return module;
    } catch (err) {
      console.error(`panel ${panel.id}: not loaded:`, err && err.message);
      return null;
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

  // A map click: the first panel that claims it has it.
  claimClick(ev) {
    return this.clickClaims.some((fn) => fn(ev.lngLat, ev) === true);
  }
}

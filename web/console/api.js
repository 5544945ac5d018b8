// Talking to the platform: the bearer token, JSON fetches, and the live WebSocket.

const STORE = 'changzhi.console.session';

export class SessionExpired extends Error {}

export const session = {
  token: null,
  user: null,
  expiresAt: 0,
  load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORE) || 'null');
      if (saved && saved.token) Object.assign(this, saved);
    } catch { /* a damaged entry is as good as none */ }
    return Boolean(this.token);
  },
  save() {
    sessionStorage.setItem(STORE, JSON.stringify({
      token: this.token, user: this.user, expiresAt: this.expiresAt,
    }));
  },
  clear() {
    this.token = null;
    this.user = null;
    this.expiresAt = 0;
    sessionStorage.removeItem(STORE);
  },
  hasRole(...roles) {
    const mine = (this.user && this.user.roles) || [];
    return mine.includes('admin') || roles.some((r) => mine.includes(r));
  },
};

export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const res = await fetch('/auth/token', { method: 'POST', body });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(typeof data.detail === 'string' ? data.detail : `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  session.token = data.access_token;
  session.user = data.user;
  session.expiresAt = Date.now() + data.expires_in * 1000;
  session.save();
  return data.user;
}

// The server's reason in words: a string as it is, a validation error list (FastAPI's 422)
// as its messages, each with the field it is about.
export function detailText(detail) {
  if (typeof detail === 'string') return detail;
  if (!Array.isArray(detail)) return '';
  return detail.map((d) => {
    const where = Array.isArray(d && d.loc) ? d.loc.filter((x) => x !== 'body').join('.') : '';
    const msg = d && typeof d.msg === 'string' ? d.msg : JSON.stringify(d);
    return where ? `${where}: ${msg}` : msg;
  }).join('; ');
}

// Every API call goes through here so an expired session lands on the log-in screen.
export async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) {
    const data = await res.json().catch(() => ({}));
    throw new SessionExpired(typeof data.detail === 'string' ? data.detail : 'unauthorized');
  }
  if (!res.ok) {
    const data = await res.json().catch(() => ({}));
    const err = new Error(detailText(data.detail) || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  if (res.status === 204) return null; // no content, whatever type the header names
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res;
}

// The live feed: reconnects by itself with jittered back-off and tells the page what it does.
export class LiveSocket {
  // format 'bin': positions of units that only moved come as binary frames, handed to
  // onMessage as { type: 'positions', buffer } (see web/routers/live.py).
  constructor({ onMessage, onStatus, onAuthFailed, kinds = null, format = 'json' }) {
    this.format = format;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onAuthFailed = onAuthFailed;
    this.kinds = kinds;
    this.ws = null;
    this.attempt = 0;
    this.closed = false;
    this.bytes = 0;
    this.messages = 0;
    this.everOpen = false;
    this.timer = null;
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const params = new URLSearchParams({ token: session.token || '' });
    if (this.kinds && this.kinds.length) params.set('kinds', this.kinds.join(','));
    if (this.format !== 'json') params.set('format', this.format);
    return `${proto}://${location.host}/ws/live?${params}`;
  }

  open() {
    this.closed = false;
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url());
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.onStatus(this.everOpen ? 'reconnecting' : 'connecting', this.attempt);
    ws.onopen = () => {
      const wasDown = this.everOpen;
      this.everOpen = true;
      this.attempt = 0;
      this.onStatus(wasDown ? 'restored' : 'open', 0);
    };
    ws.onmessage = (ev) => {
      this.messages += 1;
      if (typeof ev.data !== 'string') {
        this.bytes += ev.data.byteLength;
        this.onMessage({ type: 'positions', buffer: ev.data });
        return;
      }
      this.bytes += ev.data.length;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      if (ev.code === 4401) {
        this.onAuthFailed(ev.reason || 'unauthorized');
        return;
      }
      this.attempt += 1;
      const delay = Math.min(15000, 500 * 2 ** Math.min(this.attempt, 5)) * (0.7 + Math.random() * 0.6);
      this.onStatus('down', this.attempt, delay);
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  setKinds(kinds) {
    this.kinds = kinds;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: 'filter', kinds: kinds && kinds.length ? kinds : null }));
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'log out');
    this.ws = null;
  }
}

// The terminal page sandboxd serves at /: one xterm.js terminal on one
// session. Plain JS, no build step; xterm.js and its fit addon come from
// node_modules (npm install --prefix conf/page) as UMD globals.
//
// The session is kept in localStorage as {sessionId, expiresAt}, as the
// toolkata web client keeps it: a reload reconnects to it while it has more
// than a minute left. Every URL is relative to the page, so the page works
// behind a reverse proxy, under a path prefix too.
'use strict';

(() => {
  const STORE = 'sandboxd.session';
  const API = new URL('api/v1/', location.href);
  const MIN_LEFT_MS = 60 * 1000;    // a saved session with less left is not worth reconnecting to
  const CHUNK_BYTES = 400;          // input frames stay well under terminal.max_message_size (1 KiB)
  const MAX_RETRY_MS = 15 * 1000;
  const CONTROL = new Set(['connected', 'initComplete', 'output', 'error']);

  const statusEl = document.getElementById('status');
  const sessionEl = document.getElementById('session');
  const newButton = document.getElementById('new-session');
  const utf8 = new TextDecoder();

  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    lineHeight: 1.15,     // room for underscores under DejaVu Sans Mono
    scrollback: 5000,
    theme: { background: '#1e1e1e' },
  });
  const fitAddon = new FitAddon.FitAddon();
  term.loadAddon(fitAddon);
  term.open(document.getElementById('terminal'));
  fit();

  let session = null;   // {sessionId, expiresAt}
  let sock = null;      // the open (or opening) WebSocket
  let gen = 0;          // bumped by every connect and stop: events of older sockets are ignored
  let retries = 0;
  let retryTimer = null;
  let painted = false;  // the terminal shows this session's output (a reconnect repaints it)

  // For the console and the browser test.
  window.term = term;
  window.sandboxd = { term, get session() { return session; }, get socket() { return sock; } };

  function setStatus(text, level = 'info') {
    statusEl.textContent = text;
    statusEl.dataset.level = level;
  }

  function sentence(text) {
    text = String(text || '').trim();
    return /[.!?]$/.test(text) ? text : text + '.';
  }

  function duration(secs) {
    if (secs < 90) return `${secs} s`;
    if (secs < 5400) return `${Math.round(secs / 60)} min`;
    return `${Math.round(secs / 3600)} h`;
  }

  // localStorage may be unavailable (private modes, policies): then a reload starts afresh.
  function load() {
    try {
      const v = JSON.parse(localStorage.getItem(STORE));
      return v && typeof v.sessionId === 'string' ? v : null;
    } catch { return null; }
  }
  function save() { try { localStorage.setItem(STORE, JSON.stringify(session)); } catch { /* not kept */ } }
  function forget() { try { localStorage.removeItem(STORE); } catch { /* nothing kept */ } }
  function timeLeft(s) { return Date.parse(s.expiresAt) - Date.now(); }

  function use(s) {
    session = { sessionId: s.sessionId, expiresAt: s.expiresAt };
    save();
    const ends = new Date(session.expiresAt);
    sessionEl.textContent = `Session ${session.sessionId.slice(0, 8)}` +
      (isNaN(ends) ? '' : ` · ends by ${ends.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`);
    sessionEl.title = session.sessionId;
  }

  function drop() {
    session = null;
    forget();
    sessionEl.textContent = '';
    sessionEl.title = '';
  }

  // fetch() of the API: {status, ok, data, retryAfter}; throws when the server cannot be reached.
  async function api(method, path, body) {
    const res = await fetch(new URL(path, API), {
      method,
      cache: 'no-store',
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try { data = await res.json(); } catch { /* not JSON */ }
    const retryAfter = Number((data && data.retryAfter) || res.headers.get('Retry-After')) || 0;
    return { status: res.status, ok: res.ok, data, retryAfter };
  }

  function sessionPath(id) { return 'sessions/' + encodeURIComponent(id); }

  // A refused POST /sessions, said plainly: rate limit (429), capacity or outage (503), key (401).
  function refusal(r) {
    const message = (r.data && r.data.message) || `The server answered ${r.status}`;
    let text;
    if (r.status === 429) {
      text = `Rate limit: ${sentence(message)}` + (r.retryAfter ? ` Try again in ${duration(r.retryAfter)}.` : '');
    } else if (r.status === 503) {
      text = `Unavailable: ${sentence(message)}` + (r.retryAfter ? ` Try again in ${duration(r.retryAfter)}.` : '');
    } else if (r.status === 401) {
      text = 'This server needs an API key, which this page cannot send.';
    } else {
      text = `Could not start a session: ${sentence(message)}`;
    }
    return text + ' Press "New session" to try again.';
  }

  function retryLater(why, fn) {
    const delay = Math.min(1000 * 2 ** retries, MAX_RETRY_MS);
    retries++;
    setStatus(`${sentence(why)} Reconnecting in ${Math.round(delay / 1000)} s…`, 'warn');
    clearTimeout(retryTimer);
    retryTimer = setTimeout(fn, delay);
  }

  // On load: the saved session if it lives and has more than a minute left, else a new one.
  async function start() {
    const saved = load();
    if (saved && timeLeft(saved) > MIN_LEFT_MS) {
      setStatus('Reconnecting to your session…');
      let r;
      try {
        r = await api('GET', sessionPath(saved.sessionId));
      } catch {
        return retryLater('Cannot reach the server', start);
      }
      if (r.ok && r.data && r.data.status !== 'DESTROYING') {
        use({ sessionId: saved.sessionId, expiresAt: r.data.expiresAt || saved.expiresAt });
        return connect();
      }
      if (r.status >= 500) {
        return retryLater(`Cannot check your session: ${sentence((r.data && r.data.message) || `the server answered ${r.status}`)}`, start);
      }
    } else if (saved) {
      // Nearly over: end it now, so that it does not count against this address's quota.
      await api('DELETE', sessionPath(saved.sessionId)).catch(() => {});
    }
    forget();
    await create();
  }

  async function create() {
    setStatus('Starting a new session…');
    let r;
    try {
      r = await api('POST', 'sessions', { toolPair: 'page' });
    } catch {
      setStatus('Cannot reach the server. Press "New session" to try again.', 'error');
      return;
    }
    if (r.status === 201 && r.data && r.data.sessionId) {
      use(r.data);
      connect();
    } else {
      setStatus(refusal(r), 'error');
    }
  }

  // The terminal's WebSocket, on this page's own host (not the server's wsUrl: a proxy may be in between).
  function connect() {
    closeSocket();
    const my = ++gen;
    const url = new URL(sessionPath(session.sessionId) + '/ws', API);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = `?cols=${term.cols}&rows=${term.rows}`;
    setStatus(retries ? 'Reconnecting…' : 'Connecting…');
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    sock = ws;
    let lastError = null;
    ws.onopen = () => { if (my === gen) sendResize(); };
    ws.onmessage = (ev) => {
      if (my !== gen) return;
      const err = receive(ev.data);
      if (err) lastError = err;
    };
    ws.onclose = (ev) => {
      if (my !== gen) return;
      sock = null;
      closed(my, ev, lastError);
    };
  }

  // A JSON control message of the server, or null for terminal output.
  function control(text) {
    if (text.charCodeAt(0) !== 123 /* { */) return null;
    try {
      const m = JSON.parse(text);
      return m && typeof m === 'object' && CONTROL.has(m.type) ? m : null;
    } catch { return null; }
  }

  // Writes output to the terminal; returns the text of an error message.
  function receive(data) {
    if (typeof data !== 'string') {
      term.write(utf8.decode(data));   // binary: UTF-8, decoded frame by frame
      return null;
    }
    const m = control(data);
    if (!m) {
      term.write(data);
      return null;
    }
    switch (m.type) {
      case 'connected':
        if (painted) term.reset();     // the server repaints the recent output
        painted = true;
        retries = 0;
        setStatus('Connected', 'ok');
        term.focus();
        break;
      case 'initComplete':
        if (m.success === false) setStatus('Connected, but the session\'s setup commands failed', 'warn');
        break;
      case 'output':
        term.write(String(m.data ?? ''));
        break;
      case 'error':
        setStatus(sentence(m.message || 'Error'), 'error');
        return m.message || 'Error';
    }
    return null;
  }

  async function closed(my, ev, lastError) {
    if (ev.reason === 'Session opened in another terminal') {
      setStatus('This session was opened in another tab or window. Reload this page to use it here.', 'warn');
      return;
    }
    let r = null;
    try { r = await api('GET', sessionPath(session.sessionId)); } catch { /* unreachable: retried below */ }
    if (my !== gen) return;            // "New session" was pressed meanwhile
    if (!r) return retryLater('Connection lost: the server cannot be reached', connect);
    if (r.status === 404 || (r.data && r.data.status === 'DESTROYING')) {
      // Whether the container's exit or the session's end is seen first is a race: say what is known.
      const expired = (r.data && r.data.error === 'Expired') || timeLeft(session) < 5000;
      return ended(expired ? 'Your session has expired.'
        : 'Your session has ended: it expired, was closed, or its shell exited.');
    }
    retryLater(lastError ? `${sentence(lastError)} Connection closed` : 'Connection lost', connect);
  }

  function ended(why) {
    term.write('\r\n\x1b[2m[session ended]\x1b[0m\r\n');
    drop();
    painted = false;
    setStatus(why + ' Press "New session" to start a new one.', 'error');
  }

  function closeSocket() {
    gen++;
    clearTimeout(retryTimer);
    if (sock) {
      sock.close(1000);
      sock = null;
    }
  }

  // Starting or replacing a session: one at a time.
  async function busy(fn) {
    newButton.disabled = true;
    try { await fn(); } finally { newButton.disabled = false; }
  }

  async function newSession() {
    const old = session;
    closeSocket();
    retries = 0;
    drop();
    if (old) {
      setStatus('Closing the old session…');
      await api('DELETE', sessionPath(old.sessionId)).catch(() => {});
    }
    term.reset();
    painted = false;
    await create();
  }

  // Input frames of at most CHUNK_BYTES bytes of UTF-8, never splitting a character.
  function* pieces(text) {
    if (text.length * 3 <= CHUNK_BYTES) {
      yield text;
      return;
    }
    let part = '';
    let bytes = 0;
    for (const ch of text) {
      const c = ch.codePointAt(0);
      const n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
      if (bytes + n > CHUNK_BYTES) {
        yield part;
        part = '';
        bytes = 0;
      }
      part += ch;
      bytes += n;
    }
    if (part) yield part;
  }

  // Keystrokes go as raw text frames; text that would parse as a JSON message of the server's
  // (a pasted {"type":"resize",...}) goes wrapped in {"type":"input"} so that it stays input.
  function send(data) {
    if (!sock || sock.readyState !== WebSocket.OPEN) return;
    for (const part of pieces(data)) {
      let json = false;
      if (/^\s*\{/.test(part)) {
        try { json = JSON.parse(part) instanceof Object; } catch { /* plain text */ }
      }
      sock.send(json ? JSON.stringify({ type: 'input', data: part }) : part);
    }
  }

  function sendBinary(data) {
    if (sock && sock.readyState === WebSocket.OPEN) sock.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
  }

  function sendResize() {
    if (sock && sock.readyState === WebSocket.OPEN) {
      sock.send(JSON.stringify({ type: 'resize', rows: term.rows, cols: term.cols }));
    }
  }

  function fit() {
    try { fitAddon.fit(); } catch { /* not laid out yet */ }
  }

  let fitQueued = false;
  function queueFit() {
    if (fitQueued) return;
    fitQueued = true;
    requestAnimationFrame(() => { fitQueued = false; fit(); });
  }

  term.onData(send);
  term.onBinary(sendBinary);
  term.onResize(sendResize);
  window.addEventListener('resize', queueFit);
  if (window.ResizeObserver) new ResizeObserver(queueFit).observe(document.getElementById('terminal'));
  newButton.addEventListener('click', () => busy(newSession));

  // Say so a minute before the session's lifetime runs out.
  setInterval(() => {
    if (session && sock && statusEl.dataset.level === 'ok') {
      const left = timeLeft(session);
      if (left > 0 && left <= MIN_LEFT_MS) setStatus(`Connected. Your session ends in ${Math.ceil(left / 1000)} s.`, 'ok');
    }
  }, 5000);

  busy(start);
})();

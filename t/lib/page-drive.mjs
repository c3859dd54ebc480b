// Drives sandboxd's terminal page in headless Chromium (Debian's chromium through the
// npm package playwright-core from conf/page/node_modules), as a person would: types,
// pastes, reloads, resizes, presses "New session", and reads what the screen shows.
//
//   node t/lib/page-drive.mjs URL OUTDIR
//
// Prints one JSON line per checked behaviour, {"ok":bool,"name":...,"diag":...}, which
// t/50-page.t turns into TAP, and at the end {"sessions":[ids the page used]}. Every wait
// is bounded; the browser is always closed. SBX_PAGE_DIR names conf/page (where
// playwright-core is installed); CHROMIUM the browser (/usr/bin/chromium).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const [base, outdir] = process.argv.slice(2);
if (!base || !outdir) {
  console.error('usage: node page-drive.mjs URL OUTDIR');
  process.exit(2);
}
const pageDir = process.env.SBX_PAGE_DIR || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../conf/page');
const { chromium } = createRequire(path.join(pageDir, 'package.json'))('playwright-core');

const t0 = Date.now();
const sessions = new Set();
let failures = 0;
function report(ok, name, diag) {
  if (!ok) failures++;
  console.log(JSON.stringify({ ok: !!ok, name, ms: Date.now() - t0, ...(diag === undefined ? {} : { diag: String(diag) }) }));
  return ok;
}
// A check the rest depends on: past its failure the run stops (rather than wait out every later step).
function must(ok, name, diag) {
  if (!report(ok, name, diag)) throw new Error(`stopped: ${name} failed`);
  return ok;
}

// The whole run is bounded too, whatever hangs.
const deadline = setTimeout(() => {
  report(false, 'the browser run finished within 75 s');
  console.log(JSON.stringify({ sessions: [...sessions] }));
  process.exit(1);
}, 75_000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(method, p, body, headers = {}) {
  const res = await fetch(new URL('api/v1/' + p, base), {
    method,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: body && JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  let data = null;
  try { data = await res.json(); } catch { /* empty */ }
  return { status: res.status, data };
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sbx-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1000, height: 640 },
    timeout: 20_000,
  });
  await run(context.pages()[0] || (await context.newPage()));
} catch (e) {
  report(false, 'the browser run completed without an exception', e && e.stack || e);
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
  clearTimeout(deadline);
  console.log(JSON.stringify({ sessions: [...sessions] }));
}
process.exit(failures ? 1 : 0);

async function run(page) {
  page.setDefaultTimeout(10_000);
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Every frame the page sends, to check the sizes of a paste's frames.
  const sent = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(f.payload)));

  // What xterm has rendered: the rows of its DOM renderer, as a person sees them.
  const screen = () => page.evaluate(() => [...document.querySelectorAll('.xterm-rows > div')]
    .map((row) => row.textContent.replace(/\u00a0/g, ' ').trimEnd()).join('\n'));
  // The whole buffer, scrollback included.
  const buffer = () => page.evaluate(() => {
    const b = window.term.buffer.active;
    const out = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true));
    return out.join('\n');
  });
  const status = () => page.evaluate(() => {
    const s = document.getElementById('status');
    return { text: s.textContent, level: s.dataset.level, role: s.getAttribute('role') };
  });
  const stored = () => page.evaluate(() => JSON.parse(localStorage.getItem('sandboxd.session') || 'null'));
  async function until(what, ms = 10_000) {
    const end = Date.now() + ms;
    for (;;) {
      const v = await what();
      if (v || Date.now() > end) return v;
      await sleep(100);
    }
  }
  const waitScreen = (re, ms) => until(async () => { const s = await screen(); return re.test(s) ? s : null; }, ms);
  const waitStatus = (re, ms) => until(async () => { const s = await status(); return re.test(s.text) ? s : null; }, ms);
  // The prompt (PS1 '\w \$ ') at the cursor: the shell waits for a command.
  const waitPrompt = (ms) => until(() => page.evaluate(() => {
    const b = window.term && window.term.buffer.active;
    return !!b && /[$#] $/.test(b.getLine(b.baseY + b.cursorY).translateToString(false).slice(0, b.cursorX));
  }), ms);
  async function typeLine(text) {
    await page.keyboard.type(text, { delay: 5 });
    await page.keyboard.press('Enter');
  }
  async function lastMatch(re) {
    const all = [...(await screen()).matchAll(new RegExp(re.source, 'gm'))];
    return all.length ? all[all.length - 1] : null;
  }

  // 1. Load: a new session, connected, a prompt.
  await page.goto(base, { waitUntil: 'load' });
  const st = await waitStatus(/^Connected/, 15_000);
  must(st, 'the page loads, creates a session and says Connected', JSON.stringify(await status()));
  const first = await stored();
  if (first) sessions.add(first.sessionId);
  report(first && /^[A-Za-z0-9_-]{16,}$/.test(first.sessionId) && Date.parse(first.expiresAt) > Date.now(),
    'the session is kept in localStorage as {sessionId, expiresAt}', JSON.stringify(first));
  must(await waitPrompt(10_000), 'a shell prompt shows on the screen', await screen());
  report((await status()).role === 'status', 'the status line has role="status"');

  // 2. Type a command and read its output from the screen.
  await page.locator('.xterm-helper-textarea').focus();
  await typeLine('echo hello-from-chromium');
  must(await waitScreen(/^hello-from-chromium$/m), 'typing echo hello-from-chromium shows its output', await screen());
  await waitPrompt(5000);

  // 3. Paste: one onData event with the whole text, sent in frames under the 1 KiB input limit.
  const lines = Array.from({ length: 30 }, (_, i) => `pasted-line-${String(i).padStart(2, '0')} ${'x'.repeat(44)}`);
  const body = lines.join('\n') + '\n';
  const paste = `cat > /tmp/pasted.txt <<'EOF'\n${body}EOF\necho "pasted=$(wc -c < /tmp/pasted.txt)"\n`;
  await page.evaluate(() => { window.__data = []; window.term.onData((d) => window.__data.push(d)); });
  const sentBefore = sent.length;
  await page.evaluate((text) => {
    const dt = new DataTransfer();
    dt.setData('text/plain', text);
    document.querySelector('.xterm-helper-textarea')
      .dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, paste);
  const seen = await waitScreen(new RegExp(`^pasted=${body.length}$`, 'm'));
  report(seen, `pasting ${paste.length} bytes (a heredoc) runs it: the file has ${body.length} bytes`, await screen());
  // (Not counting the terminal's answers to the shell's cursor-position queries: ESC [ row ; col R.)
  const data = (await page.evaluate(() => window.__data)).filter((d) => !/^\x1b\[\d+;\d+R$/.test(d));
  report(data.length === 1 && data[0] === paste.replace(/\n/g, '\r'), 'the paste is one onData with the whole text',
    JSON.stringify(data.map((d) => d.length)));
  const frames = sent.slice(sentBefore).filter((p) => !/^\x1b\[\d+;\d+R$/.test(p)).map((p) => Buffer.byteLength(p));
  report(frames.length > 1 && frames.every((n) => n <= 1024) && frames.reduce((a, n) => a + n, 0) === paste.length,
    'and goes out whole in several frames of at most 1 KiB', JSON.stringify(frames));
  report(/^> pasted-line-29 x{44}$/m.test(seen || ''), 'the pasted text shows on the screen');
  await waitPrompt(5000);

  // 4. Shell state, then reload: the same session comes back with it.
  await typeLine('cd /tmp && touch page-marker && export PAGE_VAR=kept');
  await waitPrompt(5000);
  await page.reload({ waitUntil: 'load' });
  must(await waitStatus(/^Connected/, 15_000), 'after a reload the page connects again', JSON.stringify(await status()));
  const again = await stored();
  report(first && again && again.sessionId === first.sessionId, 'the reload reconnects to the same session (localStorage)',
    `${first && first.sessionId} -> ${again && again.sessionId}`);
  report(await until(async () => /^hello-from-chromium$/m.test(await buffer()), 5000), 'recent output is repainted after the reload',
    await buffer());
  await waitPrompt(5000);
  await page.locator('.xterm-helper-textarea').focus();
  await typeLine('echo "cwd=$(pwd) var=$PAGE_VAR files=$(ls /tmp | tr \'\\n\' \' \')"');
  report(await waitScreen(/^cwd=\/tmp var=kept files=.*page-marker/m), 'the shell state is kept: cwd, variable, /tmp/page-marker',
    await screen());
  await waitPrompt(5000);

  // 5. Resize: the window's size reaches the TTY.
  const size = () => page.evaluate(() => ({ rows: window.term.rows, cols: window.term.cols }));
  const sttyCmd = 'echo "size=$(stty size)="';
  await typeLine(sttyCmd);
  const before = await size();
  const m1 = await until(() => lastMatch(/^size=(\d+) (\d+)=$/));
  report(m1 && +m1[1] === before.rows && +m1[2] === before.cols, `stty size matches the terminal (${before.rows} ${before.cols})`,
    m1 && m1[0]);
  await waitPrompt(5000);
  await page.setViewportSize({ width: 760, height: 460 });
  const after = await until(async () => { const s = await size(); return s.cols !== before.cols && s.rows !== before.rows ? s : null; }, 5000);
  report(after, 'resizing the window refits the terminal', JSON.stringify({ before, after: await size() }));
  await sleep(200);
  await typeLine(sttyCmd);
  const m2 = await until(async () => { const m = await lastMatch(/^size=(\d+) (\d+)=$/); return m && after && +m[2] === after.cols ? m : null; }, 5000);
  report(m2 && after && +m2[1] === after.rows && +m2[2] === after.cols, `stty size changes with it (${after && after.rows} ${after && after.cols})`,
    m2 ? m2[0] : (await lastMatch(/^size=.*$/) || [''])[0]);
  await waitPrompt(5000);

  // Pasted text that parses as one of the server's JSON messages stays input: it reaches the shell.
  const sentBeforeJson = sent.length;
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.setData('text/plain', '{"type":"resize","rows":7,"cols":20}');
    document.querySelector('.xterm-helper-textarea')
      .dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  });
  await page.keyboard.press('Enter');
  report(await waitScreen(/\{type:resize,rows:7,cols:20\}: not found/), 'pasted JSON of a resize message reaches the shell as text',
    JSON.stringify(sent.slice(sentBeforeJson)) + '\n' + await screen());
  await waitPrompt(5000);
  await typeLine('echo "size-now=$(stty size)="');
  const m3 = await until(() => lastMatch(/^size-now=(\d+) (\d+)=$/));
  report(m3 && after && +m3[1] === after.rows && +m3[2] === after.cols, 'and does not resize the terminal', m3 && m3[0]);
  await waitPrompt(5000);

  // 6. The connection drops (closed from the browser side): the page says so and reconnects.
  await page.evaluate(() => window.sandboxd.socket.close(4000, 'test'));
  report(await waitStatus(/Connection lost.*Reconnecting/, 3000), 'a dropped connection is reported in the status line');
  must(await waitStatus(/^Connected/, 10_000), 'and the page reconnects by itself', JSON.stringify(await status()));
  await page.locator('.xterm-helper-textarea').focus();
  await waitPrompt(5000);
  await typeLine('echo back-$((40+2))');
  report(await waitScreen(/^back-42$/m), 'the reconnected terminal works');
  await waitPrompt(5000);

  // 7. A second tab on the same session takes the terminal over; the first one says so.
  const tab = await page.context().newPage();
  await tab.goto(base, { waitUntil: 'load' });
  const tabSt = await until(() => tab.evaluate(() => /^Connected/.test(document.getElementById('status').textContent)), 10_000);
  const tabId = await tab.evaluate(() => JSON.parse(localStorage.getItem('sandboxd.session') || 'null'));
  report(tabSt && tabId && tabId.sessionId === first.sessionId, 'a second tab opens the same session');
  report(await waitStatus(/opened in another tab/, 10_000), 'and the first tab says the session was opened elsewhere (no reconnect fight)',
    JSON.stringify(await status()));
  await tab.close();
  await page.reload({ waitUntil: 'load' });
  must(await waitStatus(/^Connected/, 10_000), 'a reload takes it back', JSON.stringify(await status()));
  await page.locator('.xterm-helper-textarea').focus();
  await waitPrompt(5000);

  fs.mkdirSync(outdir, { recursive: true });
  await page.screenshot({ path: path.join(outdir, 'page.png') });
  report(fs.statSync(path.join(outdir, 'page.png')).size > 1000, `screenshot ${path.join(outdir, 'page.png')}`);

  // 8. "New session": the old one is deleted, a new one starts with a fresh shell.
  await page.click('#new-session');
  const fresh = await until(async () => {
    const s = await stored();
    return s && s.sessionId !== first.sessionId && /^Connected/.test((await status()).text) ? s : null;
  }, 15_000);
  if (fresh) sessions.add(fresh.sessionId);
  must(fresh, 'New session starts another session', JSON.stringify(await stored()));
  report((await api('GET', 'sessions/' + first.sessionId)).status === 404, 'and the old one is gone (404)');
  report(await waitPrompt(10_000) && !/hello-from-chromium/.test(await screen()), 'with a clean screen and a prompt', await screen());

  // 9. A saved session with less than a minute left is not reconnected to: it is ended, a new one starts.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem('sandboxd.session'));
    s.expiresAt = new Date(Date.now() + 30_000).toISOString();
    localStorage.setItem('sandboxd.session', JSON.stringify(s));
  });
  await page.reload({ waitUntil: 'load' });
  const renewed = await until(async () => {
    const s = await stored();
    return s && fresh && s.sessionId !== fresh.sessionId && /^Connected/.test((await status()).text) ? s : null;
  }, 15_000);
  if (renewed) sessions.add(renewed.sessionId);
  report(renewed, 'a saved session with under a minute left is replaced by a new one on load', JSON.stringify(await stored()));
  report(fresh && (await api('GET', 'sessions/' + fresh.sessionId)).status === 404, 'and the old one is ended');

  // 10. The session ends under the page (deleted here, as when it expires): a clear message.
  if (renewed) await api('DELETE', 'sessions/' + renewed.sessionId);
  const ended = await waitStatus(/session has ended/i, 10_000);
  report(ended && ended.level === 'error', 'a session that ends shows "Your session has ended" in the status line',
    JSON.stringify(await status()));
  report((await stored()) === null, 'and is forgotten by localStorage');

  // 11. Capacity (sessions.capacity 2, filled from two other addresses): the page shows the 503's message.
  const others = [];
  for (const ip of ['192.0.2.1', '192.0.2.2']) {
    const r = await api('POST', 'sessions', { toolPair: 'test' }, { 'X-Forwarded-For': ip });
    if (r.data && r.data.sessionId) { others.push(r.data.sessionId); sessions.add(r.data.sessionId); }
  }
  await page.click('#new-session');
  const full = await waitStatus(/^Unavailable: The sandbox service is at capacity/, 10_000);
  report(full && full.level === 'error', 'a full server: the status line shows the capacity message', JSON.stringify(await status()));

  // 12. Rate limit (sessions.max_per_ip 1, taken by another client of this address): the 429's message.
  for (const id of others) await api('DELETE', 'sessions/' + id);
  const mine = await api('POST', 'sessions', { toolPair: 'test' });
  if (mine.data && mine.data.sessionId) sessions.add(mine.data.sessionId);
  await page.click('#new-session');
  const limited = await waitStatus(/^Rate limit: Too many active sessions/, 10_000);
  report(limited && limited.level === 'error', 'over the per-address limit: the status line shows the rate-limit message',
    JSON.stringify(await status()));
  await page.screenshot({ path: path.join(outdir, 'page-refused.png') });
  if (mine.data && mine.data.sessionId) await api('DELETE', 'sessions/' + mine.data.sessionId);

  report(pageErrors.length === 0, 'no JavaScript error on the page', pageErrors.join('\n'));
}

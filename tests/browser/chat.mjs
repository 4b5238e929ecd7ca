// End-to-end test of `rfc6455 serve` and its page in real headless Chromium.
//
//   RFC6455_BIN=target/debug/rfc6455 node tests/browser/chat.mjs
//
// Starts the server itself (`serve --listen 127.0.0.1:0`, the address read from its first
// stdout line), drives pages in separate browser contexts, and stops the server whatever
// happens. Every wait is bounded; a failure prints what it waited for, the pages' console
// output and the server's output. The last line is `N passed, M failed`.
// One case runs a second server over https:// and wss:// with a certificate from a test CA
// made at run time (openssl CLI; see makeCerts). Screenshots go to tests/browser/out/
// (gitignored). CHAT_VERBOSE=1 prints the pages' console and the server's output at the end.

import { chromium } from 'playwright-core';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, 'out');
const BIN = resolve(process.env.RFC6455_BIN || join(HERE, '../../target/debug/rfc6455'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 10_000;
const RECONNECT_WAIT_MS = 20_000; // backoff tops out at 10 s ± 30 %
const RUN = Date.now().toString(36); // makes this run's message texts unique

// ---------- the server ----------

const server = { proc: null, url: null, listen: null, output: [] };
const servers = new Set(); // every server started, to kill whatever happens

function startServer(listen = '127.0.0.1:0', extra = [], s = server) {
  return new Promise((resolveStart, rejectStart) => {
    const proc = spawn(BIN, ['serve', '--listen', listen, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    servers.add(proc);
    s.proc = proc;
    let first = null;
    let buf = '';
    const timer = setTimeout(() => {
      rejectStart(new Error(`server printed no 'listening on http(s)://HOST:PORT/' line within ${WAIT_MS / 1000} s`));
    }, WAIT_MS);
    proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        s.output.push(`stdout: ${line}`);
        if (first === null) {
          first = line;
          clearTimeout(timer);
          const m = /(https?):\/\/([^/\s]+)\//.exec(line);
          if (!m) return rejectStart(new Error(`server's first line has no http(s)://HOST:PORT/: ${line}`));
          s.listen = m[2];
          s.url = `${m[1]}://${m[2]}/`;
          resolveStart(s.url);
        }
      }
    });
    proc.stderr.on('data', (d) => {
      for (const line of String(d).split('\n')) if (line) s.output.push(`stderr: ${line}`);
    });
    proc.on('error', (e) => { clearTimeout(timer); rejectStart(new Error(`cannot run ${BIN}: ${e.message}`)); });
    proc.on('exit', (code, signal) => {
      s.output.push(`exited: code ${code} signal ${signal}`);
      if (first === null) { clearTimeout(timer); rejectStart(new Error(`server exited (code ${code}, signal ${signal}) before saying where it listens`)); }
    });
  });
}

async function stopServer(s = server) {
  const proc = s.proc;
  s.proc = null;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function killServerNow() {
  for (const proc of servers) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}
process.on('exit', killServerNow);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killServerNow(); process.exit(130); });

// ---------- a test CA and a server certificate (openssl CLI), for https:// and wss:// ----------

// Made fresh each run in a temporary directory (removed at exit): a CA, and a certificate for
// 127.0.0.1 signed by it. Chromium is told to trust that CA's key only
// (--ignore-certificate-errors-spki-list with the SHA-256 of the CA's SubjectPublicKeyInfo,
// which the server sends in its chain): headless Chromium has no command-line way to add a
// root to its store (that needs NSS's certutil), and this trusts one key, not every
// certificate as --ignore-certificate-errors would.
function makeCerts() {
  const dir = mkdtempSync(join(tmpdir(), 'rfc6455-chat-tls-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const f = (name) => join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=rfc6455 chat.mjs test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
    '-keyout', f('server.key'), '-out', f('server.csr'));
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n'
    + 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', f('server.ext'), '-out', f('server.pem'));
  writeFileSync(f('chain.pem'), readFileSync(f('server.pem'), 'utf8') + readFileSync(f('ca.pem'), 'utf8'));
  const spki = openssl('x509', '-in', f('ca.pem'), '-noout', '-pubkey');
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'DER'], { input: spki });
  return { cert: f('chain.pem'), key: f('server.key'), caSpki: createHash('sha256').update(der).digest('base64') };
}

// ---------- pages ----------

let browser;
const users = new Map(); // nick -> {context, page}
const consoleLines = [];
const pageErrors = [];
const sockets = []; // '[nick] URL' of every WebSocket a page opened

async function user(nick, room = 'lobby', at = server) {
  if (at === server && users.has(nick)) return users.get(nick).page;
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`[${nick}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => { pageErrors.push(`[${nick}] ${e.message}`); consoleLines.push(`[${nick}] pageerror: ${e.message}`); });
  page.on('websocket', (ws) => sockets.push(`[${nick}] ${ws.url()}`));
  if (at === server) users.set(nick, { context, page });
  await page.goto(`${at.url}?nick=${encodeURIComponent(nick)}&room=${encodeURIComponent(room)}`, { timeout: WAIT_MS });
  await until(`${nick} online`, () => page.evaluate(() => document.querySelector('#status').dataset.state === 'online'));
  return page;
}

// Polls `check` until it returns a truthy value; fails after `ms` saying what it waited for.
async function until(what, check, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms / 1000} s waiting for: ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// The messages shown in one pane: '[data-room="lobby"]' or '[data-dm="alice"]'.
function messages(page, pane) {
  return page.$$eval(`#messages ${pane} .msg`, (els) => els.map((e) => ({
    seq: e.dataset.seq === undefined ? null : Number(e.dataset.seq),
    epoch: e.dataset.epoch === undefined ? null : Number(e.dataset.epoch),
    from: e.querySelector('.from').textContent,
    text: e.querySelector('.text').textContent,
    private: e.classList.contains('private'),
  })));
}

const members = (page) => page.$$eval('#members [data-nick]', (els) => els.map((e) => e.dataset.nick));
const state = (page) => page.evaluate(() => document.querySelector('#status').dataset.state);

async function say(page, text) {
  await page.locator('#input').fill(text, { timeout: WAIT_MS });
  await page.locator('#input').press('Enter', { timeout: WAIT_MS });
}

function assert(ok, what) {
  if (!ok) throw new Error(`assertion failed: ${what}`);
}

async function seesText(page, pane, text) {
  return (await messages(page, pane)).some((m) => m.text === text);
}

// ---------- the cases ----------

const cases = [];
const test = (name, fn) => cases.push({ name, fn });

test('serves the page, app.js and style.css', async () => {
  for (const [path, type] of [['', 'text/html'], ['app.js', 'javascript'], ['style.css', 'text/css']]) {
    const res = await fetch(server.url + path, { signal: AbortSignal.timeout(WAIT_MS) });
    assert(res.status === 200, `GET /${path} is 200 (got ${res.status})`);
    const ct = res.headers.get('content-type') || '';
    assert(ct.includes(type), `GET /${path} has a content-type with ${type} (got '${ct}')`);
    assert((await res.text()).length > 100, `GET /${path} has a body`);
  }
});

test('two users see each other join and chat both ways', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  await until('alice sees bob in the member list', async () => (await members(alice)).includes('bob'));
  await until('bob sees alice in the member list', async () => (await members(bob)).includes('alice'));
  assert(await alice.evaluate(() => document.activeElement && document.activeElement.id === 'input'),
    'the message input has focus after joining');
  await until('the room list shows lobby with 2 members', () => alice.evaluate(() => {
    const li = document.querySelector('#rooms [data-room="lobby"]');
    return li && li.classList.contains('joined') && li.querySelector('.count').textContent === '2';
  }));

  const hello = `hello bob ${RUN}`;
  await alice.locator('#input').pressSequentially(hello, { timeout: WAIT_MS });
  await alice.keyboard.press('Enter');
  await until(`bob sees '${hello}'`, () => seesText(bob, '[data-room="lobby"]', hello));
  const got = (await messages(bob, '[data-room="lobby"]')).find((m) => m.text === hello);
  assert(got.from === 'alice', `bob sees the sender as alice (got '${got.from}')`);
  assert(await alice.locator('#input').inputValue() === '', 'the input is cleared after sending');

  const back = `hi alice ${RUN}`;
  await say(bob, back);
  await until(`alice sees '${back}'`, () => seesText(alice, '[data-room="lobby"]', back));
  const reply = (await messages(alice, '[data-room="lobby"]')).find((m) => m.text === back);
  assert(reply.from === 'bob', `alice sees the sender as bob (got '${reply.from}')`);

  const html = `<img src=x onerror="window.__pwned=1"><b>bold?</b> & ${RUN}`;
  await say(alice, html);
  await until('bob sees the HTML as text', () => seesText(bob, '[data-room="lobby"]', html));
  assert(await bob.evaluate(() => !window.__pwned && !document.querySelector('#messages img, #messages .text b')),
    'user text is not parsed as HTML');
});

test('a private message reaches bob, marked private, and not carol', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const carol = await user('carol');
  await until('alice sees carol in the member list', async () => (await members(alice)).includes('carol'));
  await alice.locator('#members [data-nick="bob"]').click({ timeout: WAIT_MS });
  await until('alice has a private pane with bob', () => alice.evaluate(() => {
    const p = document.querySelector('#messages [data-dm="bob"]');
    return p && !p.hidden && document.activeElement.id === 'input';
  }));
  const secret = `just between us ${RUN}`;
  await say(alice, secret);
  await until('bob gets the private message', () => seesText(bob, '[data-dm="alice"]', secret));
  const got = (await messages(bob, '[data-dm="alice"]')).find((m) => m.text === secret);
  assert(got.private && got.from === 'alice', `bob's copy is marked private and from alice (${JSON.stringify(got)})`);
  assert(await bob.evaluate(() => {
    const li = document.querySelector('#dms [data-dm="alice"]');
    return !!li && li.querySelector('.unread') !== null;
  }), 'bob sees an unread private conversation with alice in the sidebar');
  await until('alice sees her own copy', () => seesText(alice, '[data-dm="bob"]', secret));
  // carol saw everything alice and bob said in the room (as a check that she is listening)...
  const after = `after the secret ${RUN}`;
  await say(bob, after);
  await until('carol sees a room message sent after the private one', () => seesText(carol, '[data-room="lobby"]', after));
  // ...and nothing private.
  const leaked = await carol.evaluate((s) => [...document.querySelectorAll('#messages .msg')].filter((m) => m.classList.contains('private') || m.textContent.includes(s)).length, secret);
  assert(leaked === 0, `carol sees no private message (saw ${leaked})`);
  assert(await carol.evaluate(() => document.querySelectorAll('#dms [data-dm]').length === 0), 'carol has no private conversation');
  await alice.locator('#rooms [data-room="lobby"]').click({ timeout: WAIT_MS });
  await bob.locator('#rooms [data-room="lobby"]').click({ timeout: WAIT_MS });
});

test('a first visit asks for a nick and remembers it', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await context.newPage();
    page.on('console', (m) => consoleLines.push(`[dave] ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => pageErrors.push(`[dave] ${e.message}`));
    await page.goto(server.url, { timeout: WAIT_MS });
    await page.locator('#login').waitFor({ state: 'visible', timeout: WAIT_MS });
    await page.locator('#nick').fill('dave');
    await page.locator('#nick').press('Enter');
    await until('dave is online', async () => (await state(page)) === 'online');
    await until('dave is in lobby (the default room)', async () => (await members(page)).includes('dave'));
    assert(await page.evaluate(() => document.querySelector('#me-nick').textContent === 'dave'), 'the page says who you are');
    await page.goto(server.url, { timeout: WAIT_MS });
    await until('after a reload dave is online again without being asked', async () => (await state(page)) === 'online');
    assert(!(await page.locator('#login').isVisible()), 'no nick prompt the second time');
  } finally {
    await context.close();
  }
});

test('joining and leaving a room from the sidebar', async () => {
  const carol = await user('carol');
  const alice = await user('alice');
  const room = `dev-${RUN}`;
  await carol.locator('#join-room').fill(room);
  await carol.locator('#join-room').press('Enter');
  await until(`carol shows #${room}`, () => carol.evaluate((r) => {
    const p = document.querySelector(`#messages [data-room="${r}"]`);
    return p && !p.hidden && document.activeElement.id === 'input'
      && document.querySelector(`#rooms [data-room="${r}"]`).classList.contains('joined');
  }, room));
  await until(`alice's room list shows #${room} with 1 member (refreshed every 5 s)`, () => alice.evaluate((r) => {
    const li = document.querySelector(`#rooms [data-room="${r}"]`);
    return li && !li.classList.contains('joined') && li.querySelector('.count').textContent === '1';
  }, room), 8000);
  await alice.locator(`#rooms [data-room="${room}"]`).click({ timeout: WAIT_MS });
  await until(`carol sees alice join #${room}`, async () => (await members(carol)).includes('alice'));
  await carol.locator('#leave').click({ timeout: WAIT_MS });
  await until(`carol left #${room} and shows lobby`, () => carol.evaluate((r) => !document.querySelector(`#messages [data-room="${r}"]`)
    && !document.querySelector('#messages [data-room="lobby"]').hidden, room));
  await until(`alice sees carol leave #${room}`, async () => !(await members(alice)).includes('carol'));
  await alice.locator('#leave').click({ timeout: WAIT_MS });
  await until('alice is back in lobby', () => alice.evaluate(() => !document.querySelector('#messages [data-room="lobby"]').hidden));
});

test('messages sent while bob is away are shown once, in order, after he reconnects', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const before = await messages(bob, '[data-room="lobby"]');
  await bob.evaluate(() => window.__chat.dropConnection({ reconnect: false }));
  await until('bob is offline', async () => (await state(bob)) === 'offline');
  await until('alice sees bob leave', async () => !(await members(alice)).includes('bob'));

  const missed = [1, 2, 3].map((i) => `missed ${i} ${RUN}`);
  for (const text of missed) await say(alice, text);
  await until('alice sees the 3 messages', async () => {
    const mine = await messages(alice, '[data-room="lobby"]');
    return missed.every((t) => mine.some((m) => m.text === t));
  });

  await bob.evaluate(() => window.__chat.reconnect());
  await until('bob is back online', async () => (await state(bob)) === 'online');
  await until('bob sees the 3 missed messages', async () => {
    const seen = await messages(bob, '[data-room="lobby"]');
    return missed.every((t) => seen.some((m) => m.text === t));
  });
  await until('alice sees bob again', async () => (await members(alice)).includes('bob'));
  await new Promise((r) => setTimeout(r, 500)); // let any late duplicate arrive

  const after = await messages(bob, '[data-room="lobby"]');
  for (const t of missed) {
    const n = after.filter((m) => m.text === t).length;
    assert(n === 1, `'${t}' is shown exactly once (shown ${n} times)`);
  }
  const idx = missed.map((t) => after.findIndex((m) => m.text === t));
  assert(idx[0] < idx[1] && idx[1] < idx[2], `the missed messages are in order (positions ${idx})`);
  const seqs = after.map((m) => m.seq);
  for (let i = 1; i < seqs.length; i++) {
    assert(seqs[i] > seqs[i - 1], `data-seq strictly increases with no duplicate (${seqs.join(',')})`);
  }
  assert(after.length === before.length + 3, `bob's pane grew by exactly 3 (from ${before.length} to ${after.length})`);
  assert(await bob.evaluate(() => !document.querySelector('#messages [data-room="lobby"] .missing')),
    'no "messages may be missing" notice when the server recovered everything');
});

test('a page told that messages were dropped (recovered: false) says some may be missing', async () => {
  const small = { proc: null, url: null, listen: null, output: server.output }; // one log for failures
  const pages = [];
  try {
    await startServer('127.0.0.1:0', ['--history', '2'], small);
    const alice = await user('alice', 'gap', small);
    const bob = await user('bob', 'gap', small);
    pages.push(alice, bob);
    await until('alice sees bob in gap', async () => (await members(alice)).includes('bob'));
    await say(alice, 'before');
    await until('bob sees the first message', () => seesText(bob, '[data-room="gap"]', 'before'));
    await bob.evaluate(() => window.__chat.dropConnection({ reconnect: false }));
    await until('bob is offline', async () => (await state(bob)) === 'offline');
    const sent = ['g1', 'g2', 'g3', 'g4'];
    for (const t of sent) await say(alice, t);
    await until('alice sees g4', () => seesText(alice, '[data-room="gap"]', 'g4'));
    await bob.evaluate(() => window.__chat.reconnect());
    await until('bob sees the 2 messages still held (g3, g4)', async () => {
      const got = (await messages(bob, '[data-room="gap"]')).map((m) => m.text);
      return got.includes('g3') && got.includes('g4');
    });
    assert(await bob.evaluate(() => !!document.querySelector('#messages [data-room="gap"] .sys.missing')),
      'bob sees a "some messages may be missing" notice');
    const got = await messages(bob, '[data-room="gap"]');
    assert(JSON.stringify(got.map((m) => m.text)) === JSON.stringify(['before', 'g3', 'g4']),
      `bob shows before, g3, g4 (got ${got.map((m) => m.text)})`);
    const seqs = got.map((m) => m.seq);
    assert(seqs.every((q, i) => i === 0 || q > seqs[i - 1]), `seqs increase (${seqs})`);
  } finally {
    for (const p of pages) await p.context().close().catch(() => {});
    await stopServer(small);
  }
});

test('over https:// and wss://: two pages load the page from a TLS server and chat', async () => {
  const secure = { proc: null, url: null, listen: null, output: server.output };
  const pages = [];
  try {
    await startServer('127.0.0.1:0', ['--tls-cert', tls.cert, '--tls-key', tls.key], secure);
    assert(secure.url.startsWith('https://'), `the TLS server says https:// (got ${secure.url})`);
    const alice = await user('alice', 'tls', secure);
    const bob = await user('bob', 'tls', secure);
    pages.push(alice, bob);
    assert(alice.url().startsWith(secure.url), `alice's page is ${secure.url} (got ${alice.url()})`);
    const wss = `wss://${secure.listen}/`;
    for (const nick of ['alice', 'bob']) {
      assert(sockets.some((s) => s.startsWith(`[${nick}] ${wss}`)),
        `${nick}'s page opened a WebSocket at ${wss} (opened: ${sockets.join(' | ')})`);
    }
    await until('alice sees bob in tls', async () => (await members(alice)).includes('bob'));
    const hello = `hello over TLS ${RUN}`;
    await say(alice, hello);
    await until(`bob sees '${hello}'`, () => seesText(bob, '[data-room="tls"]', hello));
    const back = `and back ${RUN}`;
    await say(bob, back);
    await until(`alice sees '${back}'`, () => seesText(alice, '[data-room="tls"]', back));
  } finally {
    for (const p of pages) await p.context().close().catch(() => {});
    await stopServer(secure);
  }
});

test('screenshots: desktop and phone', async () => {
  const bob = await user('bob');
  mkdirSync(OUT, { recursive: true });
  await bob.evaluate(() => document.activeElement && document.activeElement.blur());
  const desktop = join(OUT, 'chat.png');
  await bob.screenshot({ path: desktop, timeout: WAIT_MS });
  console.log(`# screenshot: ${desktop}`);

  await bob.setViewportSize({ width: 390, height: 844 });
  await until('the sidebar collapses on a phone-sized screen', () => bob.evaluate(() => {
    const r = document.querySelector('#side').getBoundingClientRect();
    return r.right <= 0 || r.width === 0;
  }));
  assert(await bob.locator('#input').isVisible(), 'the message input is visible on a phone');
  assert(await bob.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
    'no horizontal scrolling on a phone');
  const phone = join(OUT, 'phone.png');
  await bob.screenshot({ path: phone, timeout: WAIT_MS });
  console.log(`# screenshot: ${phone}`);
  await bob.locator('#menu').click({ timeout: WAIT_MS });
  await until('the menu opens the rooms drawer', () => bob.evaluate(() => document.querySelector('#side').getBoundingClientRect().left >= 0));
  const drawer = join(OUT, 'phone-rooms.png');
  await new Promise((r) => setTimeout(r, 300)); // the slide-in transition
  await bob.screenshot({ path: drawer, timeout: WAIT_MS });
  console.log(`# screenshot: ${drawer}`);
  await bob.locator('#scrim').click({ timeout: WAIT_MS, position: { x: 370, y: 400 } });
  await bob.setViewportSize({ width: 1280, height: 800 });
});

test('both pages reconnect after a server restart, rejoin, and chat again', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  const listen = server.listen;
  await stopServer();
  await until('both pages see the server go away', async () => (await state(alice)) !== 'online' && (await state(bob)) !== 'online');
  const status = await bob.locator('#status').textContent();
  assert(/reconnecting in \d+ s/.test(status), `bob's status says when it reconnects (got '${status}')`);
  await until(`the server starts again on ${listen}`, async () => {
    try { await startServer(listen); return true; } catch (e) { await stopServer(); throw e; }
  });
  await until('alice is online again', async () => (await state(alice)) === 'online', RECONNECT_WAIT_MS);
  await until('bob is online again', async () => (await state(bob)) === 'online', RECONNECT_WAIT_MS);
  await until('alice sees bob in lobby again', async () => (await members(alice)).includes('bob'));
  await until('bob sees alice in lobby again', async () => (await members(bob)).includes('alice'));
  const text = `after the restart ${RUN}`;
  await say(alice, text);
  await until(`bob sees '${text}'`, () => seesText(bob, '[data-room="lobby"]', text));
  await new Promise((r) => setTimeout(r, 300));
  const n = (await messages(bob, '[data-room="lobby"]')).filter((m) => m.text === text).length;
  assert(n === 1, `'${text}' is shown once (shown ${n} times)`);
});

test('no JavaScript errors in any page', async () => {
  assert(pageErrors.length === 0, `page errors: ${pageErrors.join(' | ')}`);
});

// ---------- the run ----------

let passed = 0;
let failed = 0;
let tls;
try {
  tls = makeCerts();
  await startServer();
  console.log(`# server: ${BIN} at ${server.url}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--ignore-certificate-errors-spki-list=${tls.caSpki}`],
    timeout: WAIT_MS * 3,
  });
  for (const c of cases) {
    const t0 = Date.now();
    try {
      await c.fn();
      passed++;
      console.log(`ok - ${c.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`not ok - ${c.name}\n  ${e.message}`);
      console.log('  --- console of the pages (last 60 lines) ---');
      for (const l of consoleLines.slice(-60)) console.log(`  ${l}`);
      console.log('  --- server output (last 30 lines) ---');
      for (const l of server.output.slice(-30)) console.log(`  ${l}`);
    }
  }
} catch (e) {
  failed++;
  console.log(`not ok - setup\n  ${e.message}`);
  for (const l of server.output.slice(-30)) console.log(`  ${l}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await stopServer().catch(() => killServerNow());
}
if (process.env.CHAT_VERBOSE) {
  console.log('# console of the pages:');
  for (const l of consoleLines) console.log(`#   ${l}`);
  console.log('# server output:');
  for (const l of server.output) console.log(`#   ${l}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

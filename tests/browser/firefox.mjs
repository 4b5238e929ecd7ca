// End-to-end test of `rfc6455 serve` and its page in real headless Firefox (Debian's
// firefox-esr), driven over WebDriver BiDi (built into Firefox) by puppeteer-core.
//
//   RFC6455_BIN=target/debug/rfc6455 node tests/browser/firefox.mjs
//
// Starts the server itself (`serve --listen 127.0.0.1:0`, the address read from its first
// stdout line), opens alice and bob in two browser contexts (separate storage, like two
// people), and stops the server and Firefox whatever happens. Every wait is bounded (10 s); a
// failure prints what it waited for, the pages' console and the server's output. The last line
// is `N passed, M failed`. The screenshot goes to tests/browser/out/firefox.png (gitignored).
// FIREFOX=/path/to/firefox overrides the browser; FIREFOX_VERBOSE=1 prints the pages' console
// and the server's output at the end.

import puppeteer from 'puppeteer-core';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, 'out');
const BIN = resolve(process.env.RFC6455_BIN || join(HERE, '../../target/debug/rfc6455'));
const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const WAIT_MS = 10_000;
const RUN = Date.now().toString(36); // makes this run's message texts unique

// ---------- the server ----------

const server = { proc: null, url: null, output: [] };

function startServer() {
  return new Promise((resolveStart, rejectStart) => {
    const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.proc = proc;
    let first = null;
    let buf = '';
    const timer = setTimeout(() => {
      rejectStart(new Error(`server printed no 'listening on http://HOST:PORT/' line within ${WAIT_MS / 1000} s`));
    }, WAIT_MS);
    proc.stdout.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        server.output.push(`stdout: ${line}`);
        if (first === null) {
          first = line;
          clearTimeout(timer);
          const m = /http:\/\/([^/\s]+)\//.exec(line);
          if (!m) return rejectStart(new Error(`server's first line has no http://HOST:PORT/: ${line}`));
          server.url = `http://${m[1]}/`;
          resolveStart(server.url);
        }
      }
    });
    proc.stderr.on('data', (d) => {
      for (const line of String(d).split('\n')) if (line) server.output.push(`stderr: ${line}`);
    });
    proc.on('error', (e) => { clearTimeout(timer); rejectStart(new Error(`cannot run ${BIN}: ${e.message}`)); });
    proc.on('exit', (code, signal) => {
      server.output.push(`exited: code ${code} signal ${signal}`);
      if (first === null) { clearTimeout(timer); rejectStart(new Error(`server exited (code ${code}, signal ${signal}) before saying where it listens`)); }
    });
  });
}

async function stopServer() {
  const proc = server.proc;
  server.proc = null;
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

// ---------- the browser ----------

let browser = null;
let browserProc = null; // Firefox's process, killed on exit if a clean close did not happen

function alive(proc) {
  return !!proc && proc.exitCode === null && proc.signalCode === null;
}

function killAllNow() {
  if (alive(server.proc)) server.proc.kill('SIGKILL');
  if (alive(browserProc)) browserProc.kill('SIGKILL');
}
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAllNow(); process.exit(130); });

// Rejects when `promise` has not settled within `ms`, naming what it waited for.
function bounded(what, promise, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`timed out after ${ms / 1000} s waiting for: ${what}`), { bound: true })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Polls `check` until it returns a truthy value; fails after `ms` saying what it waited for.
async function until(what, check, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await bounded(what, check(), Math.max(1, deadline - Date.now()));
      if (v) return v;
    } catch (e) {
      if (!e.bound) last = e; // a check cut short by the deadline says nothing new
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms / 1000} s waiting for: ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const users = new Map(); // nick -> page
const consoleLines = [];
const pageErrors = [];

async function user(nick, room = 'lobby') {
  if (users.has(nick)) return users.get(nick);
  const context = await bounded(`a browser context for ${nick}`, browser.createBrowserContext());
  const page = await bounded(`a page for ${nick}`, context.newPage());
  page.on('console', (m) => consoleLines.push(`[${nick}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => { pageErrors.push(`[${nick}] ${e.message}`); consoleLines.push(`[${nick}] pageerror: ${e.message}`); });
  users.set(nick, page);
  await bounded(`${nick}'s viewport`, page.setViewport({ width: 1280, height: 800 }));
  const url = `${server.url}?nick=${encodeURIComponent(nick)}&room=${encodeURIComponent(room)}`;
  await page.goto(url, { timeout: WAIT_MS });
  await until(`${nick} online`, async () => (await state(page)) === 'online');
  return page;
}

// The messages shown in one pane: '[data-room="lobby"]' or '[data-dm="alice"]'.
function messages(page, pane) {
  return page.$$eval(`#messages ${pane} .msg`, (els) => els.map((e) => ({
    seq: e.dataset.seq === undefined ? null : Number(e.dataset.seq),
    from: e.querySelector('.from').textContent,
    text: e.querySelector('.text').textContent,
  })));
}

const members = (page) => page.$$eval('#members [data-nick]', (els) => els.map((e) => e.dataset.nick));
const state = (page) => page.evaluate(() => document.querySelector('#status').dataset.state);

async function seesText(page, pane, text) {
  return (await messages(page, pane)).some((m) => m.text === text);
}

// Types `text` into #input with real key events and sends it with Enter.
async function say(page, text) {
  await bounded('bringing the page to the front', page.bringToFront());
  await bounded('the input to be enabled', page.waitForSelector('#input:not([disabled])', { timeout: WAIT_MS }));
  await bounded(`typing '${text}'`, page.type('#input', text));
  await bounded('pressing Enter', page.keyboard.press('Enter'));
}

function assert(ok, what) {
  if (!ok) throw new Error(`assertion failed: ${what}`);
}

// ---------- the cases ----------

const cases = [];
const test = (name, fn) => cases.push({ name, fn });

test('two users see each other in the member list and chat both ways', async () => {
  const alice = await user('alice');
  const bob = await user('bob');
  await until('alice sees bob in the member list', async () => (await members(alice)).includes('bob'));
  await until('bob sees alice in the member list', async () => (await members(bob)).includes('alice'));

  const hello = `hello bob ${RUN}`;
  await say(alice, hello);
  await until(`bob sees '${hello}'`, () => seesText(bob, '[data-room="lobby"]', hello));
  const got = (await messages(bob, '[data-room="lobby"]')).find((m) => m.text === hello);
  assert(got.from === 'alice', `bob sees the sender as alice (got '${got.from}')`);
  assert(await alice.$eval('#input', (e) => e.value) === '', 'the input is cleared after sending');

  const back = `hi alice ${RUN}`;
  await say(bob, back);
  await until(`alice sees '${back}'`, () => seesText(alice, '[data-room="lobby"]', back));
  const reply = (await messages(alice, '[data-room="lobby"]')).find((m) => m.text === back);
  assert(reply.from === 'bob', `alice sees the sender as bob (got '${reply.from}')`);
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
  assert(after.length === before.length + 3, `bob's pane grew by exactly 3 (from ${before.length} to ${after.length})`);

  const back = `back again ${RUN}`;
  await say(bob, back);
  await until(`alice sees '${back}' after bob's reconnect`, () => seesText(alice, '[data-room="lobby"]', back));
});

test('screenshot', async () => {
  const bob = await user('bob');
  mkdirSync(OUT, { recursive: true });
  await bounded('bringing bob to the front', bob.bringToFront());
  await bob.evaluate(() => document.activeElement && document.activeElement.blur());
  const path = join(OUT, 'firefox.png');
  await bounded('the screenshot', bob.screenshot({ path }));
  console.log(`# screenshot: ${path}`);
});

test('no JavaScript errors in any page', async () => {
  assert(pageErrors.length === 0, `page errors: ${pageErrors.join(' | ')}`);
});

// ---------- the run ----------

let passed = 0;
let failed = 0;
try {
  await startServer();
  console.log(`# server: ${BIN} at ${server.url}`);
  browser = await bounded(`${FIREFOX} to start`, puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    timeout: WAIT_MS * 3,
    handleSIGINT: false, // killAllNow does it, for the server too
    handleSIGTERM: false,
    handleSIGHUP: false,
  }), WAIT_MS * 3);
  browserProc = browser.process();
  console.log(`# browser: ${await bounded('the browser version', browser.version())} (${FIREFOX}, WebDriver BiDi)`);
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
  for (const l of consoleLines.slice(-60)) console.log(`  ${l}`);
  for (const l of server.output.slice(-30)) console.log(`  ${l}`);
} finally {
  if (browser) await bounded('the browser to close', browser.close()).catch(() => {});
  if (alive(browserProc)) browserProc.kill('SIGKILL');
  await stopServer().catch(() => {});
  killAllNow();
}
if (process.env.FIREFOX_VERBOSE) {
  console.log('# console of the pages:');
  for (const l of consoleLines) console.log(`#   ${l}`);
  console.log('# server output:');
  for (const l of server.output) console.log(`#   ${l}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

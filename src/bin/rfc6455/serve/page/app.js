// The browser page of `rfc6455 serve`: rooms, members, private messages, and a reconnect that
// recovers what was said while it was away. Plain JavaScript, no build step. User text only
// ever reaches the DOM through textContent. Loaded as a module: strict, and its own scope.
const $ = (sel) => document.querySelector(sel);
const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_ROOMS = 32;
const MAX_TEXT = 4096;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const JITTER = 0.3;
const ROOMS_REFRESH_MS = 5000;
const MAX_PANE_ITEMS = 2000;
const LS_NICK = 'rfc6455.nick';
const LS_ROOMS = 'rfc6455.rooms';

// Every element with an id, by its id in camelCase: #member-count is el.memberCount.
const el = {};
for (const e of document.querySelectorAll('[id]')) el[e.id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = e;

const S = {
  nick: null,
  ws: null,
  state: 'offline',
  attempt: 0,         // failed connects since the last welcome: the backoff exponent
  retryAt: 0,
  retryTimer: null,
  tick: null,
  hold: false,        // test hook: stay offline until reconnect()
  rooms: new Map(),   // name -> {name, joined, lastSeq, seen, epoch, members, pane, unread}
  wanted: [],         // rooms to (re)join, in order
  dms: new Map(),     // nick -> {nick, pane, unread}
  current: null,      // {kind: 'room'|'dm', name}
  lastRoom: null,     // the room whose members are listed while a private pane is shown
  counts: [],         // the server's last `rooms` answer
  nextRef: 1,
  pending: new Map(), // ref -> what the command was, for its error
  focusOnJoin: null,
};

// ---------- helpers ----------

const log = (...args) => console.info('[chat]', ...args);
const validNick = (n) => n.length > 0 && [...n].length <= 32 && !/[\p{C}]/u.test(n);
const validRoom = (r) => ROOM_RE.test(r);

function hue(nick) {
  let h = 0;
  for (const c of nick) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return h % 360;
}

function node(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

let toastTimer = null;
function toast(text, kind = 'error') {
  el.toast.textContent = text;
  el.toast.dataset.kind = kind;
  el.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.toast.hidden = true; }, 6000);
}

function saveRooms() {
  try { localStorage.setItem(LS_ROOMS, JSON.stringify(S.wanted)); } catch (_) { /* private mode */ }
}

// ---------- connection ----------

function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws?nick=${encodeURIComponent(S.nick)}`;
}

function setState(state, detail) {
  S.state = state;
  el.status.dataset.state = state;
  let text = state;
  if (state === 'connecting') text = 'connecting…';
  if (state === 'online') text = 'online';
  if (state === 'reconnecting') {
    const secs = Math.max(1, Math.ceil((S.retryAt - Date.now()) / 1000));
    text = `offline · reconnecting in ${secs} s`;
  }
  el.status.textContent = text;
  if (detail !== undefined) el.status.title = detail;
  el.send.disabled = !S.current;
}

function send(obj, context) {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN || S.state !== 'online') return false;
  if (context) {
    obj.ref = S.nextRef++;
    S.pending.set(obj.ref, context);
    if (S.pending.size > 200) S.pending.delete(S.pending.keys().next().value);
  }
  S.ws.send(JSON.stringify(obj));
  return true;
}

function connect() {
  clearTimeout(S.retryTimer);
  clearInterval(S.tick);
  if (S.ws) { const old = S.ws; S.ws = null; old.close(); }
  setState('connecting');
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch (e) {
    log('cannot open', e);
    return closed({ code: 1006, reason: String(e) }, false);
  }
  S.ws = ws;
  let opened = false;
  ws.onopen = () => { opened = true; log('open'); };
  ws.onmessage = (ev) => {
    if (S.ws !== ws) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_) { log('not JSON', ev.data); return; }
    handle(msg);
  };
  ws.onclose = (ev) => {
    if (S.ws !== ws) return;
    S.ws = null;
    closed(ev, opened);
  };
}

function closed(ev, opened) {
  let why;
  if (!opened) why = `could not connect as “${S.nick}” (server unreachable, or it refused the nick)`;
  else if (ev.code === 1008) why = `closed by the server: ${ev.reason || 'policy violation'}`;
  else if (ev.code === 1001) why = `the server is going away${ev.reason ? ': ' + ev.reason : ''}`;
  else why = `connection lost (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`;
  log('closed', ev.code, ev.reason, 'opened:', opened);
  for (const r of S.rooms.values()) r.joined = false;
  S.pending.clear();
  if (opened || S.attempt === 0) toast(why, opened ? 'warn' : 'error'); // once per outage
  if (S.hold || !S.nick) { setState('offline', why); return; }
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** S.attempt);
  const delay = Math.round(base * (1 + (Math.random() * 2 - 1) * JITTER));
  S.attempt = Math.min(S.attempt + 1, 20);
  S.retryAt = Date.now() + delay;
  S.retryTimer = setTimeout(connect, delay);
  setState('reconnecting', why);
  S.tick = setInterval(() => { if (S.state === 'reconnecting') setState('reconnecting'); }, 1000);
}

function handle(m) {
  switch (m.type) {
    case 'welcome': return welcome(m);
    case 'joined': return joined(m);
    case 'left': return left(m);
    case 'presence': return presence(m);
    case 'message': {
      const r = S.rooms.get(m.room);
      if (r) addMessage(r, m);
      return;
    }
    case 'private': return addPrivate(m);
    case 'rooms':
      S.counts = Array.isArray(m.rooms) ? m.rooms : [];
      return renderRooms();
    case 'error': return serverError(m);
    default: log('unknown message', m);
  }
}

function welcome(m) {
  if (typeof m.nick === 'string') S.nick = m.nick;
  el.meNick.textContent = S.nick;
  S.attempt = 0;
  setState('online', '');
  el.toast.hidden = true; // whatever said the connection was down
  log('welcome', S.nick);
  for (const name of S.wanted) {
    const r = S.rooms.get(name);
    const cmd = { type: 'join', room: name };
    if (r) cmd.since = r.lastSeq; // a rejoin: everything after what this page has shown
    send(cmd, { type: 'join', room: name });
  }
  send({ type: 'rooms' });
}

// ---------- rooms ----------

function requestJoin(name) {
  if (!validRoom(name)) return toast('A room name is 1–64 letters, digits, “_”, “.” or “-”.');
  const r = S.rooms.get(name);
  if (r && r.joined) return show({ kind: 'room', name });
  if (!S.wanted.includes(name)) {
    if (S.wanted.length >= MAX_ROOMS) return toast(`You can be in at most ${MAX_ROOMS} rooms.`);
    S.wanted.push(name);
    saveRooms();
  }
  S.focusOnJoin = name;
  const cmd = { type: 'join', room: name };
  if (r) cmd.since = r.lastSeq;
  if (!send(cmd, { type: 'join', room: name })) toast('Offline: the room will be joined on reconnect.', 'warn');
}

function roomState(name) {
  let r = S.rooms.get(name);
  if (!r) {
    const pane = node('section', 'pane');
    pane.dataset.room = name;
    pane.hidden = true;
    el.messages.append(pane);
    r = { name, joined: false, lastSeq: 0, seen: new Set(), epoch: 0, members: new Map(), pane, unread: 0 };
    S.rooms.set(name, r);
  }
  return r;
}

function joined(m) {
  const r = roomState(m.room);
  const rejoin = r.lastSeq > 0 || r.pane.querySelector('.msg') !== null;
  r.joined = true;
  if (!S.wanted.includes(m.room)) { S.wanted.push(m.room); saveRooms(); }
  r.members = new Map();
  for (const n of m.members || []) r.members.set(n, (r.members.get(n) || 0) + 1);
  // The server's history starts over when it restarts: its seqs count from 1 again and its
  // epoch changes (seq alone misses a restart after which more was sent than this page saw).
  const newEpoch = m.epoch !== undefined && r.serverEpoch !== undefined && m.epoch !== r.serverEpoch;
  if (m.epoch !== undefined) r.serverEpoch = m.epoch;
  const reset = newEpoch || (typeof m.seq === 'number' && m.seq < r.lastSeq);
  if (reset) {
    // The room counts from 1 again: the server restarted and lost what it held.
    r.epoch++;
    r.seen = new Set();
    r.lastSeq = 0;
    sysLine(r.pane, 'The server restarted: messages above are no longer held by it.', 'warn');
  }
  if (m.recovered === false && rejoin && !reset) {
    sysLine(r.pane, 'Some messages may be missing here: the server no longer holds them all.', 'warn missing');
  }
  for (const h of m.history || []) addMessage(r, h, true);
  log('joined', m.room, 'seq', m.seq, 'history', (m.history || []).length, 'recovered', m.recovered);
  if (S.focusOnJoin === m.room || !S.current) {
    S.focusOnJoin = null;
    show({ kind: 'room', name: m.room });
  } else if (isCurrent('room', m.room)) {
    renderMembers();
  }
  renderRooms();
  send({ type: 'rooms' });
}

function left(m) {
  const r = S.rooms.get(m.room);
  S.wanted = S.wanted.filter((n) => n !== m.room);
  saveRooms();
  if (r) { r.pane.remove(); S.rooms.delete(m.room); }
  if (S.lastRoom === m.room) S.lastRoom = null;
  if (isCurrent('room', m.room)) {
    const next = S.wanted.find((n) => S.rooms.has(n));
    show(next ? { kind: 'room', name: next } : null);
  }
  renderRooms();
  send({ type: 'rooms' });
}

function presence(m) {
  const r = S.rooms.get(m.room);
  if (!r || m.nick === S.nick) return; // our own membership comes from joined/left
  const n = r.members.get(m.nick) || 0;
  if (m.event === 'join') {
    r.members.set(m.nick, n + 1);
    if (n === 0) sysLine(r.pane, `${m.nick} joined`, 'presence');
  } else if (m.event === 'leave') {
    if (n <= 1) { r.members.delete(m.nick); sysLine(r.pane, `${m.nick} left`, 'presence'); }
    else r.members.set(m.nick, n - 1);
  }
  if (S.lastRoom === m.room) renderMembers();
  clearTimeout(S.countsTimer);
  S.countsTimer = setTimeout(() => send({ type: 'rooms' }), 300);
}

// ---------- messages ----------

function nearBottom() {
  const m = el.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function place(pane, item, before) {
  const stick = !pane.hidden && nearBottom();
  pane.insertBefore(item, before || null);
  while (pane.childElementCount > MAX_PANE_ITEMS) pane.firstElementChild.remove();
  if (stick) el.messages.scrollTop = el.messages.scrollHeight;
}

function sysLine(pane, text, cls) {
  place(pane, node('div', `sys ${cls || ''}`, text));
}

function renderMsg(m, cls) {
  const item = el.msgTpl.content.firstElementChild.cloneNode(true);
  if (cls) item.classList.add(...cls.split(' '));
  const from = String(m.from);
  item.dataset.from = from;
  if (from === S.nick) item.classList.add('mine');
  const f = item.querySelector('.from');
  f.textContent = from;
  f.style.setProperty('--hue', hue(from));
  const t = item.querySelector('time');
  const d = new Date(Number(m.ts) || Date.now());
  t.dateTime = d.toISOString();
  t.textContent = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  t.title = d.toLocaleString();
  item.querySelector('.text').textContent = String(m.text);
  return item;
}

// Shows a room message once, in seq order: a message is known by room + seq (+ epoch, which
// changes when the server restarts and counts from 1 again).
function addMessage(r, m, fromHistory) {
  const seq = Number(m.seq);
  if (!Number.isInteger(seq) || r.seen.has(seq)) return;
  r.seen.add(seq);
  if (seq > r.lastSeq) r.lastSeq = seq;
  const item = renderMsg(m);
  item.dataset.seq = seq;
  item.dataset.epoch = r.epoch;
  if (fromHistory) item.classList.add('history');
  let before = null;
  for (let c = r.pane.lastElementChild; c; c = c.previousElementSibling) {
    if (!c.classList.contains('msg')) continue;
    if (Number(c.dataset.epoch) === r.epoch && Number(c.dataset.seq) > seq) before = c;
    else break;
  }
  place(r.pane, item, before);
  if (!fromHistory && !isCurrent('room', r.name)) { r.unread++; renderRooms(); }
}

function dmState(nick) {
  let d = S.dms.get(nick);
  if (!d) {
    const pane = node('section', 'pane private');
    pane.dataset.dm = nick;
    pane.hidden = true;
    pane.append(node('div', 'sys', `Private conversation with ${nick}. Only the two of you see it.`));
    el.messages.append(pane);
    d = { nick, pane, unread: 0 };
    S.dms.set(nick, d);
    renderDms();
  }
  return d;
}

function addPrivate(m) {
  const other = m.from === S.nick ? m.to : m.from;
  const d = dmState(String(other));
  const item = renderMsg(m, 'private');
  item.dataset.to = String(m.to);
  item.querySelector('.meta').prepend(node('span', 'badge', 'private'));
  place(d.pane, item);
  if (!isCurrent('dm', d.nick)) {
    d.unread++;
    renderDms();
    if (m.from !== S.nick) toast(`Private message from ${m.from}`, 'info');
  }
}

function serverError(m) {
  const ctx = m.ref != null ? S.pending.get(m.ref) : null;
  if (ctx) S.pending.delete(m.ref);
  const text = `${m.code || 'error'}: ${m.message || ''}`;
  log('error', m.code, m.message, ctx);
  const r = ctx && S.rooms.get(ctx.room);
  if (ctx && ctx.type === 'join' && !(r && r.joined)) {
    // A join refused: stop asking for it (the pane, if any, stays until left).
    S.wanted = S.wanted.filter((n) => n !== ctx.room);
    saveRooms();
  }
  if (ctx && ctx.text && !el.input.value) el.input.value = ctx.text; // give the unsent text back
  const pane = ctx && (ctx.type === 'private' ? S.dms.get(ctx.to) : r);
  if (pane && ctx.type !== 'join') sysLine(pane.pane, text, 'error');
  toast(text);
}

// ---------- views ----------

function isCurrent(kind, name) {
  return !!S.current && S.current.kind === kind && S.current.name === name;
}

function show(view) {
  S.current = view;
  for (const p of el.messages.querySelectorAll('.pane')) p.hidden = true;
  el.placeholder.hidden = !!view;
  el.leave.hidden = !view || view.kind !== 'room';
  el.target.hidden = !view || view.kind !== 'dm';
  el.input.disabled = !view;
  el.send.disabled = !view;
  if (!view) {
    el.paneTitle.textContent = '';
    el.title.textContent = '';
  } else if (view.kind === 'room') {
    const r = S.rooms.get(view.name);
    r.pane.hidden = false;
    r.unread = 0;
    S.lastRoom = view.name;
    el.paneTitle.textContent = `# ${view.name}`;
    el.title.textContent = `#${view.name}`;
    el.input.placeholder = `Message #${view.name}`;
  } else {
    const d = dmState(view.name);
    d.pane.hidden = false;
    if (el.toast.dataset.kind === 'info') el.toast.hidden = true; // "private message from …"
    d.unread = 0;
    el.paneTitle.textContent = `Private with ${view.name}`;
    el.title.textContent = `@${view.name}`;
    el.target.textContent = `private to ${view.name}`;
    el.input.placeholder = `Private message to ${view.name}`;
  }
  el.messages.scrollTop = el.messages.scrollHeight;
  renderRooms();
  renderDms();
  renderMembers();
  closeDrawers();
  if (view) el.input.focus();
}

// One entry of a sidebar list: data-KEY=value, a name, then badges; clickable unless `inert`.
function item(key, value, label, { active, cls, tip, inert, extra = [] } = {}) {
  const li = node('li', `item ${cls || ''}`);
  li.dataset[key] = value;
  if (active) li.classList.add('active');
  if (!inert) { li.tabIndex = 0; li.setAttribute('role', 'button'); }
  if (tip) li.title = tip;
  const name = node('span', 'name', label);
  if (key !== 'room') name.style.setProperty('--hue', hue(value));
  li.append(name, ...extra.filter(Boolean));
  return li;
}

const unread = (n) => (n > 0 ? node('span', 'unread', String(n)) : null);

function fill(list, items, empty) {
  if (!items.length && empty) items.push(node('li', 'empty', empty));
  list.replaceChildren(...items);
  updateTitle();
}

function renderRooms() {
  const counts = new Map();
  for (const x of S.counts) if (x && typeof x.room === 'string') counts.set(x.room, x.members);
  const names = [...new Set([...counts.keys(), ...S.rooms.keys()])].sort();
  fill(el.rooms, names.map((name) => {
    const r = S.rooms.get(name);
    const joined = !!(r && r.joined);
    return item('room', name, `# ${name}`, {
      active: isCurrent('room', name), cls: joined ? 'joined' : '', tip: `${joined ? 'Show' : 'Join'} #${name}`,
      extra: [unread(r ? r.unread : 0), node('span', 'count', counts.has(name) ? String(counts.get(name)) : '')],
    });
  }), 'no rooms yet');
}

function renderDms() {
  fill(el.dms, [...S.dms.values()].map((d) => item('dm', d.nick, `@ ${d.nick}`, {
    active: isCurrent('dm', d.nick), extra: [unread(d.unread)],
  })), 'click a name to write privately');
}

function renderMembers() {
  const r = S.lastRoom ? S.rooms.get(S.lastRoom) : null;
  const names = r ? [...r.members.keys()].sort((a, b) => a.localeCompare(b)) : [];
  fill(el.members, names.map((n) => (n === S.nick
    ? item('nick', n, n, { cls: 'member self', inert: true, extra: [node('span', 'you', 'you')] })
    : item('nick', n, n, { cls: 'member', tip: `Send ${n} a private message` }))));
  el.memberCount.textContent = r ? `· #${r.name} · ${names.length}` : '';
}

function updateTitle() {
  let n = 0;
  for (const r of S.rooms.values()) n += r.unread;
  for (const d of S.dms.values()) n += d.unread;
  document.title = `${n ? `(${n}) ` : ''}rfc6455 chat`;
}

function closeDrawers() {
  document.body.classList.remove('show-side', 'show-people');
  el.scrim.hidden = true;
  el.menu.setAttribute('aria-expanded', 'false');
  el.peopleToggle.setAttribute('aria-expanded', 'false');
}

function toggleDrawer(which) {
  const cls = `show-${which}`;
  const open = !document.body.classList.contains(cls);
  closeDrawers();
  if (open) {
    document.body.classList.add(cls);
    el.scrim.hidden = false;
    (which === 'side' ? el.menu : el.peopleToggle).setAttribute('aria-expanded', 'true');
  }
}

// ---------- input ----------

function submit() {
  const text = el.input.value;
  if (!text.trim() || !S.current) return;
  if ([...text].length > MAX_TEXT) return toast(`A message is at most ${MAX_TEXT} characters.`);
  const v = S.current;
  const ok = v.kind === 'room'
    ? send({ type: 'message', room: v.name, text }, { type: 'message', room: v.name, text })
    : send({ type: 'private', to: v.name, text }, { type: 'private', to: v.name, text });
  if (!ok) return toast('Offline: not sent. It will be possible again once reconnected.', 'warn');
  el.input.value = '';
  autosize();
  el.input.focus();
}

function autosize() {
  el.input.style.height = 'auto';
  el.input.style.height = `${Math.min(el.input.scrollHeight, 160)}px`;
}

function wire() {
  el.composer.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  el.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  el.input.addEventListener('input', autosize);
  el.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = el.joinRoom.value.trim();
    if (name) { requestJoin(name); el.joinRoom.value = ''; }
  });
  el.leave.addEventListener('click', () => {
    if (S.current && S.current.kind === 'room') {
      const name = S.current.name;
      if (!send({ type: 'leave', room: name }, { type: 'leave', room: name })) left({ room: name });
    }
  });
  // The sidebar lists: a room joins or shows it, a private conversation or a name shows that.
  for (const type of ['click', 'keydown']) {
    document.addEventListener(type, (e) => {
      const li = e.target.closest('.item[role="button"]');
      if (!li || (type === 'keydown' && e.key !== 'Enter' && e.key !== ' ')) return;
      e.preventDefault();
      if (li.dataset.room) requestJoin(li.dataset.room);
      else show({ kind: 'dm', name: li.dataset.dm || li.dataset.nick });
    });
  }
  el.menu.addEventListener('click', () => toggleDrawer('side'));
  el.peopleToggle.addEventListener('click', () => toggleDrawer('people'));
  el.scrim.addEventListener('click', closeDrawers);
  el.status.addEventListener('click', () => { if (S.state === 'reconnecting' || S.state === 'offline') { S.hold = false; connect(); } });
  el.changeNick.addEventListener('click', askNick);
  el.loginForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const n = el.nick.value.trim();
    if (!validNick(n)) { el.loginError.textContent = 'A nick is 1–32 printable characters.'; return; }
    el.loginError.textContent = '';
    el.login.close();
    start(n);
  });
  el.login.addEventListener('cancel', (e) => { if (!S.nick) e.preventDefault(); });
  setInterval(() => send({ type: 'rooms' }), ROOMS_REFRESH_MS);
}

function askNick() {
  el.nick.value = S.nick || '';
  el.loginError.textContent = '';
  if (!el.login.open) el.login.showModal();
  el.nick.focus();
}

function start(nick) {
  S.nick = nick;
  el.meNick.textContent = nick;
  try { localStorage.setItem(LS_NICK, nick); } catch (_) { /* private mode */ }
  S.attempt = 0;
  S.hold = false;
  connect();
}

// The hooks the browser test uses; harmless for people.
window.__chat = {
  dropConnection({ reconnect = true } = {}) {
    S.hold = !reconnect;
    if (S.ws) S.ws.close(4000, 'dropped by the page');
  },
  reconnect() { S.hold = false; connect(); },
  get state() { return S.state; },
};

function init() {
  wire();
  const q = new URLSearchParams(location.search);
  let stored = [];
  try { stored = JSON.parse(localStorage.getItem(LS_ROOMS) || '[]'); } catch (_) { /* ignore */ }
  const room = (q.get('room') || '').trim();
  const rooms = [];
  if (room && validRoom(room)) rooms.push(room);
  else if (room) toast(`“${room}” is not a room name: 1–64 letters, digits, “_”, “.” or “-”.`);
  for (const r of Array.isArray(stored) ? stored : []) if (typeof r === 'string' && validRoom(r) && !rooms.includes(r)) rooms.push(r);
  if (!rooms.length) rooms.push('lobby');
  S.wanted = rooms.slice(0, MAX_ROOMS);
  S.focusOnJoin = S.wanted[0];
  renderRooms();
  renderDms();
  let nick = (q.get('nick') || '').trim();
  if (nick && !validNick(nick)) { el.loginError.textContent = 'The nick in the link is not valid.'; nick = ''; }
  if (!nick) { try { nick = localStorage.getItem(LS_NICK) || ''; } catch (_) { nick = ''; } }
  if (nick && validNick(nick)) start(nick);
  else askNick();
}

init();

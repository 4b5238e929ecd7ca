//! `serve --redis`: rooms, presence, private messages and history shared by every node
//! through Redis, so that N nodes behind a load balancer behave as one server.
//!
//! The loops never touch Redis. Two threads do, per node:
//!
//! - the **command thread** owns a `redis::Connection`, or a `ClusterConnection` for a Redis
//!   Cluster (read and write timeouts set), and runs what the loops hand it through a
//!   bounded channel, a batch at a time in one pipeline (one per primary in a cluster, where
//!   one failed command fails the batch): a room message is one Lua script that takes the room's next `seq` (`INCR`), appends the
//!   message to the room's stream (`XADD … MAXLEN ~ --history`, id `SEQ-0`) and publishes it
//!   to the room's channel, so seq order and publish order are one order on every node;
//!   `join` (members, history, recovery, presence) is another script; replies go back to the
//!   connection with `Handle::send`. Every few seconds it refreshes this node's presence
//!   entries and sweeps expired ones (emitting their `leave`).
//! - the **subscriber thread** holds one pub/sub connection (one per primary in a cluster,
//!   each channel on its slot's primary), subscribed only to the channels of rooms with
//!   members on this node and of nicks connected to it (`SSUBSCRIBE` on Redis 7+, else
//!   `SUBSCRIBE`). It hands each message to every loop once (`Handle::publish`), drops
//!   duplicates and fills gaps by `seq` from the room's stream, also when a room's channel is
//!   subscribed again (after an outage). It speaks RESP2 over its own `TcpStream`s (commands
//!   encoded with `redis::cmd`), each read by a thread that hands it what it reads through
//!   the same channel as the loops' requests: the crate's sync `PubSub` does not return
//!   sharded messages (`smessage`) under RESP2, and after a read timeout its `Connection`
//!   skips the next reply, so it cannot poll for (un)subscribe requests.
//!
//! In a cluster every key and channel of a room carries the `{room}` hash tag and a script
//! touches one room's keys only; the rooms listing key is used by single-key commands alone.
//!
//! While either connection is down the bridge is "down": sends get an `unavailable` reply,
//! `/healthz` answers 503, and both threads reconnect with backoff (0.1 s doubling to 2 s);
//! the subscriber resubscribes to what this node needs.

use super::hub::Hub;
use super::metrics::Metrics;
use redis::Value as RValue;
use rfc6455::proto::HttpResponse;
use rfc6455::server::{ConnId, Handle};
use rfc6455::Message;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Jobs waiting for the command thread at most; beyond it a send gets `unavailable`.
const QUEUE: usize = 65_536;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The channel of a room (the hash tag keeps a room's keys and channel in one slot).
pub fn room_channel(room: &str) -> String {
    format!("rfc6455:room:{{{room}}}")
}

fn room_key(room: &str, what: &str) -> String {
    format!("rfc6455:room:{{{room}}}:{what}")
}

/// The channel of a nick: private messages to it.
pub fn nick_channel(nick: &str) -> String {
    format!("rfc6455:nick:{{{nick}}}")
}

/// Rooms with members on some node, scored by when that stops being true (unix ms). A key
/// of its own slot: only single-key commands touch it, never a script with a room's keys.
const ROOMS_KEY: &str = "rfc6455:rooms";

/// Where Redis is: one server, or a cluster (`redis+cluster://H:P[,H:P…]`).
enum Target {
    One(redis::Client),
    Cluster {
        client: redis::cluster::ClusterClient,
        /// The nodes named on the command line, for the subscriber's first look at the
        /// cluster's slots.
        seeds: Vec<redis::Client>,
    },
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let bad = |e: &dyn std::fmt::Display| format!("--redis {url}: {e}");
        let tcp_only = |c: &redis::Client| {
            if matches!(
                c.get_connection_info().addr(),
                redis::ConnectionAddr::Tcp(..)
            ) {
                Ok(())
            } else {
                Err(format!(
                    "--redis {url}: only redis://HOST:PORT[/DB] or \
                     redis+cluster://HOST:PORT[,HOST:PORT…] is supported"
                ))
            }
        };
        let Some(rest) = url.strip_prefix("redis+cluster://") else {
            let client = redis::Client::open(url).map_err(|e| bad(&e))?;
            tcp_only(&client)?;
            return Ok(Target::One(client));
        };
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let mut seeds = Vec::new();
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            let client = redis::Client::open(format!("redis://{auth}{host}").as_str())
                .map_err(|e| bad(&e))?;
            tcp_only(&client)?;
            seeds.push(client);
        }
        if seeds.is_empty() {
            return Err(bad(&"no HOST:PORT after redis+cluster://"));
        }
        let client = redis::cluster::ClusterClient::builder(
            seeds.iter().map(|c| c.get_connection_info().clone()),
        )
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(IO_TIMEOUT)
        .retries(2)
        .build()
        .map_err(|e| bad(&e))?;
        Ok(Target::Cluster { client, seeds })
    }
}

/// A command connection to a server or a cluster (which routes each command to its key's
/// slot, following `MOVED`/`ASK`).
enum Conn {
    One(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn redis::ConnectionLike {
        match self {
            Conn::One(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }

    /// `cmds` in one pipeline (one per node in a cluster): a result per command.
    fn pipeline(
        &mut self,
        cmds: Vec<redis::Cmd>,
    ) -> redis::RedisResult<Vec<redis::RedisResult<RValue>>> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Conn::One(c) => {
                let mut pipe = redis::pipe();
                pipe.ignore_errors();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                pipe.query(c)
            }
            Conn::Cluster(c) => {
                let mut pipe = redis::cluster::cluster_pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                let values: Vec<RValue> = pipe.query(c)?;
                Ok(values.into_iter().map(Ok).collect())
            }
        }
    }

    fn ping(&mut self) -> redis::RedisResult<()> {
        redis::cmd("PING").query::<RValue>(self.like()).map(|_| ())
    }
}

/// The cluster slot of a key or channel: CRC16 (XMODEM) of its hash tag, modulo 16384.
fn slot(key: &str) -> u16 {
    let key = key.as_bytes();
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let close = key[open + 1..].iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &key[open + 1..open + 1 + close])
    });
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(key) {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// Who to answer.
pub struct Origin {
    pub conn: ConnId,
    pub reference: Option<Value>,
}

/// Who waits for a room message's outcome.
pub enum Sender {
    /// A WebSocket connection: told only if it failed (its message comes back through the
    /// room).
    Ws(Origin),
    /// A `POST /api/publish` waiting (deferred) for `{"seq":S}`.
    Api(ConnId),
}

/// How long `POST /api/publish` waits for Redis before the server answers 504 itself.
pub const API_WAIT: Duration = Duration::from_secs(10);

/// What a loop hands the command thread.
pub enum Job {
    /// A room message.
    Message {
        room: String,
        from: String,
        text: String,
        origin: Sender,
    },
    Private {
        from: String,
        to: String,
        text: String,
        origin: Origin,
    },
    Join {
        room: String,
        nick: String,
        since: Option<u64>,
        /// Leaves the joiner out of its own presence event (0: no presence to send).
        token: u64,
        origin: Origin,
    },
    /// The nick's last connection on this node left the room.
    Leave {
        room: String,
        nick: String,
    },
    Rooms {
        origin: Origin,
    },
    /// The subscriber lost Redis: check the command connection too (a `PING`), so that it
    /// reconnects now rather than fail the next send.
    Ping,
}

/// What a loop hands the subscriber thread.
enum Sub {
    Subscribe(String),
    Unsubscribe(String),
    /// A join, forwarded to the command thread once its room's channel is subscribed, so
    /// that every message after the history it reads arrives live.
    Join(String, Job),
    /// A value from Redis, read by a reader thread of subscriber session `.0`.
    Push(u64, Resp),
    /// A reader thread of session `.0` lost its node.
    Gone(u64, io::Error),
}

const MESSAGE_LUA: &str = r"
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[5])
if seq == 1 then
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #top > 0 then
    local last = tonumber(string.match(top[1][1], '^(%d+)'))
    if last > floor then floor = last end
  end
end
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local msg = ARGV[1] .. seq .. ARGV[2]
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'm', msg)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call(ARGV[6], KEYS[3], 'm ' .. seq .. ' 0\n' .. msg)
return seq
";

/// Raises a room's seq counter to at least ARGV[1] (what this node last delivered), for a
/// Redis that came back empty: so that a sender that knows no floor (the publish API on a
/// node without the room's members) goes on from there rather than from 1.
const FLOOR_LUA: &str = r"
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
if seq < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
";

const JOIN_LUA: &str = r"
local live = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[4], '+inf')
local first = 1
local nicks = {}
local seen = {}
for _, m in ipairs(live) do
  local nick = string.match(m, '^(.*)\n[^\n]*$')
  if nick then
    if nick == ARGV[2] then first = 0 end
    if not seen[nick] then
      seen[nick] = true
      table.insert(nicks, nick)
    end
  end
end
if first == 1 then table.insert(nicks, ARGV[2]) end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[9])
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
local keep = tonumber(ARGV[6])
local held = {}
if keep > 0 then
  local rev = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', keep)
  for i = #rev, 1, -1 do table.insert(held, rev[i]) end
end
local since = tonumber(ARGV[5])
local recovered = -1
local history = {}
if since < 0 then
  for _, e in ipairs(held) do table.insert(history, e[2][2]) end
else
  local oldest = latest + 1
  if #held > 0 then oldest = tonumber(string.match(held[1][1], '^(%d+)')) end
  if since >= latest or oldest <= since + 1 then
    recovered = 1
    for _, e in ipairs(held) do
      if tonumber(string.match(e[1], '^(%d+)')) > since then table.insert(history, e[2][2]) end
    end
  else
    recovered = 0
    for _, e in ipairs(held) do table.insert(history, e[2][2]) end
  end
end
if first == 1 and ARGV[8] ~= '' then redis.call(ARGV[7], KEYS[4], ARGV[8]) end
return {latest, first, nicks, history, recovered}
";

const LEAVE_LUA: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '+inf')
for _, m in ipairs(live) do
  if string.match(m, '^(.*)\n[^\n]*$') == ARGV[2] then return 0 end
end
redis.call(ARGV[4], KEYS[2], ARGV[5])
return 1
";

const REFRESH_LUA: &str = r"
for i = 8, #ARGV do redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i]) end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])
  local alive = {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], '+inf')) do
    alive[string.match(m, '^(.*)\n[^\n]*$') or ''] = true
  end
  local told = {}
  for _, m in ipairs(dead) do
    local nick = string.match(m, '^(.*)\n[^\n]*$')
    if nick and not alive[nick] and not told[nick] then
      told[nick] = true
      redis.call(ARGV[4], KEYS[2], 'p 0 0\n' ..
        cjson.encode({type = 'presence', room = ARGV[5], event = 'leave', nick = nick}))
    end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('EXPIRE', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[4], ARGV[3])
return #dead
";

/// The scripts, loaded on every (re)connection.
struct Scripts {
    message: redis::Script,
    join: redis::Script,
    leave: redis::Script,
    refresh: redis::Script,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            message: redis::Script::new(MESSAGE_LUA),
            join: redis::Script::new(JOIN_LUA),
            leave: redis::Script::new(LEAVE_LUA),
            refresh: redis::Script::new(REFRESH_LUA),
        }
    }
}

fn evalsha(script: &redis::Script, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

pub struct Options {
    pub history: usize,
    pub history_ttl: Duration,
    pub presence_ttl: Duration,
}

pub struct Bridge {
    target: Target,
    url: String,
    /// This node's id in presence entries.
    node: String,
    options: Options,
    scripts: Scripts,
    jobs: SyncSender<Job>,
    subs: mpsc::Sender<Sub>,
    receivers: Mutex<Option<(Receiver<Job>, Receiver<Sub>)>>,
    cmd_up: AtomicBool,
    sub_up: AtomicBool,
    /// Both up, as last logged.
    up_logged: Mutex<Option<bool>>,
    sharded: AtomicBool,
    /// The last seq delivered per subscribed room: duplicates dropped, gaps filled, and
    /// the floor of the room's next seq if Redis lost its counter (a restart without
    /// persistence).
    last_seq: Mutex<HashMap<String, u64>>,
    /// Presence tokens → the connection left out of its own presence event.
    except: Mutex<HashMap<u64, ConnId>>,
    next_token: AtomicU64,
    metrics: Arc<Metrics>,
    /// This node's members (the loops keep it): what the presence refresh writes.
    hub: Arc<Mutex<Hub>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_ms() -> u64 {
    super::unix_ms()
}

impl Bridge {
    pub fn new(
        url: &str,
        options: Options,
        metrics: Arc<Metrics>,
        hub: Arc<Mutex<Hub>>,
    ) -> Result<Arc<Bridge>, String> {
        let target = Target::parse(url)?;
        let (jobs, jobs_rx) = mpsc::sync_channel(QUEUE);
        let (subs, subs_rx) = mpsc::channel();
        let node = format!("{:x}-{:x}", unix_ms(), std::process::id());
        Ok(Arc::new(Bridge {
            target,
            url: url.to_owned(),
            node,
            options,
            scripts: Scripts::new(),
            jobs,
            subs,
            receivers: Mutex::new(Some((jobs_rx, subs_rx))),
            cmd_up: AtomicBool::new(false),
            sub_up: AtomicBool::new(false),
            up_logged: Mutex::new(None),
            sharded: AtomicBool::new(false),
            last_seq: Mutex::new(HashMap::new()),
            except: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            metrics,
            hub,
        }))
    }

    /// Starts the two threads (once); they reach the loops through `handle`.
    pub fn start(self: &Arc<Self>, handle: Handle) -> io::Result<()> {
        let Some((jobs, subs)) = lock(&self.receivers).take() else {
            return Ok(());
        };
        let (b, h) = (self.clone(), handle.clone());
        std::thread::Builder::new()
            .name("rfc6455-redis-cmd".into())
            .spawn(move || b.command_thread(&h, &jobs))?;
        let b = self.clone();
        std::thread::Builder::new()
            .name("rfc6455-redis-sub".into())
            .spawn(move || b.subscriber_thread(&handle, &subs))?;
        Ok(())
    }

    /// Whether Redis is reachable (for commands and subscriptions).
    pub fn up(&self) -> bool {
        self.cmd_up.load(Ordering::SeqCst) && self.sub_up.load(Ordering::SeqCst)
    }

    /// Queues a job for the command thread; `Err` with the reason to reply `unavailable`.
    pub fn submit(&self, job: Job) -> Result<(), &'static str> {
        if !self.up() {
            return Err("the server cannot reach Redis; try again shortly");
        }
        self.jobs
            .try_send(job)
            .map_err(|_| "the server is overloaded; try again")
    }

    /// Subscribes this node to `channel` (a room's first local member, a nick's first
    /// local connection). Call under the hub's lock, so that requests keep its order.
    pub fn subscribe(&self, channel: String) {
        let _ = self.subs.send(Sub::Subscribe(channel));
    }

    pub fn unsubscribe(&self, channel: String) {
        let _ = self.subs.send(Sub::Unsubscribe(channel));
    }

    /// A join: through the subscriber (after the room's channel is subscribed), then run.
    /// (The caller checked [`up`](Self::up); if Redis goes meanwhile, the reply says so.)
    pub fn join(&self, job: Job) -> Result<(), &'static str> {
        let Job::Join { room, .. } = &job else {
            return Err("not a join");
        };
        let channel = room_channel(room);
        self.subs
            .send(Sub::Join(channel, job))
            .map_err(|_| "the server is stopping")
    }

    /// A token that leaves `conn` out of the presence event its join causes.
    pub fn presence_token(&self, conn: ConnId) -> u64 {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        lock(&self.except).insert(token, conn);
        token
    }

    /// A token whose join did not happen.
    pub fn forget_token(&self, token: u64) {
        lock(&self.except).remove(&token);
    }

    fn set_up(&self, flag: &AtomicBool, up: bool, why: &dyn std::fmt::Display) {
        let mut logged = lock(&self.up_logged);
        flag.store(up, Ordering::SeqCst);
        let now = self.up();
        if *logged == Some(now) || (!now && !up && *logged == Some(false)) {
            return;
        }
        self.metrics.redis_up.set(i64::from(now));
        if now {
            log::info!("redis: connected to {} (node {})", self.url, self.node);
        } else if *logged == Some(true) {
            self.metrics.redis_outages.inc();
            log::warn!(
                "redis: lost {} ({why}); sends get `unavailable` until it is back",
                self.url
            );
        } else if logged.is_none() && !up {
            log::warn!(
                "redis: cannot reach {} ({why}); retrying with backoff",
                self.url
            );
        } else {
            return;
        }
        *logged = Some(now);
    }

    fn publish_cmd(&self) -> &'static str {
        if self.sharded.load(Ordering::Relaxed) {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    fn member(&self, nick: &str) -> String {
        format!("{nick}\n{}", self.node)
    }

    // ------------------------------------------------------------------ replies

    fn send(&self, handle: &Handle, origin: &Origin, mut value: Value) {
        if let (Some(r), Some(obj)) = (&origin.reference, value.as_object_mut()) {
            obj.insert("ref".into(), r.clone());
        }
        let text = value.to_string();
        self.metrics.replies_out.inc();
        self.metrics.reply_bytes_out.inc_by(text.len() as u64);
        let _ = handle.send(origin.conn, Message::text(text));
    }

    fn fail(&self, handle: &Handle, origin: &Origin, code: &'static str, message: &str) {
        self.metrics.error(code);
        let value = json!({"type": "error", "code": code, "message": message});
        self.send(handle, origin, value);
    }

    /// Tells the job's sender it did not happen.
    fn unavailable(&self, handle: &Handle, job: Job) {
        const WHY: &str = "the server cannot reach Redis; try again shortly";
        match job {
            Job::Message {
                origin: Sender::Ws(o),
                ..
            }
            | Job::Private { origin: o, .. }
            | Job::Rooms { origin: o } => self.fail(handle, &o, "unavailable", WHY),
            Job::Message {
                origin: Sender::Api(id),
                ..
            } => {
                let body = json!({"error": WHY}).to_string();
                let _ = handle.respond_http(id, HttpResponse::new(503).json(body));
            }
            Job::Join { origin, token, .. } => {
                lock(&self.except).remove(&token);
                self.fail(handle, &origin, "unavailable", WHY);
            }
            Job::Leave { .. } | Job::Ping => {}
        }
    }

    // ------------------------------------------------------------------ command thread

    /// A command connection (timeouts set).
    fn open(&self) -> redis::RedisResult<Conn> {
        Ok(match &self.target {
            Target::One(client) => {
                let con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
                con.set_read_timeout(Some(IO_TIMEOUT))?;
                con.set_write_timeout(Some(IO_TIMEOUT))?;
                Conn::One(con)
            }
            Target::Cluster { client, .. } => {
                let con = client.get_connection()?;
                con.set_read_timeout(Some(IO_TIMEOUT))?;
                con.set_write_timeout(Some(IO_TIMEOUT))?;
                Conn::Cluster(Box::new(con))
            }
        })
    }

    /// The command thread's connection: scripts loaded (on every primary of a cluster).
    fn connect(&self) -> redis::RedisResult<Conn> {
        let mut con = self.open()?;
        for script in [MESSAGE_LUA, JOIN_LUA, LEAVE_LUA, REFRESH_LUA] {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(script)
                .query::<RValue>(con.like())?;
        }
        let sharded = match &mut con {
            Conn::One(c) => {
                let info: String = redis::cmd("INFO").arg("server").query(c)?;
                version_major(&info) >= 7
            }
            // A cluster's pub/sub is sharded (Redis 7+, which `serve` needs for a cluster).
            Conn::Cluster(_) => true,
        };
        self.sharded.store(sharded, Ordering::Relaxed);
        Ok(con)
    }

    fn command_thread(&self, handle: &Handle, jobs: &Receiver<Job>) {
        let mut con: Option<Conn> = None;
        let mut backoff = BACKOFF_MIN;
        let mut next_try = Instant::now();
        let tick = (self.options.presence_ttl / 3).max(Duration::from_millis(200));
        let mut next_tick = Instant::now();
        loop {
            let now = Instant::now();
            let mut wake = next_tick;
            if con.is_none() {
                wake = wake.min(next_try);
            } else if !self.up() {
                // The subscriber lost Redis: check this connection too, often.
                wake = wake.min(now + Duration::from_millis(200));
            }
            let mut batch = Vec::new();
            match jobs.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while batch.len() < 1024 {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if con.is_none() && Instant::now() >= next_try {
                match self.connect() {
                    Ok(c) => {
                        con = Some(c);
                        backoff = BACKOFF_MIN;
                        self.set_up(&self.cmd_up, true, &"connected");
                        next_tick = Instant::now();
                    }
                    Err(e) => {
                        self.set_up(&self.cmd_up, false, &e);
                        next_try = Instant::now() + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
            let Some(c) = con.as_mut() else {
                for job in batch {
                    self.unavailable(handle, job);
                }
                continue;
            };
            let mut result = Ok(());
            if !batch.is_empty() {
                result = self.run_batch(c, handle, batch);
            }
            if result.is_ok() && Instant::now() >= next_tick {
                next_tick = Instant::now() + tick;
                result = self.refresh(c);
            } else if result.is_ok() && !self.up() {
                result = c.ping();
            }
            if let Err(e) = result {
                con = None;
                self.set_up(&self.cmd_up, false, &e);
                next_try = Instant::now();
            }
        }
    }

    fn run_batch(
        &self,
        con: &mut Conn,
        handle: &Handle,
        batch: Vec<Job>,
    ) -> redis::RedisResult<()> {
        // One command per job, in order (`None`: a command no job waits for).
        let mut cmds = Vec::with_capacity(batch.len());
        let mut queued: Vec<Option<Job>> = Vec::with_capacity(batch.len());
        let mut rooms = Vec::new();
        let publish = self.publish_cmd();
        let now = unix_ms();
        for job in batch {
            match &job {
                Job::Message {
                    room, from, text, ..
                } => {
                    let (head, tail) = message_parts(room, from, text, now);
                    let floor = lock(&self.last_seq).get(room).copied().unwrap_or(0);
                    cmds.push(
                        evalsha(
                            &self.scripts.message,
                            &[
                                &room_key(room, "seq"),
                                &room_key(room, "history"),
                                &room_channel(room),
                            ],
                        )
                        .arg(head)
                        .arg(tail)
                        .arg(self.options.history)
                        .arg(self.options.history_ttl.as_secs().max(1))
                        .arg(floor)
                        .arg(publish)
                        .clone(),
                    );
                }
                Job::Private { from, to, text, .. } => {
                    let message = private_json(from, to, text, now);
                    let mut cmd = redis::cmd(publish);
                    cmd.arg(nick_channel(to)).arg(format!("d 0 0\n{message}"));
                    cmds.push(cmd);
                }
                Job::Join {
                    room,
                    nick,
                    since,
                    token,
                    ..
                } => {
                    let presence = if *token == 0 {
                        String::new()
                    } else {
                        let p = json!({"type": "presence", "room": room, "event": "join", "nick": nick});
                        format!("p 0 {token}\n{p}")
                    };
                    let ttl = self.options.presence_ttl;
                    cmds.push(
                        evalsha(
                            &self.scripts.join,
                            &[
                                &room_key(room, "seq"),
                                &room_key(room, "history"),
                                &room_key(room, "members"),
                                &room_channel(room),
                            ],
                        )
                        .arg(self.member(nick))
                        .arg(nick)
                        .arg(now + ttl.as_millis() as u64)
                        .arg(now)
                        .arg(since.map_or(-1, |s| s as i64))
                        .arg(self.options.history)
                        .arg(publish)
                        .arg(presence)
                        .arg(ttl.as_secs() * 4 + 1)
                        .clone(),
                    );
                    // Listed (a command of its own: the rooms key is in another slot).
                    cmds.push(listed(room, now + ttl.as_millis() as u64));
                    queued.push(None);
                }
                Job::Leave { room, nick } => {
                    let p =
                        json!({"type": "presence", "room": room, "event": "leave", "nick": nick});
                    cmds.push(
                        evalsha(
                            &self.scripts.leave,
                            &[&room_key(room, "members"), &room_channel(room)],
                        )
                        .arg(self.member(nick))
                        .arg(nick)
                        .arg(now)
                        .arg(publish)
                        .arg(format!("p 0 0\n{p}"))
                        .clone(),
                    );
                }
                Job::Rooms { .. } => {
                    rooms.push(job);
                    continue;
                }
                Job::Ping => {
                    // (Not in a pipeline: a cluster's does not take PING.)
                    if let Err(e) = con.ping() {
                        for job in queued.into_iter().flatten().chain(rooms) {
                            self.unavailable(handle, job);
                        }
                        return Err(e);
                    }
                    continue;
                }
            }
            // (A join's `listed` went in after its script: its job goes first.)
            let at = queued.len() - usize::from(matches!(job, Job::Join { .. }));
            queued.insert(at, Some(job));
        }
        let results = match con.pipeline(cmds) {
            Ok(r) => r,
            Err(e) => {
                for job in queued.into_iter().flatten().chain(rooms) {
                    self.unavailable(handle, job);
                }
                return Err(e);
            }
        };
        for (job, result) in queued.into_iter().zip(results) {
            if let Some(job) = job {
                self.answer(handle, job, result);
            }
        }
        for job in rooms {
            if let Job::Rooms { origin } = &job {
                match self.listing(con) {
                    Ok(list) => {
                        self.send(handle, origin, json!({"type": "rooms", "rooms": list}));
                    }
                    Err(e) => {
                        self.unavailable(handle, job);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Answers a job from its command's result.
    fn answer(&self, handle: &Handle, job: Job, result: redis::RedisResult<RValue>) {
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                log::warn!("redis: a command failed: {e}");
                return self.unavailable(handle, job);
            }
        };
        match job {
            Job::Message { origin, .. } => {
                self.metrics.room_messages.inc();
                if let Sender::Api(id) = origin {
                    let response = match value {
                        RValue::Int(seq) => {
                            self.metrics.api_publishes.inc();
                            HttpResponse::new(200).json(json!({ "seq": seq }).to_string())
                        }
                        _ => HttpResponse::new(503)
                            .json(json!({"error": "a bad answer from Redis"}).to_string()),
                    };
                    let _ = handle.respond_http(id, response);
                }
            }
            Job::Private {
                from,
                to,
                text,
                origin,
            } => {
                if matches!(value, RValue::Int(0)) {
                    self.fail(
                        handle,
                        &origin,
                        "no_such_user",
                        &format!("no one called {to} is online"),
                    );
                } else if to != from {
                    let message: Value =
                        serde_json::from_str(&private_json(&from, &to, &text, unix_ms()))
                            .unwrap_or(Value::Null);
                    self.send(handle, &origin, message);
                }
            }
            Job::Join {
                room,
                origin,
                token,
                ..
            } => {
                let Some((latest, first, mut members, history, recovered)) = join_result(&value)
                else {
                    lock(&self.except).remove(&token);
                    return self.fail(handle, &origin, "unavailable", "a bad answer from Redis");
                };
                if !first {
                    lock(&self.except).remove(&token);
                }
                members.sort();
                let history: Vec<Value> = history
                    .iter()
                    .filter_map(|m| serde_json::from_str(m).ok())
                    .collect();
                let mut answer = json!({
                    "type": "joined",
                    "room": room,
                    "members": members,
                    "history": history,
                    "seq": latest,
                });
                if let (Some(r), Some(obj)) = (recovered, answer.as_object_mut()) {
                    obj.insert("recovered".into(), r.into());
                }
                self.send(handle, &origin, answer);
            }
            Job::Leave { .. } | Job::Rooms { .. } | Job::Ping => {}
        }
    }

    /// Every room with members on some node, with its member count (distinct nicks).
    fn listing(&self, con: &mut Conn) -> redis::RedisResult<Vec<Value>> {
        let now = unix_ms();
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(ROOMS_KEY)
            .arg("-inf")
            .arg(format!("({now}"))
            .query::<RValue>(con.like())?;
        let names: Vec<String> = redis::cmd("ZRANGE")
            .arg(ROOMS_KEY)
            .arg(0)
            .arg(999)
            .query(con.like())?;
        let cmds = names
            .iter()
            .map(|name| {
                let mut cmd = redis::cmd("ZRANGEBYSCORE");
                cmd.arg(room_key(name, "members")).arg(now).arg("+inf");
                cmd
            })
            .collect();
        let members = con
            .pipeline(cmds)?
            .into_iter()
            .map(|r| r.and_then(|v| Ok(redis::from_redis_value::<Vec<String>>(v)?)))
            .collect::<redis::RedisResult<Vec<Vec<String>>>>()?;
        let mut rooms: Vec<(String, usize)> = names
            .into_iter()
            .zip(members)
            .map(|(name, entries)| {
                let nicks: HashSet<&str> = entries
                    .iter()
                    .filter_map(|e| e.rsplit_once('\n').map(|(n, _)| n))
                    .collect();
                (name, nicks.len())
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        rooms.sort();
        Ok(rooms
            .into_iter()
            .map(|(room, members)| json!({"room": room, "members": members}))
            .collect())
    }

    /// Writes this node's presence entries (expiring after `--presence-ttl`), sweeps the
    /// expired ones of every room this node has members in (publishing their `leave`), and
    /// keeps those rooms' history alive.
    fn refresh(&self, con: &mut Conn) -> redis::RedisResult<()> {
        let rooms: Vec<(String, Vec<String>)> = {
            let hub = lock(&self.hub);
            hub.rooms
                .iter()
                .filter(|(_, r)| !r.members.is_empty())
                .map(|(name, r)| (name.clone(), r.nicks()))
                .collect()
        };
        if rooms.is_empty() {
            return con.ping();
        }
        let now = unix_ms();
        let ttl = self.options.presence_ttl;
        let expiry = now + ttl.as_millis() as u64;
        let mut cmds = Vec::with_capacity(2 * rooms.len());
        for (room, nicks) in &rooms {
            let mut cmd = evalsha(
                &self.scripts.refresh,
                &[
                    &room_key(room, "members"),
                    &room_channel(room),
                    &room_key(room, "seq"),
                    &room_key(room, "history"),
                ],
            );
            cmd.arg(expiry)
                .arg(now)
                .arg(self.options.history_ttl.as_secs().max(1))
                .arg(self.publish_cmd())
                .arg(room)
                .arg(0)
                .arg(ttl.as_secs() * 4 + 1);
            for nick in nicks {
                cmd.arg(self.member(nick));
            }
            cmds.push(cmd);
            cmds.push(listed(room, expiry));
        }
        for result in con.pipeline(cmds)? {
            result?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ subscriber thread

    fn subscriber_thread(&self, handle: &Handle, requests: &Receiver<Sub>) {
        let mut wanted: HashSet<String> = HashSet::new();
        let mut backoff = BACKOFF_MIN;
        let mut session = 0u64;
        loop {
            session += 1;
            let why = match self.sub_connect(session) {
                Ok(nodes) => {
                    backoff = BACKOFF_MIN;
                    // A connection for catch-ups of this session's own (Redis may have
                    // restarted since the last).
                    let mut fill = None;
                    self.session(handle, requests, &mut wanted, nodes, session, &mut fill)
                }
                Err(e) => e,
            };
            if why.kind() == io::ErrorKind::BrokenPipe && why.to_string() == "stopped" {
                return;
            }
            self.set_up(&self.sub_up, false, &why);
            let _ = self.jobs.try_send(Job::Ping);
            // Wait out the backoff, answering requests meanwhile.
            let until = Instant::now() + backoff;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match requests.recv_timeout(left) {
                    Ok(Sub::Subscribe(c)) => {
                        wanted.insert(c);
                    }
                    Ok(Sub::Unsubscribe(c)) => {
                        self.forget(&c);
                        wanted.remove(&c);
                    }
                    Ok(Sub::Join(_, job)) => self.unavailable(handle, job),
                    Ok(Sub::Push(..) | Sub::Gone(..)) => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }

    /// No more seq tracking for a channel this node leaves.
    fn forget(&self, channel: &str) {
        if let Some(room) = channel_room(channel) {
            lock(&self.last_seq).remove(room);
        }
    }

    /// A pub/sub connection to `host:port`: authenticated, `sharded` set from its version.
    fn sub_open(
        &self,
        host: &str,
        port: u16,
        settings: &redis::RedisConnectionInfo,
    ) -> io::Result<(TcpStream, Vec<u8>)> {
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other("the host has no address"))?;
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut buf = Vec::new();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
            stream.write_all(&auth.get_packed_command())?;
            if let Resp::Error(e) = read_one(&mut stream, &mut buf)? {
                return Err(io::Error::other(format!("AUTH: {e}")));
            }
        }
        stream.write_all(&redis::cmd("INFO").arg("server").get_packed_command())?;
        let info = match read_one(&mut stream, &mut buf)? {
            Resp::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(io::Error::other(format!("INFO: {other:?}"))),
        };
        self.sharded
            .store(version_major(&info) >= 7, Ordering::Relaxed);
        Ok((stream, buf))
    }

    /// Session `session`'s pub/sub connections, one per node that owns slots (one in all
    /// for a single server), each read by a thread of its own that hands what it reads to
    /// the subscriber thread as [`Sub::Push`].
    fn sub_connect(&self, session: u64) -> io::Result<Nodes> {
        let address = |c: &redis::Client| match c.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, port) => Ok((host.clone(), *port)),
            _ => Err(io::Error::other("not a TCP address")),
        };
        let mut nodes = Nodes {
            streams: Vec::new(),
            slots: Vec::new(),
        };
        let mut opened = Vec::new();
        match &self.target {
            Target::One(client) => {
                let (host, port) = address(client)?;
                let settings = client.get_connection_info().redis_settings();
                opened.push(self.sub_open(&host, port, settings)?);
            }
            Target::Cluster { seeds, .. } => {
                let mut last = io::Error::other("no node");
                let mut found = None;
                for seed in seeds {
                    let tried = address(seed).and_then(|(host, port)| {
                        let settings = seed.get_connection_info().redis_settings();
                        let (mut stream, mut buf) = self.sub_open(&host, port, settings)?;
                        stream
                            .write_all(&redis::cmd("CLUSTER").arg("SLOTS").get_packed_command())?;
                        let slots = cluster_slots(read_one(&mut stream, &mut buf)?, &host)?;
                        Ok((slots, settings.clone()))
                    });
                    match tried {
                        Ok(f) => {
                            found = Some(f);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let (slots, settings) = found.ok_or(last)?;
                let mut masters: Vec<(String, u16)> = Vec::new();
                for (start, end, master) in slots {
                    let at = match masters.iter().position(|m| *m == master) {
                        Some(at) => at,
                        None => {
                            masters.push(master);
                            masters.len() - 1
                        }
                    };
                    nodes.slots.push((start, end, at));
                }
                for (host, port) in &masters {
                    opened.push(self.sub_open(host, *port, &settings)?);
                }
            }
        }
        for (stream, buf) in opened {
            let mut reader = stream.try_clone()?;
            reader.set_read_timeout(None)?;
            let subs = self.subs.clone();
            std::thread::Builder::new()
                .name("rfc6455-redis-read".into())
                .spawn(move || {
                    let mut buf = buf;
                    loop {
                        match read_one(&mut reader, &mut buf) {
                            Ok(v) => {
                                if subs.send(Sub::Push(session, v)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = subs.send(Sub::Gone(session, e));
                                return;
                            }
                        }
                    }
                })?;
            nodes.streams.push(stream);
        }
        Ok(nodes)
    }

    fn sub_command(&self, nodes: &mut Nodes, verb: &str, channel: &str) -> io::Result<()> {
        let verb = match (self.sharded.load(Ordering::Relaxed), verb) {
            (true, "SUBSCRIBE") => "SSUBSCRIBE",
            (true, _) => "SUNSUBSCRIBE",
            (false, v) => v,
        };
        nodes
            .of(channel)
            .write_all(&redis::cmd(verb).arg(channel).get_packed_command())
    }

    /// One pub/sub session's life; returns why it ended.
    fn session(
        &self,
        handle: &Handle,
        requests: &Receiver<Sub>,
        wanted: &mut HashSet<String>,
        mut nodes: Nodes,
        session: u64,
        fill: &mut Option<Conn>,
    ) -> io::Error {
        let mut confirmed: HashSet<String> = HashSet::new();
        let mut pending: HashMap<String, Vec<Job>> = HashMap::new();
        // Our own unsubscribes not yet confirmed, per channel (any other, in a cluster, is a
        // slot that moved).
        let mut leaving: HashMap<String, usize> = HashMap::new();
        let fail_pending = |pending: &mut HashMap<String, Vec<Job>>| {
            for job in pending.drain().flat_map(|(_, jobs)| jobs) {
                self.unavailable(handle, job);
            }
        };
        for channel in wanted.iter() {
            if let Err(e) = self.sub_command(&mut nodes, "SUBSCRIBE", channel) {
                return e;
            }
        }
        self.set_up(&self.sub_up, true, &"subscribed");
        loop {
            let request = match requests.recv() {
                Ok(r) => r,
                Err(_) => return io::Error::new(io::ErrorKind::BrokenPipe, "stopped"),
            };
            let ended = match request {
                Sub::Subscribe(c) => {
                    let r = self.sub_command(&mut nodes, "SUBSCRIBE", &c);
                    wanted.insert(c);
                    r.err()
                }
                Sub::Unsubscribe(c) => {
                    let r = self.sub_command(&mut nodes, "UNSUBSCRIBE", &c);
                    self.forget(&c);
                    confirmed.remove(&c);
                    *leaving.entry(c.clone()).or_default() += 1;
                    wanted.remove(&c);
                    r.err()
                }
                Sub::Join(c, job) => {
                    if confirmed.contains(&c) {
                        self.forward(handle, job);
                    } else {
                        pending.entry(c).or_default().push(job);
                    }
                    None
                }
                Sub::Push(s, value) if s == session => {
                    let mut state = SessionState {
                        confirmed: &mut confirmed,
                        pending: &mut pending,
                        leaving: &mut leaving,
                        wanted,
                        cluster: !nodes.slots.is_empty(),
                    };
                    self.on_push(handle, value, &mut state, fill)
                }
                Sub::Gone(s, e) if s == session => Some(e),
                Sub::Push(..) | Sub::Gone(..) => None,
            };
            if let Some(e) = ended {
                fail_pending(&mut pending);
                return e;
            }
        }
    }

    fn forward(&self, handle: &Handle, job: Job) {
        if let Err(e) = self.jobs.try_send(job) {
            let job = match e {
                mpsc::TrySendError::Full(j) | mpsc::TrySendError::Disconnected(j) => j,
            };
            self.unavailable(handle, job);
        }
    }

    /// A value from Redis; `Some` ends the session (a slot moved in a cluster).
    fn on_push(
        &self,
        handle: &Handle,
        value: Resp,
        state: &mut SessionState<'_>,
        fill: &mut Option<Conn>,
    ) -> Option<io::Error> {
        let Resp::Array(Some(items)) = value else {
            if let Resp::Error(e) = value {
                log::warn!("redis: pub/sub error: {e}");
                if e.starts_with("MOVED") || e.starts_with("ASK") {
                    return Some(io::Error::other(format!("the cluster moved a slot ({e})")));
                }
            }
            return None;
        };
        let text = |i: usize| match items.get(i) {
            Some(Resp::Bulk(Some(b))) => Some(b.as_slice()),
            _ => None,
        };
        let (Some(kind), Some(channel)) = (text(0), text(1)) else {
            return None;
        };
        let channel = String::from_utf8_lossy(channel).into_owned();
        match kind {
            b"message" | b"smessage" => {
                if let Some(payload) = text(2) {
                    self.metrics.redis_received.inc();
                    self.deliver(handle, &channel, payload, fill);
                }
            }
            b"subscribe" | b"ssubscribe" => {
                state.confirmed.insert(channel.clone());
                self.catch_up(handle, &channel, fill);
                for job in state.pending.remove(&channel).unwrap_or_default() {
                    self.forward(handle, job);
                }
            }
            b"unsubscribe" | b"sunsubscribe" => match state.leaving.get_mut(&channel) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    state.leaving.remove(&channel);
                }
                None if state.cluster && state.wanted.contains(&channel) => {
                    return Some(io::Error::other(format!(
                        "the cluster moved {channel}'s slot"
                    )));
                }
                None => {}
            },
            _ => {}
        }
        None
    }

    /// A room channel (re)subscribed after this node had delivered some of the room's
    /// messages: what was published while it was not subscribed (Redis down, or this
    /// node's subscription lost), read back from the room's stream, so that listeners who
    /// never send miss nothing still held.
    fn catch_up(&self, handle: &Handle, channel: &str, fill: &mut Option<Conn>) {
        let Some(room) = channel_room(channel) else {
            return;
        };
        let mut last = lock(&self.last_seq);
        let Some(&prev) = last.get(room) else {
            return;
        };
        self.raise_floor(room, prev, fill);
        let topic = format!("#{room}");
        let mut seq = prev;
        for (s, missed) in self.gap(room, prev + 1, None, fill) {
            self.metrics.redis_gap_filled.inc();
            let _ = handle.publish(&topic, Message::text(missed));
            seq = seq.max(s);
        }
        last.insert(room.to_owned(), seq);
    }

    /// Hands a message from Redis to every loop, once, in seq order.
    fn deliver(&self, handle: &Handle, channel: &str, payload: &[u8], fill: &mut Option<Conn>) {
        let Some((head, json)) = std::str::from_utf8(payload)
            .ok()
            .and_then(|p| p.split_once('\n'))
        else {
            return;
        };
        let mut fields = head.split(' ');
        let kind = fields.next().unwrap_or("");
        let seq: u64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let token: u64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if let Some(room) = channel_room(channel) {
            let topic = format!("#{room}");
            match kind {
                "m" => {
                    let mut last = lock(&self.last_seq);
                    let prev = last.get(room).copied();
                    if prev.is_some_and(|p| seq <= p) {
                        return;
                    }
                    if let Some(p) = prev.filter(|p| seq > p + 1) {
                        for (_, missed) in self.gap(room, p + 1, Some(seq - 1), fill) {
                            self.metrics.redis_gap_filled.inc();
                            let _ = handle.publish(&topic, Message::text(missed));
                        }
                    }
                    last.insert(room.to_owned(), seq);
                    let _ = handle.publish(&topic, Message::text(json));
                }
                _ => {
                    let except = (token != 0)
                        .then(|| lock(&self.except).remove(&token))
                        .flatten();
                    let _ = match except {
                        Some(conn) => handle.publish_except(&topic, Message::text(json), conn),
                        None => handle.publish(&topic, Message::text(json)),
                    };
                }
            }
        } else if let Some(nick) = channel
            .strip_prefix("rfc6455:nick:{")
            .and_then(|n| n.strip_suffix('}'))
        {
            let _ = handle.publish(format!("@{nick}"), Message::text(json));
        }
    }

    /// See [`FLOOR_LUA`] (sent whole: this connection has no scripts loaded, and it runs
    /// once per room per resubscription).
    fn raise_floor(&self, room: &str, floor: u64, fill: &mut Option<Conn>) {
        if fill.is_none() {
            *fill = self.open().ok();
        }
        let Some(con) = fill.as_mut() else {
            return;
        };
        let raised = redis::cmd("EVAL")
            .arg(FLOOR_LUA)
            .arg(1)
            .arg(room_key(room, "seq"))
            .arg(floor)
            .arg(self.options.history_ttl.as_secs().max(1))
            .query::<i64>(con.like());
        if let Err(e) = raised {
            log::warn!("redis: could not restore room {room}'s seq floor: {e}");
            *fill = None;
        }
    }

    /// Room messages `from..=to` (to the end: `None`) with their seq, read back from the
    /// room's stream (what pub/sub lost while this node's subscription was down); what the
    /// stream no longer holds stays lost.
    fn gap(
        &self,
        room: &str,
        from: u64,
        to: Option<u64>,
        fill: &mut Option<Conn>,
    ) -> Vec<(u64, String)> {
        if fill.is_none() {
            *fill = self.open().ok();
        }
        let Some(con) = fill.as_mut() else {
            return Vec::new();
        };
        let entries: redis::RedisResult<StreamEntries> = redis::cmd("XRANGE")
            .arg(room_key(room, "history"))
            .arg(format!("{from}-0"))
            .arg(to.map_or("+".to_owned(), |t| format!("{t}-0")))
            .query(con.like());
        match entries {
            Ok(entries) => entries
                .into_iter()
                .filter_map(|(id, fields)| {
                    let seq = id.split('-').next()?.parse().ok()?;
                    fields.into_iter().next().map(|(_, m)| (seq, m))
                })
                .collect(),
            Err(e) => {
                log::warn!("redis: could not read back room {room}'s missed messages: {e}");
                *fill = None;
                Vec::new()
            }
        }
    }
}

/// A subscriber session's pub/sub connections: one per node, and which serves which slots
/// (empty for a single server).
struct Nodes {
    streams: Vec<TcpStream>,
    slots: Vec<(u16, u16, usize)>,
}

impl Nodes {
    /// The connection to the node that serves `channel`'s slot.
    fn of(&mut self, channel: &str) -> &mut TcpStream {
        let slot = slot(channel);
        let at = self
            .slots
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map_or(0, |r| r.2);
        &mut self.streams[at]
    }
}

impl Drop for Nodes {
    /// Ends the reader threads.
    fn drop(&mut self) {
        for s in &self.streams {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// What [`Bridge::on_push`] reads and changes of a session.
struct SessionState<'a> {
    confirmed: &'a mut HashSet<String>,
    pending: &'a mut HashMap<String, Vec<Job>>,
    leaving: &'a mut HashMap<String, usize>,
    wanted: &'a HashSet<String>,
    cluster: bool,
}

/// Slots `.0..=.1` and their primary (host, port).
type SlotRange = (u16, u16, (String, u16));

/// `CLUSTER SLOTS`' answer: (first slot, last slot, its primary's host and port) per range;
/// a primary that gives no host (an empty one) is at `asked`, the node that answered.
fn cluster_slots(value: Resp, asked: &str) -> io::Result<Vec<SlotRange>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad CLUSTER SLOTS answer");
    let Resp::Array(Some(ranges)) = value else {
        return Err(match value {
            Resp::Error(e) => io::Error::other(format!("CLUSTER SLOTS: {e}")),
            _ => bad(),
        });
    };
    let int = |v: Option<&Resp>| match v {
        Some(Resp::Int(i)) => u16::try_from(*i).map_err(|_| bad()),
        _ => Err(bad()),
    };
    let mut slots = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Resp::Array(Some(items)) = range else {
            return Err(bad());
        };
        let Some(Resp::Array(Some(master))) = items.get(2) else {
            return Err(bad());
        };
        let host = match master.first() {
            Some(Resp::Bulk(Some(h))) if !h.is_empty() => String::from_utf8_lossy(h).into_owned(),
            _ => asked.to_owned(),
        };
        slots.push((
            int(items.first())?,
            int(items.get(1))?,
            (host, int(master.get(1))?),
        ));
    }
    if slots.is_empty() {
        return Err(io::Error::other("the cluster serves no slots yet"));
    }
    Ok(slots)
}

/// Lists `room` among the rooms with members until `until` (unix ms).
fn listed(room: &str, until: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(ROOMS_KEY).arg(until).arg(room);
    cmd
}

/// The room of a room channel.
fn channel_room(channel: &str) -> Option<&str> {
    channel
        .strip_prefix("rfc6455:room:{")
        .and_then(|r| r.strip_suffix('}'))
}

/// A room message's JSON around its seq (which Redis puts between the two).
fn message_parts(room: &str, from: &str, text: &str, ts: u64) -> (String, String) {
    let s = |v: &str| Value::from(v).to_string();
    (
        format!("{{\"type\":\"message\",\"room\":{},\"seq\":", s(room)),
        format!(",\"from\":{},\"text\":{},\"ts\":{ts}}}", s(from), s(text)),
    )
}

fn private_json(from: &str, to: &str, text: &str, ts: u64) -> String {
    json!({"type": "private", "from": from, "to": to, "text": text, "ts": ts}).to_string()
}

/// XRANGE's answer: (id, [(field, value)]) per entry.
type StreamEntries = Vec<(String, Vec<(String, String)>)>;

type JoinResult = (u64, bool, Vec<String>, Vec<String>, Option<bool>);

fn join_result(value: &RValue) -> Option<JoinResult> {
    let RValue::Array(items) = value else {
        return None;
    };
    let int = |v: &RValue| match v {
        RValue::Int(i) => Some(*i),
        _ => None,
    };
    let strings = |v: &RValue| -> Option<Vec<String>> {
        match v {
            RValue::Array(a) => a
                .iter()
                .map(|s| match s {
                    RValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    };
    let latest = int(items.first()?)?;
    let first = int(items.get(1)?)? == 1;
    let members = strings(items.get(2)?)?;
    let history = strings(items.get(3)?)?;
    let recovered = match int(items.get(4)?)? {
        -1 => None,
        r => Some(r == 1),
    };
    Some((latest.max(0) as u64, first, members, history, recovered))
}

/// The major version in `INFO server`.
fn version_major(info: &str) -> u32 {
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------- RESP2

#[derive(Debug, PartialEq)]
enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Resp>>),
}

/// One RESP2 value from the front of `buf` and the bytes it used; `None` if incomplete.
fn parse(buf: &[u8]) -> io::Result<Option<(Resp, usize)>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad RESP from Redis");
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    if end == 0 {
        return Err(bad());
    }
    let line = std::str::from_utf8(&buf[1..end]).map_err(|_| bad())?;
    let next = end + 2;
    let number = || line.parse::<i64>().map_err(|_| bad());
    Ok(Some(match buf[0] {
        b'+' => (Resp::Simple(line.to_owned()), next),
        b'-' => (Resp::Error(line.to_owned()), next),
        b':' => (Resp::Int(number()?), next),
        b'$' => {
            let n = number()?;
            if n < 0 {
                (Resp::Bulk(None), next)
            } else {
                let n = n as usize;
                if buf.len() < next + n + 2 {
                    return Ok(None);
                }
                (Resp::Bulk(Some(buf[next..next + n].to_vec())), next + n + 2)
            }
        }
        b'*' => {
            let n = number()?;
            if n < 0 {
                (Resp::Array(None), next)
            } else {
                let mut items = Vec::with_capacity(n.min(1024) as usize);
                let mut at = next;
                for _ in 0..n {
                    match parse(&buf[at..])? {
                        Some((v, used)) => {
                            items.push(v);
                            at += used;
                        }
                        None => return Ok(None),
                    }
                }
                (Resp::Array(Some(items)), at)
            }
        }
        _ => return Err(bad()),
    }))
}

/// Reads one whole value (blocking, within the stream's read timeout).
fn read_one(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Resp> {
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some((v, used)) = parse(buf)? {
            buf.drain(..used);
            return Ok(v);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "Redis closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_values_whole_and_in_pieces() {
        let msg = b"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n:7\r\n";
        let (v, used) = parse(msg).unwrap().unwrap();
        assert_eq!(
            v,
            Resp::Array(Some(vec![
                Resp::Bulk(Some(b"smessage".to_vec())),
                Resp::Bulk(Some(b"ch".to_vec())),
                Resp::Bulk(Some(b"hello".to_vec())),
            ]))
        );
        assert_eq!(parse(&msg[used..]).unwrap().unwrap().0, Resp::Int(7));
        for cut in 0..used {
            assert!(parse(&msg[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        assert!(parse(b"?x\r\n").is_err());
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap().unwrap().0,
            Resp::Error("ERR no".into())
        );
    }

    #[test]
    fn a_message_is_json_once_redis_puts_the_seq_in() {
        let (head, tail) = message_parts("r", "a\"b", "hi\n", 5);
        let v: Value = serde_json::from_str(&format!("{head}12{tail}")).unwrap();
        assert_eq!(
            v,
            json!({"type": "message", "room": "r", "seq": 12, "from": "a\"b", "text": "hi\n", "ts": 5})
        );
        assert_eq!(version_major("# Server\r\nredis_version:7.0.15\r\n"), 7);
        assert_eq!(channel_room(&room_channel("a.b")), Some("a.b"));
    }

    #[test]
    fn slots_as_redis_computes_them() {
        // CLUSTER KEYSLOT foo / bar / hello.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("hello"), 866);
        // The hash tag alone, and an empty one is no tag.
        assert_eq!(slot("x{foo}y"), 12182);
        assert_eq!(slot(&room_channel("foo")), slot(&room_key("foo", "seq")));
        assert_ne!(slot("{}foo"), slot("foo"));
    }
}

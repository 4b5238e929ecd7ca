//! `rfc6455 serve`: a chat and notification server — rooms with history and recovery,
//! presence, private messages, JWT auth, per-connection rate limits, an HTTP publish API,
//! Prometheus metrics and a browser page — on one port, built on the library's public API
//! (topics for the fan-out, `Handler::http` for the plain routes).
//!
//! Rooms are topics (`#ROOM`); each nick listens on its own topic (`@NICK`) for private
//! messages. Room state (members, seq, history) is shared by the loops in [`hub::Hub`]; a
//! room message takes its seq and is published under the hub's lock, so every member, on
//! every loop, gets a room's messages in seq order.

mod auth;
mod bridge;
mod hub;
mod metrics;

use auth::Jwt;
use bridge::{nick_channel, room_channel, Bridge, Job, Origin, Sender};
use hub::{Hub, RoomError};
use metrics::Metrics;
use rfc6455::proto::{Accept, HttpRequest, HttpResponse, Rejection, Request};
use rfc6455::server::{
    Builder, CloseReason, Context, Handler, Heartbeat, HttpContext, Limits, Timeouts,
};
use rfc6455::{CloseCode, Config, Message};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Options of `rfc6455 serve`.
#[derive(clap::Args)]
#[command(after_help = "\
Open http://127.0.0.1:8080/ in a browser for the chat page. The WebSocket endpoint is /ws
(?nick=NAME, or ?token=JWT with --jwt-secret); /healthz, /metrics and POST /api/publish
(with --api-key) are on the same port. Every limit has a default that is safe on the
internet; the log goes to stderr (RUST_LOG=debug for more).")]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Serve over TLS (https:// and wss://) with this certificate chain (PEM); SIGHUP
    /// reloads it and the key, keeping open connections.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key for --tls-cert (PEM: RSA, ECDSA or Ed25519).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Event loop threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Messages each room keeps for `join` with `since` and for newcomers.
    #[arg(long, default_value_t = 100)]
    history: usize,
    /// Seconds a room keeps its history after its last member leaves.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    history_ttl: u64,
    /// The longest message text, in characters (longer: a `too_long` error).
    #[arg(long, default_value_t = 4096)]
    max_text: usize,
    /// Messages a connection may send per second, sustained ("10/s", "600/m").
    #[arg(long, default_value = "10/s", value_parser = parse_rate)]
    rate: f64,
    /// Messages a connection may send at once above the rate.
    #[arg(long, default_value_t = 20)]
    burst: u32,
    /// Seconds of continuous flooding (a message refused by the rate limit at least every
    /// second) after which a connection is closed with 1008.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    flood_close: u64,
    /// Origins allowed besides the page's own (same host and port); repeat for several;
    /// `*` allows every origin. Requests without Origin (not from a browser) are allowed.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// Require an HS256 JWT (`?token=` or `Authorization: Bearer`) signed with this secret;
    /// the nick comes from its `name` or `sub` claim, and a `rooms` claim limits the rooms.
    #[arg(long, value_name = "SECRET", conflicts_with = "jwt_secret_file")]
    jwt_secret: Option<String>,
    /// The same, with the secret read from a file (its bytes, a final newline removed).
    #[arg(long, value_name = "FILE")]
    jwt_secret_file: Option<std::path::PathBuf>,
    /// Enable POST /api/publish for requests with `Authorization: Bearer KEY`.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// Largest body of POST /api/publish, in bytes (413 over it).
    #[arg(long, default_value_t = 64 << 10)]
    max_body: usize,
    /// Largest WebSocket message accepted, in bytes (1009 over it).
    #[arg(long, default_value_t = 64 << 10)]
    max_message_size: usize,
    /// Most connections open at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Most connections open at once from one IP address.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    max_per_ip: u64,
    /// Most rooms at once (rooms keeping history count).
    #[arg(long, default_value_t = 10_000)]
    max_rooms: usize,
    /// Seconds of silence before the server pings (0: no heartbeat).
    #[arg(long, value_name = "SECS", default_value_t = 25)]
    ping_interval: u64,
    /// Seconds to answer a ping before the connection is dropped.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    ping_timeout: u64,
    /// Offer permessage-deflate (browsers ask for it): each room message is compressed once
    /// for every member. Costs about 47 KiB per idle connection.
    #[arg(long)]
    deflate: bool,
    /// Share rooms, presence, private messages and history with every node using the same
    /// Redis (redis://HOST:PORT[/DB], optionally redis://:PASSWORD@…; a Redis 7+ Cluster:
    /// redis+cluster://HOST:PORT[,HOST:PORT…]): run N nodes behind a load balancer as one
    /// server.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// With --redis: seconds a node's presence entries live without a refresh (refreshed
    /// every third of it): a node that dies leaves its members' presence for at most this
    /// long plus a refresh period.
    #[arg(long, value_name = "SECS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    presence_ttl: u64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let (number, per) = s.split_once('/').unwrap_or((s, "s"));
    let per = match per {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        _ => return Err(format!("{s:?}: write the rate as N/s or N/m, e.g. 10/s")),
    };
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n / per),
        _ => Err(format!(
            "{s:?}: the rate must be a number above 0, e.g. 10/s"
        )),
    }
}

/// The most rooms one connection may be in.
const MAX_ROOMS_PER_CONNECTION: usize = 32;

/// A nick: 1 to 32 printable characters, not all spaces.
pub fn valid_nick(nick: &str) -> Option<String> {
    let count = nick.chars().count();
    let printable = !nick.chars().any(char::is_control);
    ((1..=32).contains(&count) && printable && !nick.trim().is_empty()).then(|| nick.to_owned())
}

/// A room name: 1 to 64 of `A-Z a-z 0-9 _ . -`.
fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `application/x-www-form-urlencoded` value decoding (`%XX`, `+`); `None` if not UTF-8.
fn url_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The value of `key` in a query string, decoded.
fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| url_decode(v))
}

fn room_topic(room: &str) -> String {
    format!("#{room}")
}

fn nick_topic(nick: &str) -> String {
    format!("@{nick}")
}

/// Settings every loop shares.
struct Settings {
    max_text: usize,
    rate: f64,
    burst: f64,
    flood_close: Duration,
    allow_origins: Vec<String>,
    jwt: Option<Jwt>,
    api_key: Option<String>,
}

/// One handler per loop; everything in it is shared.
#[derive(Clone)]
struct Chat {
    settings: Arc<Settings>,
    hub: Arc<Mutex<Hub>>,
    metrics: Arc<Metrics>,
    /// With `--redis`: room state lives in Redis, and `hub` holds only this node's members.
    bridge: Option<Arc<Bridge>>,
}

/// A token bucket: `rate` per second, `burst` at most.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What the server keeps per connection (in its state slot).
struct Session {
    nick: String,
    rooms: Vec<String>,
    /// Rooms the token allows; `None`: any.
    allowed: Option<Vec<String>>,
    bucket: Bucket,
    /// When the current flood began, and the last message it refused.
    flood: Option<(Instant, Instant)>,
    opened: Instant,
}

/// An error reply: what went wrong, in words a person understands.
struct Failure {
    code: &'static str,
    message: String,
}

fn fail(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

impl Chat {
    fn hub(&self) -> MutexGuard<'_, Hub> {
        // A panic while holding it leaves state that is still consistent map by map.
        self.hub.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reply(&self, ctx: &mut Context<'_>, mut value: Value, reference: &Option<Value>) {
        if let (Some(r), Some(obj)) = (reference, value.as_object_mut()) {
            obj.insert("ref".into(), r.clone());
        }
        let text = value.to_string();
        self.metrics.replies_out.inc();
        self.metrics.reply_bytes_out.inc_by(text.len() as u64);
        // Fails only once the connection is closing: no one to tell.
        let _ = ctx.send_text(&text);
    }

    fn error(&self, ctx: &mut Context<'_>, failure: Failure, reference: &Option<Value>) {
        self.metrics.error(failure.code);
        let value = json!({"type": "error", "code": failure.code, "message": failure.message});
        self.reply(ctx, value, reference);
    }

    /// Who the request is from: the token's claims, or the `nick` parameter.
    fn identify(&self, request: &Request) -> Result<(String, Option<Vec<String>>), Rejection> {
        match &self.settings.jwt {
            Some(jwt) => {
                let token = query_param(request.query(), "token").or_else(|| {
                    request
                        .header("Authorization")
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .map(|t| t.trim().to_owned())
                });
                let Some(token) = token else {
                    return Err(Rejection::new(401).body(
                        "a token is required: connect to /ws?token=JWT or send Authorization: Bearer JWT\n",
                    ));
                };
                jwt.verify(&token)
                    .map(|claims| (claims.nick, claims.rooms))
                    .map_err(|why| Rejection::new(401).body(format!("{why}\n")))
            }
            None => {
                let nick = query_param(request.query(), "nick").unwrap_or_default();
                match valid_nick(&nick) {
                    Some(nick) => Ok((nick, None)),
                    None => Err(Rejection::new(400)
                        .body("choose a nick of 1 to 32 printable characters: /ws?nick=NAME\n")),
                }
            }
        }
    }

    /// The rate limit: `Ok` to go on, or the error to reply (and whether to close).
    fn admit(&self, session: &mut Session, now: Instant) -> Result<(), bool> {
        let s = &self.settings;
        let b = &mut session.bucket;
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * s.rate).min(s.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        // A flood is refusals with less than a second between them; it ends with a quiet second.
        let began = match session.flood {
            Some((began, last)) if now.duration_since(last) < Duration::from_secs(1) => began,
            _ => now,
        };
        session.flood = Some((began, now));
        Err(now.duration_since(began) >= s.flood_close)
    }

    fn command(&self, ctx: &mut Context<'_>, value: &Value) -> Result<(), Failure> {
        let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
        let reference = value.get("ref").cloned();
        let text_field = |name: &str| -> Result<&str, Failure> {
            value
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| fail("bad_request", format!("a {kind} needs a \"{name}\" string")))
        };
        let room_field = || -> Result<&str, Failure> {
            let room = text_field("room")?;
            if valid_room(room) {
                Ok(room)
            } else {
                Err(fail(
                    "bad_request",
                    "a room name is 1 to 64 letters, digits, '_', '.' or '-'",
                ))
            }
        };
        match kind {
            "join" => {
                let room = room_field()?;
                let since = match value.get("since") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or_else(|| {
                        fail("bad_request", "\"since\" is a message seq: a whole number")
                    })?),
                };
                self.join(ctx, room, since, &reference)
            }
            "leave" => {
                let room = room_field()?;
                self.leave(ctx, room)?;
                self.reply(ctx, json!({"type": "left", "room": room}), &reference);
                Ok(())
            }
            "message" => {
                let room = room_field()?;
                let text = text_field("text")?;
                self.check_text(text)?;
                self.say(ctx, room, text)
            }
            "private" => {
                let to = text_field("to")?;
                let text = text_field("text")?;
                self.check_text(text)?;
                self.private(ctx, to, text, &reference)
            }
            "rooms" if self.bridge.is_some() => {
                let origin = Origin {
                    conn: ctx.id(),
                    reference,
                };
                let bridge = self.bridge.as_ref().expect("checked");
                bridge
                    .submit(Job::Rooms { origin })
                    .map_err(|why| fail("unavailable", why))
            }
            "rooms" => {
                let rooms: Vec<Value> = {
                    let mut hub = self.hub();
                    hub.sweep(Instant::now());
                    hub.listing()
                        .into_iter()
                        .map(|(room, members)| json!({"room": room, "members": members}))
                        .collect()
                };
                self.reply(ctx, json!({"type": "rooms", "rooms": rooms}), &reference);
                Ok(())
            }
            "" => Err(fail("bad_request", "every message needs a \"type\"")),
            other => Err(fail(
                "bad_request",
                format!("unknown type {other:?}: use join, leave, message, private or rooms"),
            )),
        }
    }

    fn check_text(&self, text: &str) -> Result<(), Failure> {
        let max = self.settings.max_text;
        if text.chars().count() > max {
            return Err(fail(
                "too_long",
                format!("a message is at most {max} characters"),
            ));
        }
        Ok(())
    }

    fn join(
        &self,
        ctx: &mut Context<'_>,
        room: &str,
        since: Option<u64>,
        reference: &Option<Value>,
    ) -> Result<(), Failure> {
        let (nick, member) = {
            let session = session(ctx)?;
            if session
                .allowed
                .as_ref()
                .is_some_and(|r| !r.iter().any(|a| a == room))
            {
                return Err(fail(
                    "forbidden",
                    format!("your token does not allow room {room}"),
                ));
            }
            let member = session.rooms.iter().any(|r| r == room);
            if !member && session.rooms.len() >= MAX_ROOMS_PER_CONNECTION {
                return Err(fail(
                    "bad_request",
                    format!("a connection joins at most {MAX_ROOMS_PER_CONNECTION} rooms: leave one first"),
                ));
            }
            (session.nick.clone(), member)
        };
        if let Some(bridge) = &self.bridge {
            return self.join_redis(bridge, ctx, room, since, reference, nick, member);
        }
        let now = Instant::now();
        let topic = room_topic(room);
        let mut hub = self.hub();
        let epoch = hub.epoch;
        let replay = if member {
            // Joined already: the history again, no presence.
            let replay = hub.join(room, &nick, since, now);
            hub.leave(room, &nick, now);
            replay
        } else {
            hub.join(room, &nick, since, now)
        }
        .map_err(|RoomError::TooManyRooms| {
            fail(
                "unavailable",
                "the server has too many rooms; try again later",
            )
        })?;
        if !member {
            let _ = ctx.subscribe(&topic);
            if let Ok(session) = session(ctx) {
                session.rooms.push(room.to_owned());
            }
            if replay.first {
                let presence =
                    json!({"type": "presence", "room": room, "event": "join", "nick": nick});
                let _ = ctx.handle().publish_except(
                    &topic,
                    Message::text(presence.to_string()),
                    ctx.id(),
                );
            }
        }
        drop(hub);
        let history: Vec<Value> = replay
            .history
            .iter()
            .filter_map(|m| serde_json::from_str(m).ok())
            .collect();
        let mut answer = json!({
            "type": "joined",
            "room": room,
            "members": replay.members,
            "history": history,
            "seq": replay.latest,
            "epoch": epoch,
        });
        if let (Some(recovered), Some(obj)) = (replay.recovered, answer.as_object_mut()) {
            obj.insert("recovered".into(), recovered.into());
        }
        self.reply(ctx, answer, reference);
        Ok(())
    }

    fn leave(&self, ctx: &mut Context<'_>, room: &str) -> Result<(), Failure> {
        let session = session(ctx)?;
        let Some(i) = session.rooms.iter().position(|r| r == room) else {
            return Err(fail("not_member", format!("you are not in room {room}")));
        };
        session.rooms.swap_remove(i);
        let nick = session.nick.clone();
        let topic = room_topic(room);
        ctx.unsubscribe(&topic);
        if let Some(bridge) = &self.bridge {
            self.leave_redis(bridge, room, &nick);
            return Ok(());
        }
        let mut hub = self.hub();
        if hub.leave(room, &nick, Instant::now()) {
            let presence =
                json!({"type": "presence", "room": room, "event": "leave", "nick": nick});
            let _ = ctx
                .handle()
                .publish(&topic, Message::text(presence.to_string()));
        }
        Ok(())
    }

    fn say(&self, ctx: &mut Context<'_>, room: &str, text: &str) -> Result<(), Failure> {
        let session = session(ctx)?;
        if !session.rooms.iter().any(|r| r == room) {
            return Err(fail(
                "not_member",
                format!("join room {room} before sending to it"),
            ));
        }
        let nick = session.nick.clone();
        if let Some(bridge) = &self.bridge {
            let job = Job::Message {
                room: room.to_owned(),
                from: nick,
                text: text.to_owned(),
                origin: Sender::Ws(Origin {
                    conn: ctx.id(),
                    reference: None,
                }),
            };
            return bridge.submit(job).map_err(|why| fail("unavailable", why));
        }
        self.publish_to_room(ctx.handle(), room, &nick, text)
            .map(|_| ())
    }

    /// Gives the message its seq, keeps it, and publishes it, all under the hub's lock.
    fn publish_to_room(
        &self,
        handle: &rfc6455::server::Handle,
        room: &str,
        from: &str,
        text: &str,
    ) -> Result<u64, Failure> {
        let ts = unix_ms();
        let mut hub = self.hub();
        let (seq, json) = hub
            .record(room, Instant::now(), |seq| {
                json!({"type": "message", "room": room, "seq": seq, "from": from, "text": text, "ts": ts})
                    .to_string()
            })
            .map_err(|RoomError::TooManyRooms| {
                fail("unavailable", "the server has too many rooms; try again later")
            })?;
        self.metrics.room_messages.inc();
        handle
            .publish(room_topic(room), Message::text(&*json))
            .map_err(|_| fail("unavailable", "the server is overloaded; try again"))?;
        Ok(seq)
    }

    fn private(
        &self,
        ctx: &mut Context<'_>,
        to: &str,
        text: &str,
        reference: &Option<Value>,
    ) -> Result<(), Failure> {
        let from = session(ctx)?.nick.clone();
        if let Some(bridge) = &self.bridge {
            let job = Job::Private {
                from,
                to: to.to_owned(),
                text: text.to_owned(),
                origin: Origin {
                    conn: ctx.id(),
                    reference: reference.clone(),
                },
            };
            return bridge.submit(job).map_err(|why| fail("unavailable", why));
        }
        if !self.hub().is_online(to) {
            return Err(fail(
                "no_such_user",
                format!("no one called {to} is online"),
            ));
        }
        let message =
            json!({"type": "private", "from": from, "to": to, "text": text, "ts": unix_ms()});
        ctx.handle()
            .publish(nick_topic(to), Message::text(message.to_string()))
            .map_err(|_| fail("unavailable", "the server is overloaded; try again"))?;
        if to != from {
            self.reply(ctx, message, reference);
        }
        Ok(())
    }

    /// `POST /api/publish`; `None` with Redis: deferred, answered by the bridge with the
    /// seq (or 503), or by the server with 504 after [`bridge::API_WAIT`].
    fn api_publish(
        &self,
        ctx: &mut HttpContext<'_>,
        request: &HttpRequest,
    ) -> Option<HttpResponse> {
        let (room, from, text) = match self.api_request(request) {
            Ok(r) => r,
            Err(refused) => return Some(refused),
        };
        if let Some(bridge) = &self.bridge {
            let job = Job::Message {
                room,
                from,
                text,
                origin: Sender::Api(ctx.id()),
            };
            return match bridge.submit(job) {
                Ok(()) => {
                    ctx.defer(bridge::API_WAIT);
                    None
                }
                Err(why) => Some(HttpResponse::new(503).json(json!({"error": why}).to_string())),
            };
        }
        Some(
            match self.publish_to_room(ctx.handle(), &room, &from, &text) {
                Ok(seq) => {
                    self.metrics.api_publishes.inc();
                    HttpResponse::new(200).json(json!({"seq": seq}).to_string())
                }
                Err(f) => HttpResponse::new(503).json(json!({"error": f.message}).to_string()),
            },
        )
    }

    /// A publish request's room, sender and text, or why it is refused.
    fn api_request(&self, request: &HttpRequest) -> Result<(String, String, String), HttpResponse> {
        let Some(key) = &self.settings.api_key else {
            return Err(HttpResponse::new(404)
                .text("the publish API is off: start the server with --api-key KEY\n"));
        };
        let given = request
            .header("Authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !auth::secret_eq(given.trim().as_bytes(), key.as_bytes()) {
            return Err(
                HttpResponse::new(401).text("send the API key as Authorization: Bearer KEY\n")
            );
        }
        let bad = |why: &str| Err(HttpResponse::new(400).json(json!({"error": why}).to_string()));
        let Ok(body) = serde_json::from_slice::<Value>(request.body()) else {
            return bad("the body is not JSON");
        };
        let (Some(room), Some(text)) = (
            body.get("room").and_then(Value::as_str),
            body.get("text").and_then(Value::as_str),
        ) else {
            return bad("the body needs \"room\" and \"text\" strings");
        };
        if !valid_room(room) {
            return bad("a room name is 1 to 64 letters, digits, '_', '.' or '-'");
        }
        if self.check_text(text).is_err() {
            return bad("the text is too long");
        }
        let from = match body.get("from") {
            None => "system".to_owned(),
            Some(v) => match v.as_str().and_then(valid_nick) {
                Some(nick) => nick,
                None => return bad("\"from\" must be a nick of 1 to 32 printable characters"),
            },
        };
        Ok((room.to_owned(), from, text.to_owned()))
    }
}

fn session<'a>(ctx: &'a mut Context<'_>) -> Result<&'a mut Session, Failure> {
    ctx.state::<Session>()
        .ok_or_else(|| fail("unavailable", "this connection has no session"))
}

fn close_code(reason: &CloseReason<'_>) -> u16 {
    match reason {
        CloseReason::Closed(Some(frame)) => frame.code.0,
        CloseReason::Closed(None) => 1005,
        CloseReason::Protocol(e) => e.close_code().0,
        CloseReason::Lost => 1006,
        CloseReason::Timeout(_) => 1001,
        CloseReason::Overflow { .. } => 1008,
        _ => 1006,
    }
}

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

impl Handler for Chat {
    fn http(&mut self, ctx: &mut HttpContext<'_>, request: &HttpRequest) -> Option<HttpResponse> {
        let head = request.method() == "HEAD";
        let get = request.method() == "GET" || head;
        let page = |kind: &str, body: &str| {
            let r = HttpResponse::new(200)
                .body(kind, body)
                .header("Cache-Control", "no-cache")
                .and_then(|r| r.header("X-Content-Type-Options", "nosniff"))
                .unwrap_or_else(|_| HttpResponse::new(500));
            if head {
                r.head_only()
            } else {
                r
            }
        };
        let response = match (request.path(), get) {
            ("/", true) => page("text/html; charset=utf-8", PAGE),
            ("/app.js", true) => page("text/javascript; charset=utf-8", SCRIPT),
            ("/style.css", true) => page("text/css; charset=utf-8", STYLE),
            ("/healthz", true) => match &self.bridge {
                Some(bridge) if !bridge.up() => HttpResponse::new(503).text("redis unreachable\n"),
                _ => HttpResponse::new(200).text("ok\n"),
            },
            ("/metrics", true) => {
                self.update_gauges();
                let text = self.metrics.render(ctx.handle().topic_stats());
                HttpResponse::new(200).body("text/plain; version=0.0.4; charset=utf-8", text)
            }
            ("/api/publish", _) if request.method() == "POST" => {
                return self.api_publish(ctx, request)
            }
            // A plain GET of the WebSocket endpoint: answered as a failed handshake.
            ("/ws", _) => return None,
            ("/" | "/app.js" | "/style.css" | "/healthz" | "/metrics" | "/api/publish", _) => {
                HttpResponse::new(405).text("method not allowed\n")
            }
            _ => HttpResponse::new(404).text("not found\n"),
        };
        Some(response)
    }

    fn open(&mut self, ctx: &mut Context<'_>, request: &Request) -> Result<Accept, Rejection> {
        if request.path() != "/ws" {
            return Err(Rejection::new(404).body("the WebSocket endpoint is /ws\n"));
        }
        if !auth::origin_allowed(
            request.header("Origin"),
            request.header("Host"),
            &self.settings.allow_origins,
        ) {
            return Err(Rejection::new(403).body(
                "this origin is not allowed: start the server with --allow-origin ORIGIN\n",
            ));
        }
        let (nick, allowed) = self.identify(request)?;
        let now = Instant::now();
        {
            let mut hub = self.hub();
            if let Some(bridge) = self.bridge.as_ref().filter(|_| !hub.is_online(&nick)) {
                bridge.subscribe(nick_channel(&nick));
            }
            hub.online(&nick);
        }
        let _ = ctx.subscribe(nick_topic(&nick));
        log::info!("open {} nick={nick:?}", ctx.peer_addr());
        self.metrics.opened.inc();
        self.metrics.connections.inc();
        let welcome = json!({"type": "welcome", "nick": nick});
        ctx.set_state(Session {
            nick,
            rooms: Vec::new(),
            allowed,
            bucket: Bucket {
                tokens: self.settings.burst,
                at: now,
            },
            flood: None,
            opened: now,
        });
        self.reply(ctx, welcome, &None);
        Ok(request.accept())
    }

    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        self.metrics.messages_in.inc();
        self.metrics.bytes_in.inc_by(message.len() as u64);
        let Some(text) = message.as_text() else {
            let _ = ctx.close(
                CloseCode::UNSUPPORTED_DATA,
                "binary messages are not accepted: send JSON text",
            );
            return;
        };
        let value: Result<Value, _> = serde_json::from_str(text);
        let reference = value.as_ref().ok().and_then(|v| v.get("ref").cloned());
        let now = Instant::now();
        let verdict = match ctx.state::<Session>() {
            Some(session) => self.admit(session, now),
            None => Ok(()),
        };
        match verdict {
            Ok(()) => {}
            Err(close) => {
                self.metrics.rate_limited.inc();
                if close {
                    let _ = ctx.close(
                        CloseCode::POLICY_VIOLATION,
                        "rate limit exceeded for too long",
                    );
                    return;
                }
                let rate = self.settings.rate;
                self.error(
                    ctx,
                    fail(
                        "rate_limited",
                        format!(
                            "slow down: at most {rate} messages a second; this one was dropped"
                        ),
                    ),
                    &reference,
                );
                return;
            }
        }
        let result = match value {
            Ok(value) if value.is_object() => self.command(ctx, &value),
            Ok(_) => Err(fail("bad_json", "a message is one JSON object")),
            Err(e) => Err(fail("bad_json", format!("not JSON: {e}"))),
        };
        if let Err(failure) = result {
            self.error(ctx, failure, &reference);
        }
    }

    fn close(&mut self, ctx: &mut Context<'_>, reason: CloseReason<'_>) {
        let code = close_code(&reason);
        let Some(session) = ctx.take_state::<Session>() else {
            return;
        };
        let now = Instant::now();
        if let Some(bridge) = &self.bridge {
            for room in &session.rooms {
                self.leave_redis(bridge, room, &session.nick);
            }
            let mut hub = self.hub();
            hub.offline(&session.nick);
            if !hub.is_online(&session.nick) {
                bridge.unsubscribe(nick_channel(&session.nick));
            }
        } else {
            let mut hub = self.hub();
            for room in &session.rooms {
                if hub.leave(room, &session.nick, now) {
                    let presence = json!({"type": "presence", "room": room, "event": "leave", "nick": session.nick});
                    let _ = ctx
                        .handle()
                        .publish(room_topic(room), Message::text(presence.to_string()));
                }
            }
            hub.offline(&session.nick);
        }
        self.metrics.connections.dec();
        self.metrics.closed(code);
        log::info!(
            "close {} nick={:?} after {:.1}s: {reason}",
            ctx.peer_addr(),
            session.nick,
            now.duration_since(session.opened).as_secs_f64()
        );
    }
}

impl Chat {
    /// `join` with `--redis`: subscribe here first (so no live message is missed), then let
    /// the bridge read members and history once the node's Redis subscription is in place.
    #[allow(clippy::too_many_arguments)]
    fn join_redis(
        &self,
        bridge: &Bridge,
        ctx: &mut Context<'_>,
        room: &str,
        since: Option<u64>,
        reference: &Option<Value>,
        nick: String,
        member: bool,
    ) -> Result<(), Failure> {
        if !bridge.up() {
            return Err(fail(
                "unavailable",
                "the server cannot reach Redis; try again shortly",
            ));
        }
        let token = if member {
            0
        } else {
            bridge.presence_token(ctx.id())
        };
        let job = Job::Join {
            room: room.to_owned(),
            nick: nick.clone(),
            since,
            token,
            origin: Origin {
                conn: ctx.id(),
                reference: reference.clone(),
            },
        };
        {
            let mut hub = self.hub();
            if !member {
                let replay = hub.join(room, &nick, None, Instant::now()).map_err(
                    |RoomError::TooManyRooms| {
                        bridge.forget_token(token);
                        fail(
                            "unavailable",
                            "the server has too many rooms; try again later",
                        )
                    },
                )?;
                let alone = hub.rooms.get(room).is_some_and(|r| r.members.len() == 1);
                if replay.first && alone {
                    bridge.subscribe(room_channel(room));
                }
            }
            // Under the hub's lock: after this room's subscribe, before any unsubscribe.
            bridge.join(job).map_err(|why| fail("unavailable", why))?;
        }
        if !member {
            let _ = ctx.subscribe(room_topic(room));
            if let Ok(session) = session(ctx) {
                session.rooms.push(room.to_owned());
            }
        }
        Ok(())
    }

    /// A connection of `nick` left `room` (or closed) with `--redis`.
    fn leave_redis(&self, bridge: &Bridge, room: &str, nick: &str) {
        let mut hub = self.hub();
        if hub.leave(room, nick, Instant::now()) {
            // If Redis is down, the entry expires and the sweep says `leave`.
            let _ = bridge.submit(Job::Leave {
                room: room.to_owned(),
                nick: nick.to_owned(),
            });
        }
        if hub.rooms.get(room).is_some_and(|r| r.members.is_empty()) {
            hub.rooms.remove(room);
            bridge.unsubscribe(room_channel(room));
        }
    }

    fn update_gauges(&self) {
        let hub = self.hub();
        let listing = hub.listing();
        self.metrics.rooms.set(listing.len() as i64);
        self.metrics
            .memberships
            .set(listing.iter().map(|(_, n)| *n as i64).sum());
    }
}

/// Runs the command.
pub fn run(args: Args) -> ExitCode {
    init_logging();
    let jwt = match (&args.jwt_secret, &args.jwt_secret_file) {
        (Some(secret), _) => Some(Jwt::new(secret.as_bytes().to_vec())),
        (None, Some(path)) => match std::fs::read(path) {
            Ok(mut bytes) => {
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                Some(Jwt::new(bytes))
            }
            Err(e) => {
                eprintln!("rfc6455 serve: --jwt-secret-file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        (None, None) => None,
    };
    if jwt.is_some() && args.jwt_secret.as_deref().is_some_and(|s| s.len() < 16) {
        eprintln!("rfc6455 serve: --jwt-secret: use at least 16 bytes (32 random bytes are best)");
        return ExitCode::from(2);
    }
    let settings = Settings {
        max_text: args.max_text,
        rate: args.rate,
        burst: f64::from(args.burst.max(1)),
        flood_close: Duration::from_secs(args.flood_close),
        allow_origins: args.allow_origins.clone(),
        jwt,
        api_key: args.api_key.clone(),
    };
    let metrics = Arc::new(Metrics::new(args.redis.is_some()));
    let hub = Arc::new(Mutex::new(if args.redis.is_some() {
        // Only this node's members: history and seq live in Redis.
        Hub::new(0, Duration::ZERO, args.max_rooms.max(1))
    } else {
        Hub::new(
            args.history,
            Duration::from_secs(args.history_ttl),
            args.max_rooms.max(1),
        )
    }));
    let bridge = match &args.redis {
        None => None,
        Some(url) => {
            let options = bridge::Options {
                history: args.history,
                history_ttl: Duration::from_secs(args.history_ttl),
                presence_ttl: Duration::from_secs(args.presence_ttl),
            };
            match Bridge::new(url, options, metrics.clone(), hub.clone()) {
                Ok(b) => Some(b),
                Err(e) => {
                    eprintln!("rfc6455 serve: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let chat = Chat {
        settings: Arc::new(settings),
        hub,
        metrics,
        bridge: bridge.clone(),
    };
    let mut config = Config::default();
    config.max_message_size = args.max_message_size;
    config.max_frame_size = args.max_message_size;
    let mut limits = Limits::default();
    limits.max_connections = args.max_connections as usize;
    limits.max_connections_per_ip = args.max_per_ip as usize;
    limits.max_http_body = args.max_body;
    limits.max_subscriptions = MAX_ROOMS_PER_CONNECTION + 1;
    let mut timeouts = Timeouts::default();
    timeouts.heartbeat = (args.ping_interval > 0).then(|| {
        Heartbeat::new(
            Duration::from_secs(args.ping_interval),
            Duration::from_secs(args.ping_timeout.max(1)),
        )
    });
    let mut builder = Builder::new();
    let secure = args.tls_cert.is_some();
    match (&args.tls_cert, &args.tls_key) {
        #[cfg(feature = "tls")]
        (Some(cert), Some(key)) => match rfc6455::tls::TlsConfig::from_pem_files(cert, key) {
            Ok(tls) => builder = builder.tls(tls).listen_tls(args.listen.clone()),
            Err(e) => {
                eprintln!("rfc6455 serve: --tls-cert/--tls-key: {e}");
                return ExitCode::from(2);
            }
        },
        #[cfg(not(feature = "tls"))]
        (Some(_), _) => {
            eprintln!("rfc6455 serve: --tls-cert: this build has no tls feature; rebuild with it");
            return ExitCode::from(2);
        }
        _ => builder = builder.listen(args.listen.clone()),
    }
    builder = builder
        .threads(args.threads)
        .config(config)
        .limits(limits)
        .timeouts(timeouts);
    if args.deflate {
        builder = builder.deflate(rfc6455::proto::deflate::DeflateConfig::default());
    }
    let server = match builder.bind(chat) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("rfc6455 serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(bridge) = &bridge {
        if let Err(e) = bridge.start(server.handle()) {
            eprintln!("rfc6455 serve: cannot start the Redis bridge: {e}");
            return ExitCode::FAILURE;
        }
    }
    let addr: SocketAddr = server.local_addrs()[0];
    let (http, ws) = if secure {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    println!(
        "rfc6455 serve: listening on {http}://{addr}/ (WebSocket at {ws}://{addr}/ws, {} threads)",
        server.threads()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rfc6455 serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _ = env_logger::Builder::from_env(env)
        .format_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_rates_and_queries() {
        assert!(
            valid_room("lobby") && valid_room("a.b-c_9") && !valid_room("") && !valid_room("a b")
        );
        assert!(!valid_room(&"x".repeat(65)) && valid_room(&"x".repeat(64)));
        assert!(
            valid_nick("Ann B").is_some() && valid_nick("").is_none() && valid_nick("  ").is_none()
        );
        assert!(valid_nick(&"é".repeat(32)).is_some() && valid_nick(&"é".repeat(33)).is_none());
        assert!(valid_nick("a\nb").is_none());
        assert_eq!(parse_rate("10/s"), Ok(10.0));
        assert_eq!(parse_rate("600/m"), Ok(10.0));
        assert!(
            parse_rate("0/s").is_err() && parse_rate("x").is_err() && parse_rate("1/h").is_err()
        );
        assert_eq!(
            query_param(Some("a=1&nick=Ann%20B+C"), "nick").as_deref(),
            Some("Ann B C")
        );
        assert_eq!(query_param(Some("nick=%ff"), "nick"), None);
        assert_eq!(query_param(Some("nick=%4"), "nick"), None);
        assert_eq!(query_param(None, "nick"), None);
    }
}

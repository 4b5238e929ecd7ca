//! `/metrics`: Prometheus text format through the `prometheus-client` crate.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rfc6455::server::TopicStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

pub struct Metrics {
    registry: Registry,
    /// One scrape at a time: catching up the server's counters reads then adds.
    scrape: std::sync::Mutex<()>,
    pub connections: Gauge,
    pub opened: Counter,
    pub closed: Family<CodeLabel, Counter>,
    pub messages_in: Counter,
    pub bytes_in: Counter,
    /// Direct replies (welcome, joined, errors, ...).
    pub replies_out: Counter,
    pub reply_bytes_out: Counter,
    /// Published deliveries (room messages, presence, private), from the server's topic stats.
    deliveries_out: Counter,
    delivery_bytes_out: Counter,
    slow_closed: Counter,
    pub rooms: Gauge,
    pub memberships: Gauge,
    pub room_messages: Counter,
    pub errors: Family<CodeLabel, Counter>,
    pub rate_limited: Counter,
    pub api_publishes: Counter,
    /// With `--redis`: 1 while the bridge reaches Redis (commands and subscriptions).
    pub redis_up: Gauge,
    /// With `--redis`: times Redis became unreachable.
    pub redis_outages: Counter,
    /// With `--redis`: messages received from Redis pub/sub (each handed to every loop once).
    pub redis_received: Counter,
    /// With `--redis`: messages recovered from a room's stream after a gap in pub/sub.
    pub redis_gap_filled: Counter,
}

impl Metrics {
    pub fn new(redis: bool) -> Metrics {
        let mut registry = Registry::with_prefix("rfc6455_serve");
        let m = Metrics {
            registry: Registry::default(),
            scrape: std::sync::Mutex::new(()),
            connections: Gauge::default(),
            opened: Counter::default(),
            closed: Family::default(),
            messages_in: Counter::default(),
            bytes_in: Counter::default(),
            replies_out: Counter::default(),
            reply_bytes_out: Counter::default(),
            deliveries_out: Counter::default(),
            delivery_bytes_out: Counter::default(),
            slow_closed: Counter::default(),
            rooms: Gauge::default(),
            memberships: Gauge::default(),
            room_messages: Counter::default(),
            errors: Family::default(),
            rate_limited: Counter::default(),
            api_publishes: Counter::default(),
            redis_up: Gauge::default(),
            redis_outages: Counter::default(),
            redis_received: Counter::default(),
            redis_gap_filled: Counter::default(),
        };
        let r = &mut registry;
        r.register(
            "connections",
            "WebSocket connections open",
            m.connections.clone(),
        );
        r.register(
            "connections_opened",
            "WebSocket connections accepted",
            m.opened.clone(),
        );
        r.register(
            "connections_closed",
            "WebSocket connections ended, by close code (1006: lost)",
            m.closed.clone(),
        );
        r.register(
            "messages_in",
            "WebSocket messages received",
            m.messages_in.clone(),
        );
        r.register(
            "bytes_in",
            "Payload bytes of the messages received",
            m.bytes_in.clone(),
        );
        r.register(
            "replies_out",
            "Messages sent to one connection",
            m.replies_out.clone(),
        );
        r.register(
            "reply_bytes_out",
            "Payload bytes of those",
            m.reply_bytes_out.clone(),
        );
        r.register(
            "deliveries_out",
            "Published messages (room messages, presence, private) queued to a connection: the fan-out",
            m.deliveries_out.clone(),
        );
        r.register(
            "delivery_bytes_out",
            "Their bytes on the wire",
            m.delivery_bytes_out.clone(),
        );
        r.register(
            "slow_closed",
            "Connections closed (1008) for not reading what was published to them",
            m.slow_closed.clone(),
        );
        r.register("rooms", "Rooms with members", m.rooms.clone());
        r.register(
            "memberships",
            "Room memberships (nick in a room)",
            m.memberships.clone(),
        );
        r.register(
            "room_messages",
            "Messages sent to rooms",
            m.room_messages.clone(),
        );
        r.register("errors", "Error replies, by code", m.errors.clone());
        r.register(
            "rate_limited",
            "Messages dropped by the per-connection rate limit",
            m.rate_limited.clone(),
        );
        r.register(
            "api_publishes",
            "Messages published through POST /api/publish",
            m.api_publishes.clone(),
        );
        if redis {
            r.register(
                "redis_up",
                "1 while Redis is reachable (commands and subscriptions), else 0",
                m.redis_up.clone(),
            );
            r.register(
                "redis_outages",
                "Times Redis became unreachable",
                m.redis_outages.clone(),
            );
            r.register(
                "redis_received",
                "Messages received from Redis pub/sub",
                m.redis_received.clone(),
            );
            r.register(
                "redis_gap_filled",
                "Room messages read back from Redis history after a gap in pub/sub",
                m.redis_gap_filled.clone(),
            );
        }
        Metrics { registry, ..m }
    }

    pub fn error(&self, code: &str) {
        self.errors
            .get_or_create(&CodeLabel { code: code.into() })
            .inc();
    }

    pub fn closed(&self, code: u16) {
        self.closed
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// The text format, after bringing the counters kept by the server up to date.
    pub fn render(&self, stats: TopicStats) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        catch_up(&self.deliveries_out, stats.delivered);
        catch_up(&self.delivery_bytes_out, stats.delivered_bytes);
        catch_up(&self.slow_closed, stats.slow_closed);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Raises `counter` to `total` (a count kept elsewhere, which only grows).
fn catch_up(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

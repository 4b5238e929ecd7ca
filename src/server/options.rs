//! The server's options: [`Timeouts`], [`Heartbeat`], [`Limits`], [`SlowSubscriber`].

use crate::proto::HandshakeLimits;
use std::time::Duration;

/// What happens to a subscriber whose queue is over [`Limits::max_publish_queue`] when a
/// message is published to it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowSubscriber {
    /// Fail the connection with 1008 ([`CloseReason::Overflow`](crate::server::CloseReason::Overflow)). The default: a
    /// subscriber that misses messages silently is worse than one that reconnects.
    #[default]
    Close,
    /// Skip the message for this subscriber and count it ([`TopicStats::dropped`](crate::server::TopicStats::dropped)).
    Drop,
}

/// Time limits. Start from [`Timeouts::default`] and change fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// A client must complete its handshake request within this. Default 10 s.
    pub handshake: Duration,
    /// Close a connection (1001, "idle timeout") when no data message arrived for this long.
    /// Default off.
    pub idle: Option<Duration>,
    /// Ping quiet peers, drop those that do not answer. Default every 30 s, 10 s to answer.
    pub heartbeat: Option<Heartbeat>,
    /// How long to wait for the peer's close frame after sending one, and then for its EOF
    /// after shutting down the write side. Default 5 s.
    pub close: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            handshake: Duration::from_secs(10),
            idle: None,
            heartbeat: Some(Heartbeat::default()),
            close: Duration::from_secs(5),
        }
    }
}

/// Heartbeat: a ping after `interval` without a byte from the peer; the connection fails
/// (1001, "heartbeat timeout") if nothing arrives within `timeout` after it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Quiet time before a ping. Default 30 s.
    pub interval: Duration,
    /// Time to answer it. Default 10 s.
    pub timeout: Duration,
}

impl Heartbeat {
    /// A heartbeat with these times.
    pub fn new(interval: Duration, timeout: Duration) -> Heartbeat {
        Heartbeat { interval, timeout }
    }
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat::new(Duration::from_secs(30), Duration::from_secs(10))
    }
}

/// Resource limits. Start from [`Limits::default`] and change fields. Message and frame
/// sizes are in [`Config`](crate::Config).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Connections open at once (handshaking included), over all threads. More are answered
    /// `503 Service Unavailable` and closed. Default 10 000.
    pub max_connections: usize,
    /// Connections open at once from one IP address. More are answered
    /// `429 Too Many Requests` and closed. Default off (`usize::MAX`).
    pub max_connections_per_ip: usize,
    /// The handshake request head's size and header count (431 over them). Default 8 KiB, 64.
    pub handshake: HandshakeLimits,
    /// Stop reading a peer while this many bytes wait for it. Default 1 MiB.
    pub write_high_water: usize,
    /// A send that would queue more than this for one connection fails it (1008), and so do
    /// pongs the core queues on its own. It must leave room for the largest message you echo
    /// or send. Default 80 MiB (a 64 MiB message with room to spare).
    pub max_write_queue: usize,
    /// Commands ([`Handle::send`](crate::server::Handle::send), [`Handle::close`](crate::server::Handle::close), publishes from other loops and
    /// threads) waiting per loop. Default 65 536.
    pub mailbox: usize,
    /// A published message is not queued to a subscriber that already has this many bytes
    /// waiting for it: [`slow_subscriber`](Self::slow_subscriber) says what happens instead.
    /// Default 1 MiB.
    pub max_publish_queue: usize,
    /// What happens to a subscriber over [`max_publish_queue`](Self::max_publish_queue).
    /// Default [`SlowSubscriber::Close`].
    pub slow_subscriber: SlowSubscriber,
    /// Topics one connection may subscribe to. Default 1024.
    pub max_subscriptions: usize,
    /// The largest body of a plain HTTP request (see [`Handler::http`](crate::server::Handler::http)); a larger one is
    /// answered `413` before it is read. Default 64 KiB.
    pub max_http_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 10_000,
            max_connections_per_ip: usize::MAX,
            handshake: HandshakeLimits::default(),
            write_high_water: 1 << 20,
            max_write_queue: 80 << 20,
            mailbox: 1 << 16,
            max_publish_queue: 1 << 20,
            slow_subscriber: SlowSubscriber::Close,
            max_subscriptions: 1024,
            max_http_body: 64 << 10,
        }
    }
}

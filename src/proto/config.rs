//! Limits and options for a [`Connection`](crate::Connection).

use std::time::Duration;

/// Limits and options for one connection. Start from [`Config::default`] and change fields.
///
/// ```
/// let mut config = rfc6455::Config::default();
/// config.max_message_size = 1 << 20;
/// config.auto_pong = false;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest payload one received frame may declare; more fails with 1009 before any
    /// byte of it is buffered. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest message (all its frames together, after inflating) that is accepted; more
    /// fails with 1009 as soon as the total is known to exceed it. Default 64 MiB.
    pub max_message_size: usize,
    /// Outgoing messages larger than this are sent as several frames of at most this payload.
    /// Default 1 MiB.
    pub max_send_frame_size: usize,
    /// Answer every ping with a pong automatically. The ping is reported as an event either way.
    /// Default on.
    pub auto_pong: bool,
    /// Binary messages whose first frame declares at least this many payload bytes are handed
    /// out in pieces as they arrive ([`Event::Part`](crate::Event::Part)) instead of being
    /// collected: nothing of them is buffered, and a relay or an echo can pass each piece on
    /// while the rest is still on its way. Collected all the same: a single-frame message
    /// that lies whole in the input (it costs nothing to hand out whole), text (whose UTF-8
    /// must be checked whole) and compressed messages. A fragmented message whose first frame
    /// qualifies comes in parts, even when all its frames are in one input. Messages received
    /// in parts still count against [`max_message_size`](Self::max_message_size). Default
    /// `None`: every message is collected.
    pub stream_binary_from: Option<usize>,
    /// Timers (they run only when the driver passes the time in: see
    /// [`Connection::handle_timeout`](crate::Connection::handle_timeout)). Send a ping after
    /// this long without a byte from the peer. Default `None`: no heartbeat.
    pub ping_interval: Option<Duration>,
    /// Fail the connection (1001, "heartbeat timeout") when nothing at all arrives this long
    /// after a heartbeat ping. Default 10 s.
    pub ping_timeout: Duration,
    /// Start a close (1001, "idle timeout") when no data message arrived for this long.
    /// Default `None`.
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the peer's close frame after sending one; and how long a client
    /// waits for the server to close TCP after the close handshake. Default 5 s.
    pub close_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_send_frame_size: 1 << 20,
            auto_pong: true,
            stream_binary_from: None,
            ping_interval: None,
            ping_timeout: Duration::from_secs(10),
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
        }
    }
}

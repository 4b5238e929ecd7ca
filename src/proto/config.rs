//! Limits and options for a [`Connection`](crate::Connection).

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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_send_frame_size: 1 << 20,
            auto_pong: true,
            stream_binary_from: None,
        }
    }
}

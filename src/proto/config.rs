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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            max_send_frame_size: 1 << 20,
            auto_pong: true,
        }
    }
}

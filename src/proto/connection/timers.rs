//! The connection's timers: heartbeat (a ping after [`Config::ping_interval`] of silence,
//! failed after [`Config::ping_timeout`] without an answer), idle ([`Config::idle_timeout`]
//! without a data message starts a close), the close handshake ([`Config::close_timeout`] for
//! the peer's close), and RFC 6455 §7.1.1's end of TCP: the server closes first; a client
//! waits for it, a bounded time.
//!
//! The core has no clock: the driver passes the time in. It calls
//! [`Connection::handle_timeout`] once when the connection starts and again whenever
//! [`Connection::poll_timeout`]'s deadline passes, and sleeps until that deadline otherwise.
//! What arrives between two calls is noted (a flag, no time) and dated at the next call, so a
//! heartbeat ping goes out between one and two intervals after the last byte heard — the
//! same bound every heartbeat built on a periodic check has. Deadlines that start with an
//! event (the close handshake) are dated by asking for a call at once: `poll_timeout` then
//! returns a time already past.
//!
//! [`Config::ping_interval`]: crate::Config::ping_interval
//! [`Config::ping_timeout`]: crate::Config::ping_timeout
//! [`Config::idle_timeout`]: crate::Config::idle_timeout
//! [`Config::close_timeout`]: crate::Config::close_timeout

use super::{Connection, Role, State};
use crate::proto::close::CloseCode;
use std::time::Instant;

/// Which timer ended a connection ([`Connection::timed_out`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// No data message arrived within the idle timeout: a close (1001) was started.
    Idle,
    /// A heartbeat ping got no answer (no bytes at all) in time: failed with 1001.
    Heartbeat,
    /// The peer did not answer this side's close frame in time (or, for a client, did not
    /// close TCP after the close handshake).
    Close,
}

/// The times the timers run from; made by the first [`Connection::handle_timeout`].
#[derive(Clone, Debug)]
pub(super) struct Clock {
    /// The last time passed in.
    now: Instant,
    last_heard: Instant,
    last_message: Instant,
    ping_sent: Option<Instant>,
    /// When this side learnt the close handshake began (close sent or received).
    closing_since: Option<Instant>,
    /// When the connection reached `Closed` (a client's wait for the server's EOF).
    closed_since: Option<Instant>,
    expired: Option<TimeoutKind>,
    /// Bytes arrived since the last call (dated at the next one).
    heard: bool,
    /// A data message was handed out since the last call.
    messaged: bool,
}

impl Connection {
    /// Passes the time in: runs every timer due at `now` (a heartbeat ping, a close for the
    /// idle timeout, failing the connection for an unanswered ping or close) and notes the
    /// start of deadlines that began since the last call. Call it once when the connection
    /// starts, then whenever [`poll_timeout`](Self::poll_timeout) has passed; calling it more
    /// often does no harm. Then write out [`poll_transmit`](Self::poll_transmit) and check
    /// [`should_close_transport`](Self::should_close_transport) and
    /// [`timed_out`](Self::timed_out).
    ///
    /// ```
    /// use rfc6455::{Config, Connection};
    /// use std::time::{Duration, Instant};
    ///
    /// let mut config = Config::default();
    /// config.ping_interval = Some(Duration::from_secs(30));
    /// let mut conn = Connection::server(config);
    /// let start = Instant::now();
    /// conn.handle_timeout(start);
    /// assert_eq!(conn.poll_timeout(), Some(start + Duration::from_secs(30)));
    /// conn.handle_timeout(start + Duration::from_secs(30)); // silence: a ping goes out
    /// assert_eq!(conn.poll_transmit(), &[0x89, 0x00]);
    /// ```
    pub fn handle_timeout(&mut self, now: Instant) {
        let (idle, ping_interval, ping_timeout, close_timeout) = (
            self.config.idle_timeout,
            self.config.ping_interval,
            self.config.ping_timeout,
            self.config.close_timeout,
        );
        let (state, role) = (self.state, self.role);
        let clock = self.rare().clock.get_or_insert_with(|| {
            Box::new(Clock {
                now,
                last_heard: now,
                last_message: now,
                ping_sent: None,
                closing_since: None,
                closed_since: None,
                expired: None,
                heard: false,
                messaged: false,
            })
        });
        let now = now.max(clock.now);
        clock.now = now;
        let (heard, messaged) = (
            std::mem::take(&mut clock.heard),
            std::mem::take(&mut clock.messaged),
        );
        if heard {
            clock.last_heard = now;
            clock.ping_sent = None;
        }
        if messaged {
            clock.last_message = now;
        }
        enum Act {
            Nothing,
            Close,
            Fail,
            Ping,
            Closed,
        }
        let act = match state {
            State::Open => {
                if idle.is_some_and(|idle| now >= clock.last_message + idle) {
                    clock.expired = Some(TimeoutKind::Idle);
                    clock.closing_since = Some(now);
                    Act::Close
                } else if let Some(interval) = ping_interval {
                    match clock.ping_sent {
                        Some(sent) if now >= sent + ping_timeout => {
                            clock.expired = Some(TimeoutKind::Heartbeat);
                            clock.closed_since = Some(now);
                            Act::Fail
                        }
                        None if now >= clock.last_heard + interval => {
                            clock.ping_sent = Some(now);
                            Act::Ping
                        }
                        _ => Act::Nothing,
                    }
                } else {
                    Act::Nothing
                }
            }
            State::Closing => {
                let since = *clock.closing_since.get_or_insert(now);
                if now >= since + close_timeout {
                    clock.expired = Some(TimeoutKind::Close);
                    clock.closed_since = Some(now);
                    Act::Closed
                } else {
                    Act::Nothing
                }
            }
            State::Closed => {
                let since = *clock.closed_since.get_or_insert(now);
                if role == Role::Client && clock.expired.is_none() && now >= since + close_timeout {
                    // §7.1.1: the server should close TCP first; it has not, in time.
                    clock.expired = Some(TimeoutKind::Close);
                }
                Act::Nothing
            }
        };
        match act {
            Act::Nothing => {}
            Act::Close => {
                let _ = self.close(CloseCode::GOING_AWAY, "idle timeout");
            }
            Act::Fail => {
                let _ = self.fail(CloseCode::GOING_AWAY, "ping timeout");
            }
            Act::Ping => {
                let _ = self.ping(b"");
            }
            Act::Closed => {
                self.state = State::Closed;
                self.release_receive_buffers();
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None` when no timer runs
    /// (none configured, or before the first `handle_timeout`). A time already past means
    /// "now": a deadline has just begun and must be dated.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clock = self.rare.as_ref()?.clock.as_deref()?;
        let config = &self.config;
        match self.state {
            State::Open => {
                let mut next = None::<Instant>;
                let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
                if let Some(idle) = config.idle_timeout {
                    at(clock.last_message + idle);
                }
                if let Some(interval) = config.ping_interval {
                    match clock.ping_sent {
                        Some(sent) => at(sent + config.ping_timeout),
                        None => at(clock.last_heard + interval),
                    }
                }
                next
            }
            State::Closing => Some(
                clock
                    .closing_since
                    .map_or(clock.now, |since| since + config.close_timeout),
            ),
            State::Closed => match (self.role, clock.expired, clock.closed_since) {
                (Role::Client, None, Some(since)) => Some(since + config.close_timeout),
                (Role::Client, None, None) => Some(clock.now),
                _ => None,
            },
        }
    }

    /// Which timer ended the connection, if one did.
    pub fn timed_out(&self) -> Option<TimeoutKind> {
        self.rare.as_ref()?.clock.as_ref()?.expired
    }

    /// Notes that bytes arrived (for the heartbeat). Free without timers: one pointer test.
    #[inline]
    pub(super) fn note_heard(&mut self) {
        if let Some(clock) = self
            .rare
            .as_deref_mut()
            .and_then(|r| r.clock.as_deref_mut())
        {
            clock.heard = true;
        }
    }

    /// Notes that a data message was handed out (for the idle timeout).
    #[inline]
    pub(super) fn note_message(&mut self) {
        if let Some(clock) = self
            .rare
            .as_deref_mut()
            .and_then(|r| r.clock.as_deref_mut())
        {
            clock.messaged = true;
        }
    }

    /// A client has waited [`Config::close_timeout`](crate::Config::close_timeout) for the
    /// server to close TCP after the close handshake (or a timer ended the connection).
    pub(super) fn gave_up_waiting(&self) -> bool {
        self.timed_out()
            .is_some_and(|kind| kind != TimeoutKind::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Event};
    use std::time::Duration;

    const S: Duration = Duration::from_secs(1);

    fn config() -> Config {
        Config {
            ping_interval: Some(30 * S),
            ping_timeout: 10 * S,
            close_timeout: 5 * S,
            ..Config::default()
        }
    }

    /// A masked frame from a client.
    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        out.extend_from_slice(payload);
        out
    }

    fn drain(c: &mut Connection) -> Vec<u8> {
        let out = c.poll_transmit().to_vec();
        c.consume_transmit(out.len());
        out
    }

    #[test]
    fn a_silent_peer_is_pinged_then_failed() {
        let t0 = Instant::now();
        let mut c = Connection::server(config());
        assert_eq!(c.poll_timeout(), None, "no clock before the first call");
        c.handle_timeout(t0);
        assert_eq!(c.poll_timeout(), Some(t0 + 30 * S));
        c.handle_timeout(t0 + 29 * S);
        assert!(drain(&mut c).is_empty());
        c.handle_timeout(t0 + 30 * S);
        assert_eq!(drain(&mut c), [0x89, 0x00]);
        assert_eq!(c.poll_timeout(), Some(t0 + 40 * S));
        c.handle_timeout(t0 + 40 * S);
        assert_eq!(c.timed_out(), Some(TimeoutKind::Heartbeat));
        assert_eq!(c.state(), State::Closed);
        let out = drain(&mut c);
        assert_eq!(&out[..4], &[0x88, out[1], 0x03, 0xe9], "1001");
        assert!(c.should_close_transport());
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn any_bytes_count_as_an_answer_and_push_the_ping_back() {
        let t0 = Instant::now();
        let mut c = Connection::server(config());
        c.handle_timeout(t0);
        c.handle_timeout(t0 + 30 * S);
        assert_eq!(drain(&mut c), [0x89, 0x00]);
        c.handle_bytes(&frame(0xA, b"")).unwrap(); // the pong
        while c.poll_event().is_some() {}
        c.handle_timeout(t0 + 40 * S);
        assert_eq!(c.timed_out(), None);
        // Heard at the 40 s check: the next ping is due 30 s after it.
        assert_eq!(c.poll_timeout(), Some(t0 + 70 * S));
    }

    #[test]
    fn idle_connections_are_closed_and_an_unanswered_close_times_out() {
        let t0 = Instant::now();
        let mut cfg = config();
        cfg.ping_interval = None;
        cfg.idle_timeout = Some(60 * S);
        let mut c = Connection::server(cfg);
        c.handle_timeout(t0);
        // A ping is not a data message: it does not keep the connection from being idle.
        c.handle_bytes(&frame(0x9, b"")).unwrap();
        while c.poll_event().is_some() {}
        drain(&mut c);
        c.handle_timeout(t0 + 59 * S);
        c.handle_bytes(&frame(0x1, b"hi")).unwrap();
        assert!(matches!(c.poll_event(), Some(Event::Message(_))));
        // Handed out after the 59 s call: dated at the next one.
        c.handle_timeout(t0 + 100 * S);
        assert_eq!(c.poll_timeout(), Some(t0 + 160 * S));
        c.handle_timeout(t0 + 160 * S);
        assert_eq!(c.state(), State::Closing);
        assert_eq!(c.timed_out(), Some(TimeoutKind::Idle));
        assert_eq!(&drain(&mut c)[..4], &[0x88, 14, 0x03, 0xe9]);
        assert_eq!(c.poll_timeout(), Some(t0 + 165 * S));
        c.handle_timeout(t0 + 165 * S);
        assert_eq!(
            (c.state(), c.timed_out()),
            (State::Closed, Some(TimeoutKind::Close))
        );
        assert!(c.should_close_transport());
    }

    #[test]
    fn a_close_started_between_calls_is_dated_at_the_next_call() {
        let t0 = Instant::now();
        let mut c = Connection::server(config());
        c.handle_timeout(t0);
        c.close(CloseCode::NORMAL, "bye").unwrap();
        assert_eq!(c.poll_timeout(), Some(t0), "asks to be called now");
        c.handle_timeout(t0 + 2 * S);
        assert_eq!(c.poll_timeout(), Some(t0 + 7 * S));
    }

    #[test]
    fn a_client_waits_a_bounded_time_for_the_server_to_close_tcp() {
        let t0 = Instant::now();
        let mut c = Connection::client(config(), || [1, 2, 3, 4]);
        c.handle_timeout(t0);
        c.close(CloseCode::NORMAL, "bye").unwrap();
        c.handle_timeout(t0);
        drain(&mut c);
        // The server's close reply (unmasked).
        c.handle_bytes(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        assert!(matches!(c.poll_event(), Some(Event::Close(_))));
        assert_eq!(c.state(), State::Closed);
        assert!(!c.should_close_transport(), "the server closes first");
        c.handle_timeout(t0 + S);
        assert_eq!(c.poll_timeout(), Some(t0 + 6 * S));
        c.handle_timeout(t0 + 6 * S);
        assert!(c.should_close_transport(), "waited long enough");
        assert_eq!(c.timed_out(), Some(TimeoutKind::Close));
    }

    #[test]
    fn without_timers_nothing_is_due() {
        let t0 = Instant::now();
        let mut c = Connection::server(Config::default());
        c.handle_timeout(t0);
        assert_eq!(c.poll_timeout(), None);
        c.handle_timeout(t0 + 1000 * S);
        assert!(drain(&mut c).is_empty());
    }
}

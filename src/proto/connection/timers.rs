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
//! Each rule is written once, in [`Timers`] (the state, in milliseconds from the driver's
//! epoch, 24 bytes) and [`Connection::apply_timer`] (what a rule does to the connection).
//! `handle_timeout` drives them from the connection's own boxed [`Clock`]; the server's
//! event loop drives the same two with its own clock, keeping one `Timers` inline per
//! connection, dating what it reads with the time it took once per wakeup (instead of a flag
//! dated at the next call), and one heap of the deadlines [`Timers::deadline`] gives. A
//! heartbeat failure closes with 1001 "heartbeat timeout", an idle one with 1001 "idle
//! timeout", for every driver.
//!
//! [`Config::ping_interval`]: crate::Config::ping_interval
//! [`Config::ping_timeout`]: crate::Config::ping_timeout
//! [`Config::idle_timeout`]: crate::Config::idle_timeout
//! [`Config::close_timeout`]: crate::Config::close_timeout

use super::{Connection, Role, State};
use crate::proto::close::CloseCode;
use crate::proto::Config;
use std::time::{Duration, Instant};

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

/// A duration in the timers' milliseconds, capped at 2^62 ms (146 million years, as good as
/// never) so that adding one to a time cannot overflow.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).map_or(NEVER, |t| t.min(NEVER))
}

const NEVER: u64 = 1 << 62;

/// The timers' limits in milliseconds ([`ms`]): [`Config`]'s for a [`Connection`] driven
/// through [`Connection::handle_timeout`], the server's `Timeouts` for its event loop.
#[derive(Copy, Clone, Debug)]
pub(crate) struct TimerLimits {
    pub(crate) idle: Option<u64>,
    pub(crate) ping_interval: Option<u64>,
    pub(crate) ping_timeout: u64,
    pub(crate) close: u64,
}

impl TimerLimits {
    fn of(config: &Config) -> TimerLimits {
        TimerLimits {
            idle: config.idle_timeout.map(ms),
            ping_interval: config.ping_interval.map(ms),
            ping_timeout: ms(config.ping_timeout),
            close: ms(config.close_timeout),
        }
    }
}

/// `since` is when the unanswered heartbeat ping went out (else when bytes were last heard).
const PINGED: u8 = 1;
/// `since` is when the close began.
const CLOSING: u8 = 2;
/// `last` is when the connection reached `Closed`.
const CLOSED: u8 = 4;
/// Bytes arrived since the last [`Connection::handle_timeout`] (dated at the next one).
const HEARD: u8 = 8;
/// A data message was handed out since the last [`Connection::handle_timeout`].
const MESSAGED: u8 = 16;

/// Every timer rule's state, in 24 bytes: times are milliseconds from an epoch the driver
/// chooses, and each field holds the one time the connection's state needs. A
/// [`Connection`] keeps one in its [`Clock`] (made by the first `handle_timeout`); the
/// server's event loop keeps one inline in each connection's slot, dates arrivals with the
/// time it read once per wakeup, and keeps its own heap of the deadlines this computes.
#[derive(Clone, Debug)]
pub(crate) struct Timers {
    /// Open: when bytes were last heard, or when the unanswered ping went out (`PINGED`).
    /// Closing and Closed: when the close began (`CLOSING`).
    since: u64,
    /// Open: when the last data message was handed out. Closed: when it closed (`CLOSED`).
    last: u64,
    flags: u8,
    expired: Option<TimeoutKind>,
}

/// What a timer asks the driver to do to the connection ([`Connection::apply_timer`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    /// The heartbeat: send a ping.
    Ping,
    /// The idle timeout: start a close (1001, "idle timeout").
    Idle,
    /// The ping was not answered: fail (1001, "heartbeat timeout").
    Heartbeat,
    /// The close was not answered: the connection is closed.
    Close,
}

impl Timers {
    /// Timers for a connection that starts (or is accepted) at `now`.
    pub(crate) fn new(now: u64) -> Timers {
        Timers {
            since: now,
            last: now,
            flags: 0,
            expired: None,
        }
    }

    /// Bytes arrived at `now`: any byte answers a heartbeat ping.
    #[inline]
    pub(crate) fn heard(&mut self, now: u64) {
        if self.flags & CLOSING == 0 {
            self.since = now;
            self.flags &= !PINGED;
        }
    }

    /// A data message was handed out at `now` (the idle timeout counts from the last).
    #[inline]
    pub(crate) fn message(&mut self, now: u64) {
        if self.flags & CLOSED == 0 {
            self.last = now;
        }
    }

    /// When the close began, once dated ([`date`](Self::date)).
    pub(crate) fn closing_since(&self) -> Option<u64> {
        (self.flags & CLOSING != 0).then_some(self.since)
    }

    /// Dates the deadlines that start with a state: the close (Closing or Closed) and, for
    /// a client, the wait for the server's EOF (Closed). Idempotent.
    pub(crate) fn date(&mut self, state: State, now: u64) {
        if state != State::Open && self.flags & CLOSING == 0 {
            self.since = now;
            self.flags = (self.flags | CLOSING) & !PINGED;
        }
        if state == State::Closed && self.flags & CLOSED == 0 {
            self.last = now;
            self.flags |= CLOSED;
        }
    }

    /// Runs the rules at `now` for a connection in `state`: what is due, if anything. The
    /// driver then applies it to the connection ([`Connection::apply_timer`]).
    pub(crate) fn step(&mut self, state: State, role: Role, limits: &TimerLimits, now: u64) -> Due {
        self.date(state, now);
        match state {
            State::Open => {
                if limits.idle.is_some_and(|idle| now >= self.last + idle) {
                    self.expired = Some(TimeoutKind::Idle);
                    self.date(State::Closing, now);
                    Due::Idle
                } else if let Some(interval) = limits.ping_interval {
                    if self.flags & PINGED != 0 {
                        if now >= self.since + limits.ping_timeout {
                            self.expired = Some(TimeoutKind::Heartbeat);
                            self.date(State::Closed, now);
                            Due::Heartbeat
                        } else {
                            Due::Nothing
                        }
                    } else if now >= self.since + interval {
                        self.since = now;
                        self.flags |= PINGED;
                        Due::Ping
                    } else {
                        Due::Nothing
                    }
                } else {
                    Due::Nothing
                }
            }
            State::Closing => {
                if now >= self.since + limits.close {
                    self.expired = Some(TimeoutKind::Close);
                    self.date(State::Closed, now);
                    Due::Close
                } else {
                    Due::Nothing
                }
            }
            State::Closed => {
                if role == Role::Client && self.expired.is_none() && now >= self.last + limits.close
                {
                    // §7.1.1: the server should close TCP first; it has not, in time.
                    self.expired = Some(TimeoutKind::Close);
                }
                Due::Nothing
            }
        }
    }

    /// When [`step`](Self::step) is next due for a connection in `state`; `now` when a
    /// deadline has begun but is not dated yet, `None` when no timer runs.
    pub(crate) fn deadline(
        &self,
        state: State,
        role: Role,
        limits: &TimerLimits,
        now: u64,
    ) -> Option<u64> {
        match state {
            State::Open => {
                let idle = limits.idle.map(|idle| self.last + idle);
                let heartbeat = limits.ping_interval.map(|interval| {
                    if self.flags & PINGED != 0 {
                        self.since + limits.ping_timeout
                    } else {
                        self.since + interval
                    }
                });
                match (idle, heartbeat) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Closing => Some(self.closing_since().map_or(now, |t| t + limits.close)),
            State::Closed => match (role, self.expired, self.flags & CLOSED != 0) {
                (Role::Client, None, true) => Some(self.last + limits.close),
                (Role::Client, None, false) => Some(now),
                _ => None,
            },
        }
    }
}

/// The timers of a [`Connection`] driven through [`Connection::handle_timeout`]: the epoch
/// is the first call's time. 48 bytes, boxed, so a connection without timers pays one
/// pointer in its rarely used state.
#[derive(Clone, Debug)]
pub(super) struct Clock {
    epoch: Instant,
    /// The last time passed in, in milliseconds from `epoch`.
    now: u64,
    timers: Timers,
}

impl Connection {
    /// Passes the time in: runs every timer due at `now` (a heartbeat ping, a close for the
    /// idle timeout, failing the connection for an unanswered ping or close) and notes the
    /// start of deadlines that began since the last call. Call it once when the connection
    /// starts, then whenever [`poll_timeout`](Self::poll_timeout) has passed; calling it more
    /// often does no harm. Then write out [`poll_transmit`](Self::poll_transmit) and check
    /// [`should_close_transport`](Self::should_close_transport) and
    /// [`timed_out`](Self::timed_out). Times are kept in milliseconds from the first call.
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
        let limits = TimerLimits::of(&self.config);
        let (state, role) = (self.state, self.role);
        let clock = self.rare().clock.get_or_insert_with(|| {
            Box::new(Clock {
                epoch: now,
                now: 0,
                timers: Timers::new(0),
            })
        });
        let now = ms(now.saturating_duration_since(clock.epoch)).max(clock.now);
        clock.now = now;
        let timers = &mut clock.timers;
        let notes = timers.flags & (HEARD | MESSAGED);
        timers.flags &= !(HEARD | MESSAGED);
        if notes & HEARD != 0 {
            timers.heard(now);
        }
        if notes & MESSAGED != 0 {
            timers.message(now);
        }
        let due = timers.step(state, role, &limits, now);
        self.apply_timer(due);
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None` when no timer runs
    /// (none configured, or before the first `handle_timeout`). A time already past means
    /// "now": a deadline has just begun and must be dated.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clock = self.rare.as_ref()?.clock.as_deref()?;
        let at = clock.timers.deadline(
            self.state,
            self.role,
            &TimerLimits::of(&self.config),
            clock.now,
        )?;
        clock.epoch.checked_add(Duration::from_millis(at))
    }

    /// Which timer ended the connection, if one did.
    pub fn timed_out(&self) -> Option<TimeoutKind> {
        self.rare.as_ref()?.clock.as_ref()?.timers.expired
    }

    /// Does what a timer asks ([`Timers::step`]): the one place each rule acts on the
    /// connection, for `handle_timeout` and for the server's event loop alike.
    pub(crate) fn apply_timer(&mut self, due: Due) {
        match due {
            Due::Nothing => {}
            Due::Ping => {
                let _ = self.ping(b"");
            }
            Due::Idle => {
                let _ = self.close(CloseCode::GOING_AWAY, "idle timeout");
            }
            Due::Heartbeat => {
                let _ = self.fail(CloseCode::GOING_AWAY, "heartbeat timeout");
            }
            Due::Close => {
                self.state = State::Closed;
                self.release_receive_buffers();
            }
        }
    }

    /// Notes that bytes arrived (for the heartbeat). Free without timers: one pointer test.
    #[inline]
    pub(super) fn note_heard(&mut self) {
        if let Some(clock) = self
            .rare
            .as_deref_mut()
            .and_then(|r| r.clock.as_deref_mut())
        {
            clock.timers.flags |= HEARD;
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
            clock.timers.flags |= MESSAGED;
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
    fn a_driver_with_its_own_clock_dates_arrivals_exactly() {
        // The server's event loop: times in its milliseconds, bytes dated when read, the
        // deadline and what is due asked of the same rules `handle_timeout` runs.
        let limits = TimerLimits {
            idle: None,
            ping_interval: Some(30_000),
            ping_timeout: 10_000,
            close: 5_000,
        };
        let mut c = Connection::server(config());
        let mut t = Timers::new(1_000);
        let due =
            |t: &mut Timers, c: &Connection, now| t.step(c.state(), Role::Server, &limits, now);
        let deadline = |t: &Timers, c: &Connection| t.deadline(c.state(), Role::Server, &limits, 0);
        t.heard(12_345);
        assert_eq!(
            deadline(&t, &c),
            Some(42_345),
            "30 s after the last byte, not a check"
        );
        assert_eq!(due(&mut t, &c, 42_344), Due::Nothing);
        assert_eq!(due(&mut t, &c, 42_345), Due::Ping);
        c.apply_timer(Due::Ping);
        assert_eq!(drain(&mut c), [0x89, 0x00]);
        assert_eq!(deadline(&t, &c), Some(52_345));
        assert_eq!(due(&mut t, &c, 52_345), Due::Heartbeat);
        c.apply_timer(Due::Heartbeat);
        let out = drain(&mut c);
        assert_eq!(
            &out[2..],
            b"\x03\xe9heartbeat timeout",
            "1001 and the reason"
        );
        assert_eq!(c.state(), State::Closed);
        assert_eq!(t.closing_since(), Some(52_345));
        assert_eq!(
            deadline(&t, &c),
            None,
            "a server's transport is the driver's"
        );
    }

    #[test]
    fn the_timer_state_is_small() {
        // The server keeps a `Timers` in every connection's slot (its idle connection
        // budget is 256 bytes), and `handle_timeout` boxes a `Clock` per connection.
        assert!(std::mem::size_of::<Timers>() <= 24);
        assert!(std::mem::size_of::<Clock>() <= 48);
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

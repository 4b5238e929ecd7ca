//! Exponential backoff with jitter, and a client that reconnects with it.

use super::{Client, ClientError, ConnectOptions};
use crate::proto::{CloseCode, Event, Message, State};
use std::fmt;
use std::time::Duration;

/// How long to wait before each reconnection attempt: exponential growth, capped, with
/// random jitter so that many clients dropped at once do not all come back at once.
///
/// Attempt `n` (0 for the first retry) waits a random duration in
/// `[base·(1 − jitter), base]` where `base = min(max_delay, initial_delay · multiplier^n)`.
/// `jitter = 1.0` is "full jitter" (anywhere from zero to `base`), `0.0` none.
///
/// ```
/// use rfc6455::client::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::default(); // 500 ms, ×2, at most 30 s, jitter 0.5, 10 attempts
/// // With the random draw fixed at 0.0 (no jitter taken off) the delays double up to the cap.
/// let delays: Vec<_> = (0..8).map(|n| backoff.delay(n, 0.0)).collect();
/// assert_eq!(delays[0], Duration::from_millis(500));
/// assert_eq!(delays[3], Duration::from_secs(4));
/// assert_eq!(delays[7], Duration::from_secs(30));
/// // A draw of 1.0 takes the whole jitter fraction off.
/// assert_eq!(backoff.delay(0, 1.0), Duration::from_millis(250));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The delay before the first retry (before jitter). Default 500 ms.
    pub initial_delay: Duration,
    /// The factor each further attempt multiplies the delay by. Default 2.
    pub multiplier: f64,
    /// The longest delay, whatever the attempt. Default 30 s.
    pub max_delay: Duration,
    /// The fraction of each delay that is random, from 0.0 to 1.0. Default 0.5.
    pub jitter: f64,
    /// Give up after this many failed attempts in a row; `None` retries forever. Default 10.
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial_delay: Duration::from_millis(500),
            multiplier: 2.0,
            max_delay: Duration::from_secs(30),
            jitter: 0.5,
            max_attempts: Some(10),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), given a random draw `random` in
    /// `[0, 1]` (values outside are clamped). Pure: tests pass the draw, [`Reconnect`] passes
    /// one from `rand`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let max = self.max_delay.as_secs_f64();
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let base =
            (self.initial_delay.as_secs_f64() * self.multiplier.max(1.0).powi(exponent)).min(max);
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let random = if random.is_nan() {
            0.0
        } else {
            random.clamp(0.0, 1.0)
        };
        let secs = base * (1.0 - jitter * random);
        // `base` is finite and non-negative: `min` with a finite max, and powi of ≥ 1.
        Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay)
    }

    /// Whether another attempt is allowed after `failed` failed attempts in a row.
    pub fn allows(&self, failed: u32) -> bool {
        self.max_attempts.is_none_or(|max| failed < max)
    }
}

/// Whether a connection that ended this way is worth reconnecting.
///
/// Yes for a lost connection (EOF or reset before the close handshake, I/O errors), a
/// timeout while connecting or writing, a failed TCP connect or name lookup (DNS may be down
/// for a moment), a handshake refused with 408, 429 or 5xx, and a server close with
/// 1001 (going away), 1006, 1011 (internal error), 1012 (restart), 1013 (try again later),
/// 1014 (bad gateway). No for everything that would just fail again: a refused
/// handshake (4xx), a protocol error, a bad URL or option, a server close with 1000, with
/// no code or any other code, and a close this side started.
///
/// A read timeout in [`Client::recv`] is no ending at all: the connection is intact, and
/// [`Reconnect`] keeps it.
pub fn should_reconnect(error: &ClientError) -> bool {
    use crate::proto::ClientHandshakeError as H;
    match error {
        ClientError::ConnectionLost(_)
        | ClientError::Io(_)
        | ClientError::Timeout { .. }
        | ClientError::Resolve { .. }
        | ClientError::Connect { .. } => true,
        ClientError::Handshake(H::UnexpectedStatus { status, .. }) => {
            matches!(status, 408 | 429 | 500..=599)
        }
        ClientError::Closed(Some(frame)) => matches!(
            frame.code,
            CloseCode::GOING_AWAY
                | CloseCode::ABNORMAL
                | CloseCode::INTERNAL_ERROR
                | CloseCode::SERVICE_RESTART
                | CloseCode::TRY_AGAIN_LATER
                | CloseCode::BAD_GATEWAY
        ),
        _ => false,
    }
}

type Hook = Box<dyn FnMut(&mut Client) -> Result<(), ClientError> + Send>;

/// A client that reconnects, with [`Backoff`], after the connection is lost, and stops for
/// good once closed on purpose.
///
/// It connects on first use. When the connection ends in a way [`should_reconnect`] accepts,
/// the call that saw it fails with the reason, and the next call connects again (sleeping the
/// backoff delay before each attempt); the [`on_connect`](Self::on_connect) hook runs after
/// every successful connect, to log in or subscribe again. A message passed to
/// [`send`](Self::send) when the connection drops is *not* resent: the error is returned and
/// the caller decides. A read timeout ([`ConnectOptions::read_timeout`]) is returned as
/// [`ClientError::Timeout`] and keeps the connection.
///
/// So a loop that should outlive server restarts goes on after an error until
/// [`is_stopped`](Self::is_stopped) says it is over (closed on purpose, an ending a reconnect
/// would not fix, or [`Backoff::max_attempts`] failed attempts in a row):
///
/// ```no_run
/// use rfc6455::client::{Backoff, ConnectOptions, Reconnect};
/// use rfc6455::Event;
///
/// let mut ws = Reconnect::new("ws://127.0.0.1:9001/feed", ConnectOptions::default(), Backoff::default())
///     .on_connect(|client| client.send_text(r#"{"subscribe":"prices"}"#));
/// loop {
///     match ws.recv() {
///         Ok(Event::Message(m)) => println!("{m:?}"),
///         Ok(_) => {}
///         Err(e) if ws.is_stopped() => break eprintln!("giving up: {e}"),
///         Err(e) => eprintln!("{e}; reconnecting"), // the next recv reconnects
///     }
/// }
/// ```
pub struct Reconnect {
    url: String,
    options: ConnectOptions,
    backoff: Backoff,
    client: Option<Client>,
    /// Failed attempts since the last successful connect.
    failed: u32,
    /// Backoff waits since the last successful connect: the next wait is retry number
    /// `retries` of [`Backoff::delay`].
    retries: u32,
    /// Connections made, the first included.
    connects: u64,
    /// Set by [`Reconnect::close`] or by an ending that does not call for a reconnect.
    stopped: bool,
    /// The connection ended; the next connect must wait the backoff delay first.
    must_wait: bool,
    on_connect: Option<Hook>,
    sleep: Box<dyn FnMut(Duration) + Send>,
    random: Box<dyn FnMut() -> f64 + Send>,
}

impl fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnect")
            .field("url", &self.url)
            .field("connected", &self.client.is_some())
            .field("failed", &self.failed)
            .field("retries", &self.retries)
            .field("connects", &self.connects)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl Reconnect {
    /// A reconnecting client for `url`; nothing is connected until the first call.
    pub fn new(url: impl Into<String>, options: ConnectOptions, backoff: Backoff) -> Reconnect {
        Reconnect {
            url: url.into(),
            options,
            backoff,
            client: None,
            failed: 0,
            retries: 0,
            connects: 0,
            stopped: false,
            must_wait: false,
            on_connect: None,
            sleep: Box::new(std::thread::sleep),
            random: Box::new(rand::random::<f64>),
        }
    }

    /// Runs `hook` after each successful connect (the first one included), e.g. to
    /// authenticate or subscribe again. An error from it counts as a failed attempt.
    pub fn on_connect(
        mut self,
        hook: impl FnMut(&mut Client) -> Result<(), ClientError> + Send + 'static,
    ) -> Reconnect {
        self.on_connect = Some(Box::new(hook));
        self
    }

    /// Replaces how the backoff delay is waited (default `std::thread::sleep`): tests record
    /// the delays instead of sleeping.
    pub fn with_sleep(mut self, sleep: impl FnMut(Duration) + Send + 'static) -> Reconnect {
        self.sleep = Box::new(sleep);
        self
    }

    /// How many connections were made so far (the first included).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// Whether it stopped for good: [`close`](Self::close) was called, the connection ended
    /// in a way a reconnect would not fix, or it gave up ([`Backoff::max_attempts`]). Every
    /// call then fails with [`ClientError::Stopped`]. After any other error the next call
    /// goes on (reconnecting if the connection was lost).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The current connection, connecting (with backoff) if there is none.
    ///
    /// Fails once closed on purpose ([`ClientError::Stopped`]), when the failure does not call
    /// for a retry (see [`should_reconnect`]), or when [`Backoff::max_attempts`] attempts
    /// failed in a row (the last error is returned).
    pub fn client(&mut self) -> Result<&mut Client, ClientError> {
        if self.stopped {
            return Err(ClientError::Stopped);
        }
        if self.client.is_none() {
            let client = self.connect()?;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or(ClientError::Stopped)
    }

    fn connect(&mut self) -> Result<Client, ClientError> {
        loop {
            if self.must_wait {
                if !self.backoff.allows(self.failed) {
                    self.stopped = true;
                    return Err(ClientError::GaveUp {
                        attempts: self.failed,
                    });
                }
                let delay = self.backoff.delay(self.retries, (self.random)());
                self.retries = self.retries.saturating_add(1);
                (self.sleep)(delay);
            }
            self.must_wait = true;
            let result = Client::connect_with(&self.url, &self.options).and_then(|mut client| {
                if let Some(hook) = &mut self.on_connect {
                    hook(&mut client)?;
                }
                Ok(client)
            });
            match result {
                Ok(client) => {
                    self.failed = 0;
                    self.retries = 0;
                    self.connects += 1;
                    return Ok(client);
                }
                Err(e) => {
                    self.failed += 1;
                    if !should_reconnect(&e) || !self.backoff.allows(self.failed) {
                        self.stopped = true;
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Notes how the connection ended: drop it, and stop unless the ending calls for a retry.
    fn ended(&mut self, error: &ClientError) {
        self.client = None;
        self.must_wait = true;
        if !should_reconnect(error) {
            self.stopped = true;
        }
    }

    /// The next event, reconnecting as needed.
    ///
    /// A server close that calls for a reconnect (1001, 1012 …) is returned as
    /// [`Event::Close`] like any other, and the next call reconnects. A read timeout is
    /// [`ClientError::Timeout`] and leaves the connection as it is (call again). Fails for
    /// good with the error or the close that ended it all.
    pub fn recv(&mut self) -> Result<Event<'static>, ClientError> {
        let client = self.client()?;
        match client.recv() {
            Ok(Event::Close(frame)) => {
                self.ended(&ClientError::Closed(frame.clone()));
                Ok(Event::Close(frame))
            }
            Ok(event) => Ok(event),
            Err(e) => {
                // A read timeout leaves the connection open and usable: not an ending.
                if client.state() == State::Closed {
                    self.ended(&e);
                }
                Err(e)
            }
        }
    }

    /// Sends a message, connecting first if needed. If the connection is lost while sending,
    /// the error is returned and the message is not resent; the next call reconnects.
    pub fn send(&mut self, message: Message<'_>) -> Result<(), ClientError> {
        let client = self.client()?;
        match client.send(message) {
            Ok(()) => Ok(()),
            Err(e) => {
                if client.state() != State::Open {
                    self.ended(&e);
                }
                Err(e)
            }
        }
    }

    /// Sends a text message; see [`send`](Self::send).
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send(Message::text(text))
    }

    /// Sends a binary message; see [`send`](Self::send).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.send(Message::binary(data))
    }

    /// Sends a ping (at most 125 bytes), connecting first if needed; its pong arrives through
    /// [`recv`](Self::recv). A lost connection is handled as in [`send`](Self::send).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let client = self.client()?;
        let result = client.ping(payload);
        if let Err(e) = &result {
            if client.state() != State::Open {
                self.ended(e);
            }
        }
        result
    }

    /// Closes the connection on purpose (completing the close handshake, see
    /// [`Client::close`]) and stops reconnecting.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), ClientError> {
        self.stopped = true;
        match self.client.take() {
            Some(mut client) => client.close(code, reason).map(drop),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> Backoff {
        Backoff {
            jitter: 0.0,
            ..Backoff::default()
        }
    }

    #[test]
    fn delays_grow_then_stay_at_the_cap() {
        let b = no_jitter();
        let delays: Vec<u128> = (0..10).map(|n| b.delay(n, 0.7).as_millis()).collect();
        assert_eq!(
            delays,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
        // Huge attempt numbers neither overflow nor exceed the cap.
        assert_eq!(b.delay(u32::MAX, 0.0), b.max_delay);
    }

    #[test]
    fn jitter_stays_in_its_range() {
        let b = Backoff::default();
        for attempt in 0..12 {
            let base = no_jitter().delay(attempt, 0.0);
            let low = base.mul_f64(1.0 - b.jitter);
            for i in 0..=100 {
                let d = b.delay(attempt, f64::from(i) / 100.0);
                assert!(
                    d >= low && d <= base,
                    "{attempt}: {d:?} not in {low:?}..={base:?}"
                );
            }
            // Out-of-range and NaN draws are clamped.
            assert_eq!(b.delay(attempt, -3.0), base);
            assert_eq!(b.delay(attempt, f64::NAN), base);
            assert_eq!(b.delay(attempt, 7.0), low);
        }
        let full = Backoff {
            jitter: 1.0,
            ..Backoff::default()
        };
        assert_eq!(full.delay(3, 1.0), Duration::ZERO);
    }

    #[test]
    fn odd_settings_stay_bounded() {
        let b = Backoff {
            multiplier: 0.1, // shrinking is treated as constant
            jitter: 5.0,     // clamped to 1.0
            ..Backoff::default()
        };
        assert_eq!(b.delay(5, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(5, 1.0), Duration::ZERO);
        let b = Backoff {
            multiplier: f64::INFINITY,
            ..no_jitter()
        };
        assert_eq!(b.delay(2, 0.0), b.max_delay);
    }

    #[test]
    fn attempts_are_bounded() {
        let b = Backoff {
            max_attempts: Some(3),
            ..Backoff::default()
        };
        assert!(b.allows(0) && b.allows(2));
        assert!(!b.allows(3));
        let forever = Backoff {
            max_attempts: None,
            ..Backoff::default()
        };
        assert!(forever.allows(u32::MAX));
    }

    #[test]
    fn which_endings_reconnect() {
        use crate::proto::{ClientHandshakeError as H, CloseFrame, ProtocolError};
        let close = |code: u16| {
            ClientError::Closed(Some(CloseFrame {
                code: CloseCode(code),
                reason: "".into(),
            }))
        };
        assert!(should_reconnect(&ClientError::ConnectionLost(None)));
        assert!(should_reconnect(&close(1001)));
        assert!(should_reconnect(&close(1012)));
        assert!(!should_reconnect(&ClientError::Closed(None)));
        assert!(
            !should_reconnect(&close(1000)),
            "a normal close is on purpose"
        );
        assert!(!should_reconnect(&close(1008)));
        assert!(!should_reconnect(&close(4000)));
        assert!(!should_reconnect(&ClientError::Stopped));
        assert!(!should_reconnect(&ClientError::Protocol(
            ProtocolError::MaskedFrame
        )));
        let status = |status| {
            ClientError::Handshake(H::UnexpectedStatus {
                status,
                reason: String::new(),
            })
        };
        assert!(should_reconnect(&status(503)));
        assert!(should_reconnect(&status(429)));
        assert!(!should_reconnect(&status(403)));
    }
}

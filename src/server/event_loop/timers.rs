//! The loop's deadlines: one binary heap of (time, slot, generation) with lazy deletion, at
//! most one live entry per connection. The heartbeat, idle and close-handshake rules are the
//! core's ([`Timers`], kept inline in each [`Entry`]): the loop dates what it reads with its
//! one clock reading per wakeup, asks the core for the next deadline and what is due, and
//! acts on the socket. The deadlines about the transport before or after a `Connection` are
//! the loop's own: the handshake, a refusal's and the linger's, and the last bytes of a
//! closed connection that the peer does not read.

use super::*;
use crate::proto::Role;

/// A time as an optional field: 0 ms (the loop's first millisecond) reads as 1.
pub(super) fn tick(t: u64) -> NonZeroU64 {
    NonZeroU64::new(t).unwrap_or(NonZeroU64::MIN)
}

impl<H: Handler> EventLoop<H> {
    // ------------------------------------------------------------------------ timers

    /// Makes sure connection `key` is looked at no later than `at`.
    pub(super) fn arm(&mut self, key: usize, at: u64) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        let at = tick(at);
        if e.timer_at.is_some_and(|t| t <= at) {
            return; // an earlier check re-arms for the rest
        }
        e.timer_at = Some(at);
        self.timers
            .push(Reverse((at.get(), key as u32, e.generation)));
    }

    pub(super) fn run_timers(&mut self) {
        while let Some(&Reverse((at, key, generation))) = self.timers.peek() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            let key = key as usize;
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            if e.generation != generation || e.timer_at != Some(tick(at)) {
                continue; // stale: superseded or for a connection that has gone
            }
            e.timer_at = None;
            self.on_timer(key);
            if let Some(next) = self.next_deadline(key) {
                self.arm(key, next);
            }
        }
    }

    /// The earliest moment something is due for connection `key`.
    pub(super) fn next_deadline(&self, key: usize) -> Option<u64> {
        let e = self.conns.get(key)?;
        let close = ms(self.timeouts.close);
        match e.phase {
            Phase::Handshake => Some(e.since + ms(self.timeouts.handshake)),
            Phase::Refusing | Phase::Linger => Some(e.since + close),
            Phase::Open => match e.conn.state() {
                // Closed, but its last bytes are not written yet: the transport's deadline.
                State::Closed => Some(e.timers.closing_since().unwrap_or(self.now) + close),
                state => e
                    .timers
                    .deadline(state, Role::Server, &self.rules, self.now),
            },
        }
    }

    fn on_timer(&mut self, key: usize) {
        let now = self.now;
        let close = ms(self.timeouts.close);
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        match e.phase {
            Phase::Handshake => {
                if now >= e.since + ms(self.timeouts.handshake) {
                    // Silent or slow: no answer, the request is not complete.
                    self.remove(key);
                }
            }
            Phase::Refusing | Phase::Linger => {
                if now >= e.since + close {
                    self.remove(key);
                }
            }
            Phase::Open => {
                let state = e.conn.state();
                if state == State::Closed {
                    // The peer reads nothing more: drop it without its last bytes.
                    if now >= e.timers.closing_since().unwrap_or(now) + close {
                        self.report(key, CloseReason::Timeout(TimeoutKind::Close));
                        self.remove(key);
                    }
                    return;
                }
                match e.timers.step(state, Role::Server, &self.rules, now) {
                    Due::Nothing => {}
                    Due::Close => {
                        self.report(key, CloseReason::Timeout(TimeoutKind::Close));
                        self.remove(key);
                    }
                    due => {
                        e.conn.swap_transmit_buffer(&mut self.spare);
                        e.conn.apply_timer(due);
                        if due == Due::Heartbeat {
                            self.report(key, CloseReason::Timeout(TimeoutKind::Heartbeat));
                        }
                        self.after_state_change(key);
                        self.flush(key);
                    }
                }
            }
        }
    }
}

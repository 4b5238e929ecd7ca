//! The loop's deadlines: one binary heap of (time, slot, generation) with lazy deletion, at
//! most one live entry per connection.

use super::*;

/// A timeout in the loop's milliseconds. Capped at 2^62 ms (146 million years, as good as
/// never) so that adding one to a time on the loop's clock cannot overflow.
pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).map_or(NEVER, |t| t.min(NEVER))
}

pub(super) const NEVER: u64 = 1 << 62;

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
            Phase::Open => {
                if let Some(since) = e.closing_since {
                    return Some(since.get() + close);
                }
                let mut next = None::<u64>;
                let mut at = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
                if let Some(idle) = self.timeouts.idle {
                    at(e.last_message + ms(idle));
                }
                if let Some(hb) = &self.timeouts.heartbeat {
                    match e.ping_sent {
                        Some(sent) => at(sent.get() + ms(hb.timeout)),
                        None => at(e.last_heard + ms(hb.interval)),
                    }
                }
                next
            }
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
                if let Some(since) = e.closing_since {
                    if now >= since.get() + close {
                        self.report(key, CloseReason::Timeout(TimeoutKind::Close));
                        self.remove(key);
                    }
                    return;
                }
                if let Some(idle) = self.timeouts.idle {
                    if now >= e.last_message + ms(idle) {
                        e.conn.swap_transmit_buffer(&mut self.spare);
                        let _ = e.conn.close(CloseCode::GOING_AWAY, "idle timeout");
                        self.after_state_change(key);
                        self.flush(key);
                        return;
                    }
                }
                if let Some(hb) = self.timeouts.heartbeat.clone() {
                    match e.ping_sent {
                        Some(sent) if now >= sent.get() + ms(hb.timeout) => {
                            e.conn.swap_transmit_buffer(&mut self.spare);
                            let _ = e.conn.fail(CloseCode::GOING_AWAY, "heartbeat timeout");
                            self.report(key, CloseReason::Timeout(TimeoutKind::Heartbeat));
                            self.after_state_change(key);
                            self.flush(key);
                        }
                        None if now >= e.last_heard + ms(hb.interval) => {
                            e.conn.swap_transmit_buffer(&mut self.spare);
                            let _ = e.conn.ping(b"");
                            e.ping_sent = Some(tick(now));
                            self.flush(key);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

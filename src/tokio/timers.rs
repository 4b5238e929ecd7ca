//! The one place the adapter meets the core's timers: sleep until
//! [`Connection::poll_timeout`], then [`Connection::handle_timeout`] with the time.
//!
//! The clock starts at the first poll if a heartbeat or idle timer is configured, and
//! otherwise when the close handshake begins (its deadline, and a client's bounded wait for
//! the server's EOF, need it): an idle connection without timers carries no clock and no
//! tokio timer entry.

use crate::proto::{Connection, State};
use ::tokio::time::Sleep;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// The connection's timer, armed for the core's next deadline.
#[derive(Default)]
pub(super) struct Timers {
    started: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timers {
    /// `Ready`: a deadline passed and [`Connection::handle_timeout`] ran (a ping or a close
    /// may be queued, the state may have changed: see [`Connection::timed_out`]); write, and
    /// poll again. `Pending`: armed for the next deadline with the task's waker, or no timer
    /// runs.
    pub(super) fn poll(&mut self, conn: &mut Connection, cx: &mut Context<'_>) -> Poll<()> {
        if !self.started {
            let config = conn.config();
            let timers = config.ping_interval.is_some() || config.idle_timeout.is_some();
            if !timers && conn.state() == State::Open {
                return Poll::Pending;
            }
            self.started = true;
            conn.handle_timeout(Instant::now());
            return Poll::Ready(());
        }
        let Some(deadline) = conn.poll_timeout() else {
            self.sleep = None;
            return Poll::Pending;
        };
        let deadline = ::tokio::time::Instant::from_std(deadline);
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => self
                .sleep
                .insert(Box::pin(::tokio::time::sleep_until(deadline))),
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        conn.handle_timeout(Instant::now());
        Poll::Ready(())
    }
}

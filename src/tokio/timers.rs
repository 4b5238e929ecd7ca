//! The one place the adapter meets the core's timers: sleep until
//! `Connection::poll_timeout`, then `Connection::handle_timeout(now)`.

use crate::proto::Connection;
use std::task::{Context, Poll};

/// Why a timer ended the connection. (Stands in for the core's own until it has timers.)
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {}

impl std::fmt::Display for TimeoutKind {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

/// The connection's timer, armed for the core's next deadline.
#[derive(Default)]
pub(super) struct Timers {}

impl Timers {
    /// `Ready(Some(kind))`: a timer ended the connection (its close frame, if any, is
    /// queued). `Ready(None)`: a deadline passed and was handled (a ping may be queued): write,
    /// then poll again. `Pending`: armed for the next deadline, the task's waker registered.
    pub(super) fn poll(
        &mut self,
        conn: &mut Connection,
        cx: &mut Context<'_>,
    ) -> Poll<Option<TimeoutKind>> {
        let _ = (conn, cx);
        Poll::Pending
    }
}

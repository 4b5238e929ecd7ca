//! [`Handle`]: sending to connections, publishing and stopping the server from any thread.

use super::event_loop::{Command, Publication, Shared};
use super::ConnId;
use crate::proto::{CloseCode, Message, SharedFrame};
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::Arc;

/// Sends to connections and stops the server from any thread. Cheap to clone.
///
/// Each loop has a bounded mailbox ([`Limits::mailbox`](crate::server::Limits::mailbox) commands) and a `mio::Waker`.
#[derive(Clone)]
pub struct Handle {
    pub(super) shared: Arc<Shared>,
}

/// Why [`Handle::send`] or [`Handle::close`] could not queue a command.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The loop's mailbox is full: it is behind. Retry later, or drop the message.
    Full,
    /// The server has stopped (or the id belongs to no loop of this server).
    Stopped,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full => f.write_str(
                "the event loop's mailbox is full; retry later or raise Limits::mailbox",
            ),
            SendError::Stopped => f.write_str("the server has stopped"),
        }
    }
}

impl std::error::Error for SendError {}

impl Handle {
    /// Queues `message` for connection `id` (copying it). A message for a connection that
    /// has gone, or is closing, is dropped silently: ids may go stale at any moment.
    pub fn send(&self, id: ConnId, message: Message<'_>) -> Result<(), SendError> {
        self.command(id.thread, Command::Send(id, message.into_owned()))
    }

    /// Sends `message` to every subscriber of `topic` on every loop (see
    /// [`Context::publish`](crate::server::Context::publish)): the frame is encoded once here and each loop gets one command.
    /// Messages published from one thread to a topic reach every subscriber in the order
    /// published. Fails with [`SendError::Full`] if a loop's mailbox is full (that loop's
    /// subscribers miss it; the others get it).
    pub fn publish(&self, topic: impl AsRef<[u8]>, message: Message<'_>) -> Result<(), SendError> {
        self.publish_from(topic.as_ref(), &message, None)
    }

    /// [`publish`](Self::publish), leaving connection `except` out (the one that caused it,
    /// say).
    ///
    /// Every loop's mailbox is first in, first out, so publishes made one at a time through
    /// handles (under a lock of the application's, for instance) reach every subscriber on
    /// every loop in that one order. ([`Context::publish`](crate::server::Context::publish) delivers to its own loop's
    /// subscribers without the mailbox: faster, but only ordered per publisher.)
    pub fn publish_except(
        &self,
        topic: impl AsRef<[u8]>,
        message: Message<'_>,
        except: ConnId,
    ) -> Result<(), SendError> {
        self.publish_from(topic.as_ref(), &message, Some(except))
    }

    fn publish_from(
        &self,
        topic: &[u8],
        message: &Message<'_>,
        except: Option<ConnId>,
    ) -> Result<(), SendError> {
        let publication = Arc::new(Publication {
            topic: topic.into(),
            frame: SharedFrame::new(message),
            except,
        });
        self.publish_to_loops(publication, None)
    }

    /// Counts of what topics did, over every loop, since the server started.
    pub fn topic_stats(&self) -> TopicStats {
        let mut total = TopicStats::default();
        for stats in &self.shared.stats {
            let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            total.delivered += get(&stats.delivered);
            total.delivered_bytes += get(&stats.delivered_bytes);
            total.dropped += get(&stats.dropped);
            total.slow_closed += get(&stats.slow_closed);
            total.missed += get(&stats.missed);
        }
        total
    }

    /// Hands `publication` to every loop but `skip` (which delivers it itself).
    pub(super) fn publish_to_loops(
        &self,
        publication: Arc<Publication>,
        skip: Option<u32>,
    ) -> Result<(), SendError> {
        let mut result = Ok(());
        for (i, mailbox) in self.shared.mailboxes.iter().enumerate() {
            if skip == Some(i as u32) {
                continue;
            }
            match mailbox.tx.try_send(Command::Publish(publication.clone())) {
                Ok(()) => {
                    let _ = mailbox.waker.wake();
                }
                Err(TrySendError::Full(_)) => {
                    self.shared.stats[i].missed.fetch_add(1, Ordering::Relaxed);
                    result = Err(SendError::Full);
                }
                Err(TrySendError::Disconnected(_)) => {
                    if result.is_ok() {
                        result = Err(SendError::Stopped);
                    }
                }
            }
        }
        result
    }

    /// Starts the close handshake with connection `id`.
    pub fn close(&self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), SendError> {
        self.command(id.thread, Command::Close(id, code, reason.to_owned()))
    }

    /// Stops the server gracefully: stop accepting, send 1001 to every peer after what is
    /// already queued for it, wait up to [`Timeouts::close`](crate::server::Timeouts::close) for their replies, then make
    /// [`Server::run`](crate::server::Server::run) return. Idempotent.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for mailbox in &self.shared.mailboxes {
            // A loop that has exited no longer needs waking.
            let _ = mailbox.waker.wake();
        }
    }

    fn command(&self, thread: u32, command: Command) -> Result<(), SendError> {
        let mailbox = self
            .shared
            .mailboxes
            .get(thread as usize)
            .ok_or(SendError::Stopped)?;
        match mailbox.tx.try_send(command) {
            Ok(()) => {
                let _ = mailbox.waker.wake();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(SendError::Full),
            Err(TrySendError::Disconnected(_)) => Err(SendError::Stopped),
        }
    }
}

/// What topics did, from [`Handle::topic_stats`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TopicStats {
    /// Published messages queued to a subscriber.
    pub delivered: u64,
    /// Their bytes on the wire (frame headers included).
    pub delivered_bytes: u64,
    /// Published messages not queued to a slow subscriber ([`SlowSubscriber::Drop`](crate::server::SlowSubscriber::Drop)).
    pub dropped: u64,
    /// Subscribers closed for being slow ([`SlowSubscriber::Close`](crate::server::SlowSubscriber::Close)).
    pub slow_closed: u64,
    /// Publishes a loop missed because its mailbox was full.
    pub missed: u64,
}

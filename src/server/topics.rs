//! One loop's subscriber table: which of its connections listen to which topic.
//!
//! Every loop keeps its own table, so subscribing and publishing take no lock. A topic is an
//! index into a slab, found by name in a hash map; it lists its subscribers (slab keys of the
//! loop's connections) in a vector, and each connection lists its topics with its position in
//! each, so subscribe and unsubscribe are O(1) in the number of subscribers (O(the
//! connection's own topics) to fix up the one that moves) and a publish walks one vector.

use slab::Slab;
use std::collections::HashMap;
use std::fmt;

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 1024;

/// Why [`Context::subscribe`](super::Context::subscribe) refused a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is longer than [`MAX_TOPIC_LEN`] bytes.
    TooLong(usize),
    /// The connection is subscribed to [`Limits::max_subscriptions`](super::Limits::max_subscriptions)
    /// topics already.
    TooMany(usize),
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::TooLong(len) => write!(
                f,
                "topic name of {len} bytes is over the limit of {MAX_TOPIC_LEN}"
            ),
            TopicError::TooMany(limit) => write!(
                f,
                "the connection is subscribed to {limit} topics already, the limit"
            ),
        }
    }
}

impl std::error::Error for TopicError {}

struct Topic {
    name: Box<[u8]>,
    /// Slab keys of the loop's connections.
    subscribers: Vec<u32>,
}

/// A connection's subscription: the topic's index and the connection's position in its list.
#[derive(Copy, Clone)]
struct Subscription {
    topic: u32,
    pos: u32,
}

#[derive(Default)]
pub(super) struct Topics {
    ids: HashMap<Box<[u8]>, u32>,
    topics: Slab<Topic>,
    by_conn: HashMap<u32, Vec<Subscription>>,
}

impl Topics {
    /// Subscribes connection `key`; `Ok(false)` if it already was.
    pub(super) fn subscribe(
        &mut self,
        key: usize,
        name: &[u8],
        max_subscriptions: usize,
    ) -> Result<bool, TopicError> {
        if name.len() > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong(name.len()));
        }
        let key = key as u32;
        let id = self.ids.get(name).copied();
        let subs = self.by_conn.entry(key).or_default();
        if let Some(id) = id {
            if subs.iter().any(|s| s.topic == id) {
                return Ok(false);
            }
        }
        if subs.len() >= max_subscriptions {
            if subs.is_empty() {
                self.by_conn.remove(&key);
            }
            return Err(TopicError::TooMany(max_subscriptions));
        }
        let id = match id {
            Some(id) => id,
            None => {
                let id = self.topics.insert(Topic {
                    name: name.into(),
                    subscribers: Vec::new(),
                }) as u32;
                self.ids.insert(name.into(), id);
                id
            }
        };
        let topic = &mut self.topics[id as usize];
        subs.push(Subscription {
            topic: id,
            pos: topic.subscribers.len() as u32,
        });
        topic.subscribers.push(key);
        Ok(true)
    }

    /// Unsubscribes connection `key`; `false` if it was not subscribed.
    pub(super) fn unsubscribe(&mut self, key: usize, name: &[u8]) -> bool {
        let Some(&id) = self.ids.get(name) else {
            return false;
        };
        let key = key as u32;
        let Some(subs) = self.by_conn.get_mut(&key) else {
            return false;
        };
        let Some(i) = subs.iter().position(|s| s.topic == id) else {
            return false;
        };
        let sub = subs.swap_remove(i);
        if subs.is_empty() {
            self.by_conn.remove(&key);
        }
        self.detach(sub);
        true
    }

    /// Ends every subscription of connection `key` (it closed).
    pub(super) fn unsubscribe_all(&mut self, key: usize) {
        let Some(subs) = self.by_conn.remove(&(key as u32)) else {
            return;
        };
        for sub in subs {
            self.detach(sub);
        }
    }

    /// Takes a connection out of a topic's list: the last subscriber moves into its place
    /// (and its own record of the position is fixed); an empty topic is forgotten.
    fn detach(&mut self, sub: Subscription) {
        let topic = &mut self.topics[sub.topic as usize];
        topic.subscribers.swap_remove(sub.pos as usize);
        if let Some(&moved) = topic.subscribers.get(sub.pos as usize) {
            if let Some(theirs) = self.by_conn.get_mut(&moved) {
                if let Some(s) = theirs.iter_mut().find(|s| s.topic == sub.topic) {
                    s.pos = sub.pos;
                }
            }
        }
        if topic.subscribers.is_empty() {
            let topic = self.topics.remove(sub.topic as usize);
            self.ids.remove(&topic.name);
        }
    }

    /// The loop's subscribers of `name` (slab keys), empty if none.
    pub(super) fn subscribers(&self, name: &[u8]) -> &[u32] {
        match self.ids.get(name) {
            Some(&id) => &self.topics[id as usize].subscribers,
            None => &[],
        }
    }

    /// Whether connection `key` is subscribed to `name`.
    pub(super) fn is_subscribed(&self, key: usize, name: &[u8]) -> bool {
        let (Some(&id), Some(subs)) = (self.ids.get(name), self.by_conn.get(&(key as u32))) else {
            return false;
        };
        subs.iter().any(|s| s.topic == id)
    }

    #[cfg(test)]
    /// How many topics connection `key` is subscribed to.
    pub(super) fn count_of(&self, key: usize) -> usize {
        self.by_conn.get(&(key as u32)).map_or(0, Vec::len)
    }

    #[cfg(test)]
    /// Topics with at least one subscriber on this loop.
    pub(super) fn len(&self) -> usize {
        self.topics.len()
    }

    #[cfg(test)]
    /// Subscriptions on this loop.
    pub(super) fn subscriptions(&self) -> usize {
        self.by_conn.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's recorded positions point back at it, and topic lists hold exactly
    /// the subscriptions the connections record.
    fn check(t: &Topics) {
        let mut count = 0;
        for (&key, subs) in &t.by_conn {
            assert!(!subs.is_empty());
            for s in subs {
                assert_eq!(t.topics[s.topic as usize].subscribers[s.pos as usize], key);
                count += 1;
            }
        }
        let listed: usize = t.topics.iter().map(|(_, x)| x.subscribers.len()).sum();
        assert_eq!(listed, count);
        assert_eq!(t.ids.len(), t.topics.len());
    }

    #[test]
    fn subscribe_unsubscribe_keep_both_sides_consistent() {
        let mut t = Topics::default();
        for key in 0..50 {
            assert_eq!(t.subscribe(key, b"all", 8), Ok(true));
            assert_eq!(
                t.subscribe(key, format!("t{}", key % 7).as_bytes(), 8),
                Ok(true)
            );
        }
        assert_eq!(t.subscribe(3, b"all", 8), Ok(false));
        check(&t);
        assert_eq!(t.subscribers(b"all").len(), 50);
        // Take out every third one, from the front, so the moved ones get fixed up.
        for key in (0..50).step_by(3) {
            assert!(t.unsubscribe(key, b"all"));
            assert!(!t.unsubscribe(key, b"all"));
            check(&t);
        }
        assert_eq!(t.subscribers(b"all").len(), 50 - 17);
        for key in 0..50 {
            t.unsubscribe_all(key);
            check(&t);
        }
        assert_eq!(t.len(), 0);
        assert!(t.subscribers(b"all").is_empty());
        assert_eq!(t.subscriptions(), 0);
    }

    #[test]
    fn limits_are_enforced() {
        let mut t = Topics::default();
        let long = vec![b'x'; MAX_TOPIC_LEN + 1];
        assert_eq!(
            t.subscribe(1, &long, 8),
            Err(TopicError::TooLong(MAX_TOPIC_LEN + 1))
        );
        assert_eq!(t.subscribe(1, b"a", 2), Ok(true));
        assert_eq!(t.subscribe(1, b"b", 2), Ok(true));
        assert_eq!(t.subscribe(1, b"c", 2), Err(TopicError::TooMany(2)));
        assert_eq!(t.subscribe(2, b"c", 0), Err(TopicError::TooMany(0)));
        assert_eq!(t.count_of(2), 0);
        assert!(t.is_subscribed(1, b"a") && !t.is_subscribed(1, b"c"));
        check(&t);
    }
}

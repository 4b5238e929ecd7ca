//! What every loop of `serve` shares: rooms (members, sequence, history) and who is online.
//!
//! One mutex, held for a few map operations per command. A room message takes its `seq`
//! and is published under the lock, and every loop's mailbox is first in, first out, so
//! members on every loop receive a room's messages in `seq` order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A message kept for `join` with `since`: its seq and its JSON, as it was sent.
#[derive(Clone)]
pub struct Stored {
    pub seq: u64,
    pub json: Arc<str>,
}

#[derive(Default)]
pub struct Room {
    /// The last seq given out (0: none yet).
    pub seq: u64,
    pub history: VecDeque<Stored>,
    /// Nick → number of its connections in the room.
    pub members: BTreeMap<String, usize>,
    /// When the last member left, for `--history-ttl`.
    pub emptied: Option<Instant>,
}

impl Room {
    /// Distinct nicks, sorted.
    pub fn nicks(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }
}

/// What `join` finds: the messages to replay and whether they cover what was asked.
pub struct Replay {
    pub history: Vec<Arc<str>>,
    pub recovered: Option<bool>,
    pub latest: u64,
    pub members: Vec<String>,
    /// The nick's first connection in the room: say so to the others.
    pub first: bool,
}

pub struct Hub {
    /// Names this history: when the server restarts without it, seqs count from 1 again and
    /// the epoch changes, so a page can tell an old seq 5 from a new one.
    pub epoch: u64,
    pub rooms: HashMap<String, Room>,
    /// Nick → connections open with it.
    pub online: HashMap<String, usize>,
    history: usize,
    ttl: Duration,
    max_rooms: usize,
}

/// Why a room could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum RoomError {
    TooManyRooms,
}

impl Hub {
    pub fn new(history: usize, ttl: Duration, max_rooms: usize) -> Hub {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Hub {
            epoch,
            rooms: HashMap::new(),
            online: HashMap::new(),
            history,
            ttl,
            max_rooms,
        }
    }

    /// Forgets rooms that have been empty for longer than the history TTL.
    pub fn sweep(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.rooms.retain(|_, room| {
            !room.members.is_empty() || room.emptied.is_none_or(|t| now.duration_since(t) < ttl)
        });
    }

    fn room(&mut self, name: &str, now: Instant) -> Result<&mut Room, RoomError> {
        if !self.rooms.contains_key(name) {
            self.sweep(now);
            if self.rooms.len() >= self.max_rooms {
                return Err(RoomError::TooManyRooms);
            }
            self.rooms.insert(
                name.to_owned(),
                Room {
                    emptied: Some(now),
                    ..Room::default()
                },
            );
        }
        self.rooms.get_mut(name).ok_or(RoomError::TooManyRooms)
    }

    /// Adds a connection of `nick` to `name`; the history from `since` (or the latest).
    pub fn join(
        &mut self,
        name: &str,
        nick: &str,
        since: Option<u64>,
        now: Instant,
    ) -> Result<Replay, RoomError> {
        let room = self.room(name, now)?;
        let count = room.members.entry(nick.to_owned()).or_insert(0);
        *count += 1;
        let first = *count == 1;
        room.emptied = None;
        let (history, recovered) = match since {
            None => (room.history.iter().map(|m| m.json.clone()).collect(), None),
            Some(since) => {
                // Recovered when nothing after `since` has been dropped from the history:
                // the oldest held is at most since + 1 (or nothing was ever dropped).
                let oldest = room.history.front().map_or(room.seq + 1, |m| m.seq);
                let recovered = since >= room.seq || oldest <= since + 1;
                let history = if recovered {
                    room.history
                        .iter()
                        .filter(|m| m.seq > since)
                        .map(|m| m.json.clone())
                        .collect()
                } else {
                    room.history.iter().map(|m| m.json.clone()).collect()
                };
                (history, Some(recovered))
            }
        };
        Ok(Replay {
            history,
            recovered,
            latest: room.seq,
            members: room.nicks(),
            first,
        })
    }

    /// Takes a connection of `nick` out of `name`; `true` if it was the nick's last one there.
    pub fn leave(&mut self, name: &str, nick: &str, now: Instant) -> bool {
        let Some(room) = self.rooms.get_mut(name) else {
            return false;
        };
        let Some(count) = room.members.get_mut(nick) else {
            return false;
        };
        *count -= 1;
        let last = *count == 0;
        if last {
            room.members.remove(nick);
        }
        if room.members.is_empty() {
            room.emptied = Some(now);
        }
        last
    }

    /// The next seq of `name`, with the message (made from it) kept in the history.
    pub fn record(
        &mut self,
        name: &str,
        now: Instant,
        make: impl FnOnce(u64) -> String,
    ) -> Result<(u64, Arc<str>), RoomError> {
        let keep = self.history;
        let room = self.room(name, now)?;
        room.seq += 1;
        let seq = room.seq;
        let json: Arc<str> = make(seq).into();
        if keep > 0 {
            if room.history.len() == keep {
                room.history.pop_front();
            }
            room.history.push_back(Stored {
                seq,
                json: json.clone(),
            });
        }
        Ok((seq, json))
    }

    pub fn online(&mut self, nick: &str) {
        *self.online.entry(nick.to_owned()).or_insert(0) += 1;
    }

    pub fn offline(&mut self, nick: &str) {
        if let Some(count) = self.online.get_mut(nick) {
            *count -= 1;
            if *count == 0 {
                self.online.remove(nick);
            }
        }
    }

    pub fn is_online(&self, nick: &str) -> bool {
        self.online.contains_key(nick)
    }

    /// Rooms with members, sorted by name, with their member counts (distinct nicks).
    pub fn listing(&self) -> Vec<(String, usize)> {
        let mut rooms: Vec<(String, usize)> = self
            .rooms
            .iter()
            .filter(|(_, r)| !r.members.is_empty())
            .map(|(n, r)| (n.clone(), r.members.len()))
            .collect();
        rooms.sort();
        rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(history: usize) -> Hub {
        Hub::new(history, Duration::from_secs(60), 100)
    }

    #[test]
    fn recovery_inside_and_outside_the_window() {
        let now = Instant::now();
        let mut h = hub(3);
        h.join("r", "a", None, now).unwrap();
        for i in 1..=5 {
            let (seq, _) = h.record("r", now, |s| format!("m{s}")).unwrap();
            assert_eq!(seq, i);
        }
        // Held: 3, 4, 5.
        let r = h.join("r", "b", Some(2), now).unwrap();
        assert_eq!(r.recovered, Some(true));
        assert_eq!(
            r.history.iter().map(|s| &**s).collect::<Vec<_>>(),
            ["m3", "m4", "m5"]
        );
        let r = h.join("r", "c", Some(4), now).unwrap();
        assert_eq!((r.recovered, r.history.len(), r.latest), (Some(true), 1, 5));
        let r = h.join("r", "d", Some(1), now).unwrap();
        assert_eq!((r.recovered, r.history.len()), (Some(false), 3));
        let r = h.join("r", "e", Some(5), now).unwrap();
        assert_eq!((r.recovered, r.history.len()), (Some(true), 0));
    }

    #[test]
    fn members_count_connections_and_rooms_expire_after_the_ttl() {
        let now = Instant::now();
        let mut h = hub(10);
        assert!(h.join("r", "a", None, now).unwrap().first);
        assert!(!h.join("r", "a", None, now).unwrap().first);
        assert!(!h.leave("r", "a", now));
        assert!(h.leave("r", "a", now));
        assert!(h.listing().is_empty());
        h.sweep(now + Duration::from_secs(59));
        assert!(h.rooms.contains_key("r"));
        h.sweep(now + Duration::from_secs(61));
        assert!(!h.rooms.contains_key("r"));
    }

    #[test]
    fn rooms_are_limited() {
        let now = Instant::now();
        let mut h = Hub::new(10, Duration::from_secs(60), 2);
        h.join("a", "x", None, now).unwrap();
        h.join("b", "x", None, now).unwrap();
        assert_eq!(
            h.join("c", "x", None, now).err(),
            Some(RoomError::TooManyRooms)
        );
    }
}

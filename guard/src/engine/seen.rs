//! Duplicate suppression: the ids of every message applied within the state horizon
//! (`[state] horizon` of the policy, counted back from the newest event time).
//!
//! Ids are kept as 128-bit xxh3 hashes of (stream, id) rather than strings: a tenth of
//! the memory, one allocation-free probe per message, and a collision chance that
//! stays below 1e-20 for a billion ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::Stream;

/// A 128-bit key as two words, so an entry (key and stamp) takes 24 bytes, not 32.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(u64, u64);

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a uniform hash: half of it is a good hash.
        state.write_u64(self.0);
    }
}

impl Key {
    fn from_u128(k: u128) -> Key {
        Key((k >> 64) as u64, k as u64)
    }

    fn to_u128(self) -> u128 {
        (u128::from(self.0) << 64) | u128::from(self.1)
    }
}

/// The keys are already uniform hashes; hashing them again would be wasted work.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The applied message ids with the event time (whole seconds) of each, so ids older
/// than the state horizon can be forgotten; with an optional journal of the entries
/// added since it was last drained (a store persists those incrementally instead of
/// rewriting the whole set at every checkpoint).
#[derive(Clone, Debug, Default)]
pub struct Seen {
    ids: HashMap<Key, i64, BuildHasherDefault<PassThrough>>,
    journal: Option<Vec<(u128, i64)>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.to_u128())
    }
}

impl PartialEq for Seen {
    fn eq(&self, other: &Self) -> bool {
        self.ids == other.ids
    }
}

impl Eq for Seen {}

impl Seen {
    fn key(stream: Stream, id: &str) -> Key {
        Key::from_u128(xxhash_rust::xxh3::xxh3_128_with_seed(
            id.as_bytes(),
            stream as u64 + 1,
        ))
    }

    /// Records `id` of `stream`, of event time `second`; false when it was already
    /// there.
    pub fn insert(&mut self, stream: Stream, id: &str, second: i64) -> bool {
        let key = Self::key(stream, id);
        match self.ids.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(second);
                if let Some(journal) = &mut self.journal {
                    journal.push((key.to_u128(), second));
                }
                true
            }
        }
    }

    /// Forgets every id of an event time before `second`.
    pub fn forget_before(&mut self, second: i64) {
        self.ids.retain(|_, s| *s >= second);
    }

    /// Starts recording added entries for [`Seen::drain_journal`].
    pub fn enable_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The entries (key, second) added since the last drain (empty when the journal
    /// is off).
    pub fn drain_journal(&mut self) -> Vec<(u128, i64)> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Adds entries (as drained from a journal) back, when restoring.
    pub fn extend_entries(&mut self, entries: impl IntoIterator<Item = (u128, i64)>) {
        self.ids
            .extend(entries.into_iter().map(|(k, s)| (Key::from_u128(k), s)));
    }

    /// Every entry (key, second), unordered.
    pub fn entries(&self) -> impl Iterator<Item = (u128, i64)> + '_ {
        self.ids.iter().map(|(k, s)| (k.to_u128(), *s))
    }

    /// Whether `id` of `stream` was recorded.
    pub fn contains(&self, stream: Stream, id: &str) -> bool {
        self.ids.contains_key(&Self::key(stream, id))
    }

    /// How many ids are recorded.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Serialize for Seen {
    /// Sorted `key:second` strings, so equal sets serialise to equal bytes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut entries: Vec<(u128, i64)> = self.entries().collect();
        entries.sort_unstable();
        s.collect_seq(entries.iter().map(|(k, sec)| format!("{k:032x}:{sec}")))
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: Vec<String> = Vec::deserialize(d)?;
        let mut ids = HashMap::with_capacity_and_hasher(text.len(), Default::default());
        for entry in text {
            let (hex, second) = entry
                .split_once(':')
                .ok_or_else(|| serde::de::Error::custom("a seen entry is key:second"))?;
            let key = u128::from_str_radix(hex, 16).map_err(serde::de::Error::custom)?;
            let second: i64 = second.parse().map_err(serde::de::Error::custom)?;
            ids.insert(Key::from_u128(key), second);
        }
        Ok(Seen { ids, journal: None })
    }
}

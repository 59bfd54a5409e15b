//! Duplicate suppression: the ids of every message applied so far.
//!
//! Ids are kept as 128-bit xxh3 hashes of (stream, id) rather than strings: a tenth of
//! the memory, one allocation-free probe per message, and a collision chance that
//! stays below 1e-20 for a billion ids.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::Stream;

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
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// The set of applied message ids, with an optional journal of the keys added since
/// it was last drained (a store persists those incrementally instead of rewriting the
/// whole set at every checkpoint).
#[derive(Clone, Debug, Default)]
pub struct Seen {
    set: HashSet<u128, BuildHasherDefault<PassThrough>>,
    journal: Option<Vec<u128>>,
}

impl PartialEq for Seen {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set
    }
}

impl Eq for Seen {}

impl Seen {
    fn key(stream: Stream, id: &str) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(id.as_bytes(), stream as u64 + 1)
    }

    /// Records `id` of `stream`; false when it was already there.
    pub fn insert(&mut self, stream: Stream, id: &str) -> bool {
        let key = Self::key(stream, id);
        let fresh = self.set.insert(key);
        if fresh {
            if let Some(journal) = &mut self.journal {
                journal.push(key);
            }
        }
        fresh
    }

    /// Starts recording added keys for [`Seen::drain_journal`].
    pub fn enable_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The keys added since the last drain (empty when the journal is off).
    pub fn drain_journal(&mut self) -> Vec<u128> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Adds raw keys (as drained from a journal) back, when restoring.
    pub fn extend_keys(&mut self, keys: impl IntoIterator<Item = u128>) {
        self.set.extend(keys);
    }

    /// Every key, unordered.
    pub fn keys(&self) -> impl Iterator<Item = u128> + '_ {
        self.set.iter().copied()
    }

    /// Whether `id` of `stream` was recorded.
    pub fn contains(&self, stream: Stream, id: &str) -> bool {
        self.set.contains(&Self::key(stream, id))
    }

    /// How many ids are recorded.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl Serialize for Seen {
    /// Sorted hex strings, so equal sets serialise to equal bytes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut keys: Vec<u128> = self.set.iter().copied().collect();
        keys.sort_unstable();
        s.collect_seq(keys.iter().map(|k| format!("{k:032x}")))
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex: Vec<String> = Vec::deserialize(d)?;
        let mut set = HashSet::with_capacity_and_hasher(hex.len(), Default::default());
        for h in hex {
            set.insert(u128::from_str_radix(&h, 16).map_err(serde::de::Error::custom)?);
        }
        Ok(Seen { set, journal: None })
    }
}

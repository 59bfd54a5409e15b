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

/// The set of applied message ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen(HashSet<u128, BuildHasherDefault<PassThrough>>);

impl Seen {
    fn key(stream: Stream, id: &str) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(id.as_bytes(), stream as u64 + 1)
    }

    /// Records `id` of `stream`; false when it was already there.
    pub fn insert(&mut self, stream: Stream, id: &str) -> bool {
        self.0.insert(Self::key(stream, id))
    }

    /// Whether `id` of `stream` was recorded.
    pub fn contains(&self, stream: Stream, id: &str) -> bool {
        self.0.contains(&Self::key(stream, id))
    }

    /// How many ids are recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Seen {
    /// Sorted hex strings, so equal sets serialise to equal bytes.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut keys: Vec<u128> = self.0.iter().copied().collect();
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
        Ok(Seen(set))
    }
}

//! Duplicate suppression: the ids of every message applied within the state horizon
//! (`[state] horizon` of the policy, counted back from the newest event time).
//!
//! **What it answers.** Exactly what a map from id to event second would: an id is a
//! duplicate from the moment it is recorded until a [`Seen::forget_before`] with a
//! cutoff past its second — ids are recorded with their message's own event time
//! (whole seconds), and forgetting runs only when the engine sweeps (every eighth of
//! the horizon), so an id older than the last cutoff, recorded after it, is still
//! recognised until the next sweep, and a repeat arriving after its id was forgotten
//! is applied again (docs/CONTRACT-NOTES.md, "State horizon"). `tests.rs` holds that
//! map as a model and checks every answer against it.
//!
//! **How it is kept.** Ids are 128-bit xxh3 digests of (stream, id), cut to their top
//! 80 bits. Those go into *time buckets*, each an ordered hash table ([`table`]) of
//! 12-byte slots (fingerprint and second within the bucket), so the set costs 13 to
//! 15.6 bytes per remembered id (`tests/seen_memory.rs` measures it). A lookup probes
//! the newest bucket, and an older one only when that bucket's filter says the id may
//! be there ([`filter`]: a bucket the stream has moved past is *sealed* and keeps one).
//! A bucket covers a range of seconds; its width is an eighth of the distance the
//! engine keeps (learnt from the sweeps), and its edges are laid where the next
//! cutoffs are expected, so a sweep drops whole buckets. Each
//! bucket keeps the smallest and largest second it holds: one whose largest is before
//! the cutoff is dropped whole; the one a cutoff falls inside (when the stream left a
//! sweep off the grid) is trimmed, id by id, to what a map would keep — the boundary
//! is decided exactly. Ids older than the last cutoff, and any that fit no bucket
//! (more than [`MAX_BUCKETS`] ranges, or seconds at the ends of `i64`), go to a plain
//! map of full entries. A new last bucket reserves room for as many ids as the one
//! before it took, within what keeps the whole set under 15.6 bytes an id, so a
//! steady stream fills it without growing. The sealed buckets' filters count in that
//! budget.
//!
//! **Collisions.** Two ids with the same 80-bit fingerprint count as one, so a new fill
//! is dropped as a duplicate with probability n / 2^80 while n ids are remembered:
//! 7e-17 per fill at 86M ids (1,000 fills/s under the default day), about 2e-6 a year
//! at that rate; 8e-19 per fill at a million ids. That is the accepted risk (the full
//! 128-bit key would cost 16 bytes before any slack). xxh3 is not a cryptographic
//! hash: ids chosen to collide could be found, but fill ids come from the execution
//! system, not from an adversary.
//!
//! **Persisted form.** Entries leave the set (journal, [`Seen::entries`], the snapshot)
//! as the reduced 128-bit key, its low 48 bits zero, so whatever is restored finds the
//! same fingerprint; full keys from an older build reduce to it as well.

mod blocks;
mod entry;
mod filter;
mod persist;
mod table;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::message::Stream;
pub use blocks::SeenBlocks;
pub use entry::SeenEntry;
use filter::Filter;
use table::{Fingerprint, Table};

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
        self.0 = (v >> 64) as u64;
    }
}

/// At most this many buckets; ids of seconds no bucket can take go to the map.
const MAX_BUCKETS: usize = 64;
// A lookup lists the buckets to probe by index in a byte.
const _: () = assert!(MAX_BUCKETS <= 256);
/// The widest bucket: an offset within it fits 16 bits.
const MAX_WIDTH: i64 = 1 << 16;
/// Room reserved ahead for new ids keeps the set within 13/10 slots per id (15.6
/// bytes), the most a table reaches by growing.
const SLOTS_PER_ID: (usize, usize) = (13, 10);
/// The bucket width until the sweeps tell how far back the engine keeps ids.
const FIRST_WIDTH: i64 = 1 << 12;

/// The ids of one range of seconds.
#[derive(Clone)]
struct Bucket {
    /// First second of the range.
    from: i64,
    /// First second after it.
    until: i64,
    /// The smallest and largest second held.
    oldest: i64,
    newest: i64,
    ids: Table,
    /// Once sealed (the next bucket takes the stream's new ids): which ids it may
    /// hold, so that a lookup seldom probes its table ([`filter`]).
    filter: Option<Filter>,
}

impl Bucket {
    /// Hands the arrival of new ids over to a bucket `width` seconds wide after this
    /// one, and returns that bucket's table, with room reserved for as many ids as
    /// this one took over as many seconds (so a steady stream fills it without
    /// growing), up to `spare` slots. This one, which takes few ids from now on,
    /// gives back the room it did not use.
    fn hand_over(&mut self, width: i64, spare: usize) -> Table {
        self.ids.tighten();
        self.seal();
        let span = u128::try_from(self.until - self.from).unwrap_or(1).max(1);
        let width = u128::try_from(width).unwrap_or(0);
        let expected = self.ids.len() as u128 * width / span;
        let room = expected.min(spare as u128 * 7 / 8);
        Table::with_room(usize::try_from(room).unwrap_or(usize::MAX))
    }

    /// Keeps a filter of its ids from now on (rebuilt, if it had one).
    fn seal(&mut self) {
        self.filter = Some(Filter::of(&self.ids));
    }

    /// Adds an id (not held) at `offset` seconds into the bucket.
    fn insert(&mut self, fingerprint: Fingerprint, offset: u16) {
        self.ids.insert(fingerprint, offset);
        if let Some(filter) = &mut self.filter {
            filter.insert(fingerprint);
            if filter.overfull() {
                self.seal();
            }
        }
    }

    /// Whether a lookup must probe its table for `fingerprint`.
    fn may_hold(&self, fingerprint: Fingerprint) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|filter| filter.may_contain(fingerprint))
    }
}

/// Where new buckets are laid: edges at `origin + k × width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Grid {
    origin: i64,
    width: i64,
}

impl Grid {
    /// The edge at or before `second` (`None` beyond the ends of `i64`).
    fn edge_at(self, second: i64) -> Option<i64> {
        let steps = (i128::from(second) - i128::from(self.origin)).div_euclid(self.width.into());
        i64::try_from(i128::from(self.origin) + steps * i128::from(self.width)).ok()
    }

    /// The first edge after `second` (or the last second, if none fits).
    fn edge_after(self, second: i64) -> i64 {
        self.edge_at(second)
            .map_or(i64::MAX, |edge| edge.saturating_add(self.width))
    }
}

/// The applied message ids with the event time (whole seconds) of each, so ids older
/// than the state horizon can be forgotten; with an optional journal of the entries
/// added since it was last drained (a store persists those incrementally instead of
/// rewriting the whole set at every checkpoint). See the module doc.
#[derive(Clone, Default)]
pub struct Seen {
    /// Disjoint, in order of their seconds.
    buckets: Vec<Bucket>,
    /// Entries no bucket takes.
    others: HashMap<u128, i64, BuildHasherDefault<PassThrough>>,
    /// The largest cutoff so far: every bucketed id is of this second or later.
    floor: Option<i64>,
    /// The largest second recorded.
    newest: Option<i64>,
    /// Learnt from the sweeps (or the restored entries); `None` before.
    grid: Option<Grid>,
    journal: Option<SeenBlocks>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("len", &self.len())
            .field("buckets", &self.buckets.len())
            .field("others", &self.others.len())
            .field("floor", &self.floor)
            .field("grid", &self.grid)
            .finish()
    }
}

impl PartialEq for Seen {
    /// The same entries, however they are laid out.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.sorted_entries() == other.sorted_entries()
    }
}

impl Eq for Seen {}

/// The persisted key: the digest with the bits the fingerprint leaves out cleared,
/// never zero.
fn reduce(key: u128) -> u128 {
    let reduced = key >> Fingerprint::DROPPED_BITS << Fingerprint::DROPPED_BITS;
    if reduced == 0 {
        1 << Fingerprint::DROPPED_BITS
    } else {
        reduced
    }
}

impl Seen {
    fn key(stream: Stream, id: &str) -> u128 {
        reduce(xxhash_rust::xxh3::xxh3_128_with_seed(
            id.as_bytes(),
            stream as u64 + 1,
        ))
    }

    /// Records `id` of `stream`, of event time `second`; false when it was already
    /// there.
    pub fn insert(&mut self, stream: Stream, id: &str, second: i64) -> bool {
        let key = Self::key(stream, id);
        if self.contains_key(key) {
            return false;
        }
        self.add(key, second);
        if let Some(journal) = &mut self.journal {
            journal.push(SeenEntry::new(key, second));
        }
        true
    }

    /// Forgets every id of an event time before `second`: whole buckets, and the one
    /// bucket `second` falls inside trimmed exactly.
    pub fn forget_before(&mut self, second: i64) {
        self.others.retain(|_, s| *s >= second);
        if self.others.is_empty() {
            self.others = HashMap::default();
        }
        if self.floor.is_some_and(|floor| second <= floor) {
            // Every bucketed id is of `floor` or later.
            return;
        }
        self.learn_grid(second);
        self.floor = Some(second);
        // The buckets that hold a second before the cutoff come first: those wholly
        // before it go, the one it falls inside keeps its ids from the cutoff on.
        while let Some(b) = self.buckets.first_mut() {
            if b.oldest >= second {
                break;
            }
            if b.newest >= second {
                let from = b.from;
                if let Some(oldest) = b.ids.retain(|offset| from + i64::from(offset) >= second) {
                    b.oldest = from + i64::from(oldest);
                    if b.filter.is_some() {
                        b.seal();
                    }
                    break;
                }
            }
            self.buckets.remove(0);
        }
    }

    /// Lays the next buckets' edges where the sweeps are expected to cut: from this
    /// cutoff on, an eighth of the kept distance apart at first, then as far apart as
    /// the last two cutoffs.
    fn learn_grid(&mut self, cutoff: i64) {
        let width = match (self.floor, self.newest) {
            (Some(floor), _) if self.grid.is_some() => cutoff.saturating_sub(floor),
            (_, Some(newest)) => newest.saturating_sub(cutoff) / 8,
            _ => return,
        };
        let grid = Grid {
            origin: cutoff,
            width: width.clamp(1, MAX_WIDTH),
        };
        self.grid = Some(grid);
        // A bucket laid on an older grid takes no later second than the new grid
        // would give it (the first bucket, made before any sweep, most of all).
        for b in &mut self.buckets {
            b.until = b.until.min(grid.edge_after(b.newest));
        }
    }

    /// Starts recording added entries for [`Seen::drain_journal`].
    pub fn enable_journal(&mut self) {
        self.journal.get_or_insert_with(SeenBlocks::default);
    }

    /// The entries added since the last drain (empty when the journal is off).
    pub fn drain_journal(&mut self) -> SeenBlocks {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// How many entries the journal holds.
    pub fn journal_len(&self) -> usize {
        self.journal.as_ref().map_or(0, SeenBlocks::len)
    }

    /// Adds entries (as drained from a journal) back, when restoring; an entry for a
    /// key already held replaces it.
    pub fn extend_entries(&mut self, entries: impl IntoIterator<Item = (u128, i64)>) {
        let entries: Vec<(u128, i64)> = entries.into_iter().map(|(k, s)| (reduce(k), s)).collect();
        if self.grid.is_none() {
            let oldest = entries.iter().map(|(_, s)| *s).min();
            let newest = entries.iter().map(|(_, s)| *s).max();
            if let (Some(oldest), Some(newest)) = (oldest, newest) {
                self.grid = Some(Grid {
                    origin: oldest,
                    width: (newest.saturating_sub(oldest) / 8).clamp(1, MAX_WIDTH),
                });
            }
        }
        for (key, second) in entries {
            self.remove_key(key);
            self.add(key, second);
        }
        // Restored at once: every bucket but the newest is sealed, as a stream would
        // have left them.
        let newest = self.buckets.len().saturating_sub(1);
        for b in &mut self.buckets[..newest] {
            b.seal();
        }
    }

    /// Every entry (key, second), unordered.
    pub fn entries(&self) -> impl Iterator<Item = (u128, i64)> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| {
                b.ids
                    .iter()
                    .map(move |(f, offset)| (f.key(), b.from + i64::from(offset)))
            })
            .chain(self.others.iter().map(|(k, s)| (*k, *s)))
    }

    fn sorted_entries(&self) -> Vec<(u128, i64)> {
        let mut entries: Vec<(u128, i64)> = self.entries().collect();
        entries.sort_unstable();
        entries
    }

    /// Whether `id` of `stream` was recorded.
    pub fn contains(&self, stream: Stream, id: &str) -> bool {
        self.contains_key(Self::key(stream, id))
    }

    /// How many ids are recorded.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.ids.len()).sum::<usize>() + self.others.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn contains_key(&self, key: u128) -> bool {
        if !self.others.is_empty() && self.others.contains_key(&key) {
            return true;
        }
        let fingerprint = Fingerprint::of(key);
        // The buckets to probe, newest first (a repeat is most likely recent): a
        // sealed one only when its filter may hold the id.
        let mut probe = [0u8; MAX_BUCKETS];
        let mut n = 0;
        for (i, b) in self.buckets.iter().enumerate().rev() {
            if b.may_hold(fingerprint) {
                probe[n] = i as u8;
                n += 1;
            }
        }
        let probe = &probe[..n];
        if probe.len() > 1 {
            let first_slots = probe
                .iter()
                .map(|i| self.buckets[usize::from(*i)].ids.touch(fingerprint));
            std::hint::black_box(first_slots.fold(0, |all, hi| all ^ hi));
        }
        probe
            .iter()
            .any(|i| self.buckets[usize::from(*i)].ids.find(fingerprint).is_ok())
    }

    /// Records `key` (not held) in its bucket, or in the map.
    fn add(&mut self, key: u128, second: i64) {
        self.newest = Some(self.newest.map_or(second, |n| n.max(second)));
        let bucket = if self.floor.is_some_and(|floor| second < floor) {
            None
        } else {
            self.bucket_for(second)
        };
        match bucket {
            Some(i) => {
                let b = &mut self.buckets[i];
                let offset = u16::try_from(second - b.from).expect("a bucket spans 2^16 s");
                b.insert(Fingerprint::of(key), offset);
                b.oldest = b.oldest.min(second);
                b.newest = b.newest.max(second);
            }
            None => {
                self.others.insert(key, second);
            }
        }
    }

    /// Removes `key` wherever it is held.
    fn remove_key(&mut self, key: u128) {
        if self.others.remove(&key).is_some() {
            return;
        }
        let fingerprint = Fingerprint::of(key);
        for b in &mut self.buckets {
            if let Ok(at) = b.ids.find(fingerprint) {
                b.ids.remove(at);
                return;
            }
        }
    }

    /// Slots that can be reserved ahead while the set holds at most
    /// [`SLOTS_PER_ID`] slots per id (what growing tables may reach on their own),
    /// the sealed buckets' filters counted as the slots their bytes would make.
    fn spare_slots(&self) -> usize {
        let slots: usize = self
            .buckets
            .iter()
            .map(|b| b.ids.slots() + b.filter.as_ref().map_or(0, |f| f.bytes().div_ceil(12)))
            .sum();
        (self.len() * SLOTS_PER_ID.0 / SLOTS_PER_ID.1).saturating_sub(slots)
    }

    /// The bucket whose range holds `second`, made if there is none and room for
    /// one.
    fn bucket_for(&mut self, second: i64) -> Option<usize> {
        let i = self.buckets.partition_point(|b| b.until <= second);
        if self.buckets.get(i).is_some_and(|b| b.from <= second) {
            return Some(i);
        }
        if self.buckets.len() >= MAX_BUCKETS {
            return None;
        }
        let grid = self.grid.unwrap_or(Grid {
            origin: 0,
            width: FIRST_WIDTH,
        });
        let from = grid.edge_at(second)?;
        let until = from.checked_add(grid.width)?;
        let from = i
            .checked_sub(1)
            .map_or(from, |before| from.max(self.buckets[before].until));
        let until = self
            .buckets
            .get(i)
            .map_or(until, |after| until.min(after.from));
        let ids = if i == self.buckets.len() {
            let spare = self.spare_slots();
            self.buckets
                .last_mut()
                .map_or_else(Table::default, |last| last.hand_over(until - from, spare))
        } else {
            Table::default()
        };
        self.buckets.insert(
            i,
            Bucket {
                from,
                until,
                oldest: second,
                newest: second,
                ids,
                filter: None,
            },
        );
        Some(i)
    }
}

//! One time bucket's ids: 80-bit fingerprints, each with its second within the bucket,
//! in an ordered linear-probing table (Amble and Knuth's ordered hash table).
//!
//! A fingerprint's home slot is its top 64 bits scaled to the number of homes (its
//! place if the table were a sorted array without gaps), and the slots hold the
//! fingerprints in ascending order, each at or after its home with no gap between.
//! So:
//! - a search stops at the first slot that is empty or holds a larger fingerprint,
//!   about ½ (1 + 1/(1 − load)) slots on, found or not (7 at the highest load);
//! - the table can grow by any factor, not only by doubling, and growing moves every
//!   id forward, never back, so it is done in place: it runs between 78 % and 92 %
//!   full, 12 bytes a slot and 1.6 % more for the tail past the last home (where the
//!   last run may spill): 13.3 to 15.6 bytes an id.

use std::cmp::Ordering;

/// The top 80 bits of a 128-bit digest, never zero (zero marks an empty slot).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) struct Fingerprint {
    hi: u64,
    lo: u16,
}

impl Fingerprint {
    /// How many low bits of a digest a fingerprint leaves out.
    pub(super) const DROPPED_BITS: u32 = 48;

    /// The fingerprint of a digest whose low [`Fingerprint::DROPPED_BITS`] are zero
    /// and which is not zero (see [`super::Seen`]'s key reduction).
    pub(super) fn of(key: u128) -> Fingerprint {
        debug_assert!(key != 0 && key.trailing_zeros() >= Self::DROPPED_BITS);
        Fingerprint {
            hi: (key >> 64) as u64,
            lo: (key >> Self::DROPPED_BITS) as u16,
        }
    }

    /// Its top 64 bits.
    pub(super) fn hi(self) -> u64 {
        self.hi
    }

    /// The reduced digest this fingerprint stands for.
    pub(super) fn key(self) -> u128 {
        (u128::from(self.hi) << 64) | (u128::from(self.lo) << Self::DROPPED_BITS)
    }
}

/// A fingerprint and its second within the bucket, in 12 bytes; all zero when empty.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Slot {
    hi: u64,
    /// The fingerprint's low 16 bits above the offset's 16.
    rest: u32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 12);

impl Slot {
    const EMPTY: Slot = Slot { hi: 0, rest: 0 };

    fn new(fingerprint: Fingerprint, offset: u16) -> Slot {
        Slot {
            hi: fingerprint.hi,
            rest: (u32::from(fingerprint.lo) << 16) | u32::from(offset),
        }
    }

    fn fingerprint(self) -> Option<Fingerprint> {
        let fingerprint = Fingerprint {
            hi: self.hi,
            lo: (self.rest >> 16) as u16,
        };
        (fingerprint != Fingerprint { hi: 0, lo: 0 }).then_some(fingerprint)
    }

    fn offset(self) -> u16 {
        self.rest as u16
    }

    fn is_empty(self) -> bool {
        self.hi == 0 && self.rest >> 16 == 0
    }
}

/// Loads in thousandths. A table grows when more than `FULL` of its homes would hold
/// an id, to `GROWN`; one sized for a known number of ids (or tightened) is `SIZED`.
const FULL: usize = 920;
const GROWN: usize = 780;
const SIZED: usize = 900;
const MIN_HOMES: usize = 8;

/// Homes for `ids` at `load`.
fn homes_for(ids: usize, load: usize) -> usize {
    ids * 1000 / load + 1
}

/// The slots past the last home that a table of `homes` starts with.
fn tail(homes: usize) -> usize {
    homes / 64 + 8
}

/// The ids of one bucket (see the module doc).
#[derive(Clone, Default)]
pub(super) struct Table {
    slots: Vec<Slot>,
    homes: usize,
    len: usize,
}

impl Table {
    /// An empty table with room for `ids` before it grows.
    pub(super) fn with_room(ids: usize) -> Table {
        let mut table = Table::default();
        if ids > 0 {
            table.rebuild(homes_for(ids, SIZED), |_| true);
        }
        table
    }

    /// Rebuilds it tighter if growing (or an overestimated [`Table::with_room`]) left
    /// it less than `GROWN` full: for a table that takes few ids from now on.
    pub(super) fn tighten(&mut self) {
        if self.len * 1000 < self.homes * GROWN {
            self.rebuild(homes_for(self.len, SIZED), |_| true);
        }
    }

    /// How many slots it has (12 bytes each).
    pub(super) fn slots(&self) -> usize {
        self.slots.capacity()
    }

    /// How many ids it holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn home(&self, hi: u64) -> usize {
        ((u128::from(hi) * self.homes as u128) >> 64) as usize
    }

    /// Where `fingerprint` is, or else where it would go.
    pub(super) fn find(&self, fingerprint: Fingerprint) -> Result<usize, usize> {
        if self.homes == 0 {
            return Err(0);
        }
        let mut at = self.home(fingerprint.hi);
        while let Some(slot) = self.slots.get(at) {
            match slot.fingerprint().map(|f| f.cmp(&fingerprint)) {
                Some(Ordering::Less) => at += 1,
                Some(Ordering::Equal) => return Ok(at),
                Some(Ordering::Greater) | None => return Err(at),
            }
        }
        Err(at)
    }

    /// Reads where a search for `fingerprint` starts, and five slots on (the next
    /// cache line, which a search often reaches): searches in several tables, each a
    /// likely cache miss, then wait for memory together instead of one after another.
    pub(super) fn touch(&self, fingerprint: Fingerprint) -> u64 {
        let home = self.home(fingerprint.hi);
        let hi = |at: usize| self.slots.get(at).map_or(0, |s| s.hi);
        hi(home) ^ hi(home + 5)
    }

    /// Adds `fingerprint` (which it does not hold) with `offset`.
    pub(super) fn insert(&mut self, fingerprint: Fingerprint, offset: u16) {
        if (self.len + 1) * 1000 > self.homes * FULL {
            let homes = homes_for(self.len + 1, GROWN).max(MIN_HOMES);
            self.grow(homes);
        }
        let at = self
            .find(fingerprint)
            .expect_err("a fingerprint is inserted once");
        let free = match self.slots[at.min(self.slots.len())..]
            .iter()
            .position(|s| s.is_empty())
        {
            Some(n) => at + n,
            None => {
                self.extend_tail();
                self.slots.len() - tail(self.homes)
            }
        };
        self.slots.copy_within(at..free, at + 1);
        self.slots[at] = Slot::new(fingerprint, offset);
        self.len += 1;
    }

    /// Removes the id at `at` (a position [`Table::find`] returned), shifting back the
    /// ids after it that are not at their home.
    pub(super) fn remove(&mut self, at: usize) {
        let mut hole = at;
        while let Some(next) = self.slots.get(hole + 1).copied() {
            if next.is_empty() || self.home(next.hi) > hole {
                break;
            }
            self.slots[hole] = next;
            hole += 1;
        }
        self.slots[hole] = Slot::EMPTY;
        self.len -= 1;
    }

    /// Keeps the ids whose offset passes `keep`, in a table sized for them; returns
    /// the smallest offset kept.
    pub(super) fn retain(&mut self, keep: impl Fn(u16) -> bool) -> Option<u16> {
        let kept = self.iter().filter(|(_, offset)| keep(*offset)).count();
        self.rebuild(homes_for(kept, SIZED), keep);
        self.iter().map(|(_, offset)| offset).min()
    }

    /// Every id, in fingerprint order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Fingerprint, u16)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.fingerprint().map(|f| (f, s.offset())))
    }

    /// Moves the ids that pass `keep` into a new array of `homes` homes (at least
    /// [`MIN_HOMES`]), in one pass: each goes to its new home or just after the one
    /// before it.
    fn rebuild(&mut self, homes: usize, keep: impl Fn(u16) -> bool) {
        let old = std::mem::take(&mut self.slots);
        self.homes = homes.max(MIN_HOMES);
        self.len = 0;
        let mut slots = Vec::with_capacity(self.homes + tail(self.homes));
        for slot in old
            .into_iter()
            .filter(|s| !s.is_empty() && keep(s.offset()))
        {
            let at = self.home(slot.hi).max(slots.len());
            if at >= slots.capacity() {
                slots.reserve_exact(at + 1 + tail(self.homes) - slots.len());
            }
            slots.resize(at, Slot::EMPTY);
            slots.push(slot);
            self.len += 1;
        }
        let end = slots.len();
        self.slots = slots;
        self.pad(end);
    }

    /// Grows to `homes` homes in place. With more homes no id moves back, so one pass
    /// from the front works out where each id goes, and one from the back moves them
    /// there, last first, over slots already vacated.
    fn grow(&mut self, homes: usize) {
        let old_homes = std::mem::replace(&mut self.homes, homes);
        let Some((shifts, last_end)) = self.shifts() else {
            // An id more than 65,535 slots past its home: not worth a special case.
            self.homes = old_homes;
            return self.rebuild(homes, |_| true);
        };
        let old_length = self.slots.len();
        self.pad(last_end);
        let mut end = self.slots.len();
        let mut shifts = shifts.into_iter().rev();
        for from in (0..old_length).rev() {
            let slot = self.slots[from];
            if slot.is_empty() {
                continue;
            }
            let at = self.home(slot.hi) + usize::from(shifts.next().expect("a shift per id"));
            self.slots[at + 1..end].fill(Slot::EMPTY);
            self.slots[at] = slot;
            end = at;
        }
        self.slots[..end].fill(Slot::EMPTY);
    }

    /// How far past its home (under the present `homes`) each id goes, in order, and
    /// where the last one ends; `None` if a distance exceeds 16 bits.
    fn shifts(&self) -> Option<(Vec<u16>, usize)> {
        let mut shifts = Vec::with_capacity(self.len);
        let mut next = 0;
        for slot in self.slots.iter().filter(|s| !s.is_empty()) {
            let home = self.home(slot.hi);
            let at = home.max(next);
            shifts.push(u16::try_from(at - home).ok()?);
            next = at + 1;
        }
        Some((shifts, next))
    }

    /// Lengthens the array to its homes and tail, and to half a tail past `end` (where
    /// the last id ends).
    fn pad(&mut self, end: usize) {
        let length = (self.homes + tail(self.homes))
            .max(end + tail(self.homes) / 2)
            .max(self.slots.len());
        self.slots.reserve_exact(length - self.slots.len());
        self.slots.resize(length, Slot::EMPTY);
    }

    /// More room past the last home, for a run that spills beyond the tail.
    fn extend_tail(&mut self) {
        let more = tail(self.homes);
        self.slots.reserve_exact(more);
        self.slots.resize(self.slots.len() + more, Slot::EMPTY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(n: u64) -> Fingerprint {
        let key = xxhash_rust::xxh3::xxh3_128(&n.to_le_bytes()) | (1 << 48);
        Fingerprint::of(key >> Fingerprint::DROPPED_BITS << Fingerprint::DROPPED_BITS)
    }

    fn assert_ordered(table: &Table) {
        let fingerprints: Vec<Fingerprint> = table.iter().map(|(f, _)| f).collect();
        assert!(fingerprints.windows(2).all(|w| w[0] < w[1]));
        for (at, slot) in table.slots.iter().enumerate() {
            if slot.fingerprint().is_some() {
                let home = table.home(slot.hi);
                assert!(home <= at);
                assert!(table.slots[home..at]
                    .iter()
                    .all(|s| s.fingerprint().is_some()));
            }
        }
    }

    #[test]
    fn inserted_ids_are_found_with_their_offsets_and_others_are_not() {
        let mut table = Table::default();
        for n in 0..5_000 {
            table.insert(fingerprint(n), n as u16);
        }
        assert_ordered(&table);
        assert_eq!(table.len(), 5_000);
        for n in 0..5_000 {
            let at = table.find(fingerprint(n)).expect("inserted");
            assert_eq!(table.slots[at].offset(), n as u16);
        }
        assert!((5_000..10_000).all(|n| table.find(fingerprint(n)).is_err()));
        let load = table.len() as f64 / table.homes as f64;
        assert!((0.78..=0.92).contains(&load), "load {load}");
    }

    #[test]
    fn removing_and_retaining_keep_the_order_and_every_other_id() {
        let mut table = Table::default();
        for n in 0..2_000 {
            table.insert(fingerprint(n), (n % 100) as u16);
        }
        for n in (0..2_000).step_by(3) {
            let at = table.find(fingerprint(n)).expect("inserted");
            table.remove(at);
        }
        assert_ordered(&table);
        let smallest = table.retain(|offset| offset >= 50);
        assert_eq!(smallest, Some(50));
        assert_ordered(&table);
        for n in 0..2_000u64 {
            let kept = n % 3 != 0 && n % 100 >= 50;
            assert_eq!(table.find(fingerprint(n)).is_ok(), kept, "id {n}");
        }
        assert_eq!(
            table.len(),
            (0..2_000u64)
                .filter(|n| n % 3 != 0 && n % 100 >= 50)
                .count()
        );
    }

    #[test]
    fn a_run_that_spills_past_the_tail_gets_more_room() {
        // Every fingerprint homes to the last slot.
        let mut table = Table::default();
        for lo in 1..200u16 {
            table.insert(Fingerprint { hi: u64::MAX, lo }, lo);
        }
        assert_ordered(&table);
        assert_eq!(table.len(), 199);
        assert!(table
            .find(Fingerprint {
                hi: u64::MAX,
                lo: 150
            })
            .is_ok());
    }

    #[test]
    fn growing_past_16_bit_distances_rebuilds_instead() {
        // 70,000 ids whose homes, once grown, are all the last one: the distances
        // overflow 16 bits, and the table is rebuilt the plain way.
        let n = 70_000u64;
        let mut table = Table {
            slots: (0..n)
                .map(|k| {
                    Slot::new(
                        Fingerprint {
                            hi: u64::MAX - n + k,
                            lo: 1,
                        },
                        7,
                    )
                })
                .chain(std::iter::repeat_n(Slot::EMPTY, 8))
                .collect(),
            homes: 1,
            len: n as usize,
        };
        table.grow(100_000);
        assert_eq!(table.len(), n as usize);
        let his: Vec<u64> = table.iter().map(|(f, _)| f.hi).collect();
        assert_eq!(his, (0..n).map(|k| u64::MAX - n + k).collect::<Vec<_>>());
        assert_eq!(table.slots.iter().position(|s| !s.is_empty()), Some(99_999));
    }
}

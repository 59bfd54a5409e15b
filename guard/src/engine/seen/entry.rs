//! One remembered id as it leaves the set, in 16 bytes.

use super::{reduce, table::Fingerprint};

/// One remembered id as it leaves the set (the journal of new ids, a checkpoint's
/// blocks, the changelog): the persisted key — the digest's top 80 bits, the rest
/// zero — with the event second packed into those 48 clear bits. 16 bytes, where a
/// `(u128, i64)` pair takes 32 with its padding; the journal of a backlog drain holds
/// hundreds of thousands of them until the store has written them.
///
/// The second is kept as a signed 48-bit number (±4.4 million years). Every event time
/// is a [`crate::time::Timestamp`], microseconds in an `i64`, whose seconds are within
/// ±2^43: they always fit. A second beyond ±2^47, which no message can carry, would be
/// clamped to the nearest end.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeenEntry(u128);

const SECOND_BITS: u32 = Fingerprint::DROPPED_BITS;
const SECOND_MASK: u128 = (1 << SECOND_BITS) - 1;
const MAX_SECOND: i64 = (1 << (SECOND_BITS - 1)) - 1;
const MIN_SECOND: i64 = -(1 << (SECOND_BITS - 1));

impl SeenEntry {
    /// The entry of dedup key `key` (a full 128-bit digest is reduced to its persisted
    /// form) and event second `second`.
    pub fn new(key: u128, second: i64) -> SeenEntry {
        let second = second.clamp(MIN_SECOND, MAX_SECOND);
        // Two's complement, cut to 48 bits; `second()` extends the sign back.
        let low = u128::from(second as u64) & SECOND_MASK;
        SeenEntry(reduce(key) | low)
    }

    /// The persisted dedup key (its low 48 bits zero).
    pub fn key(self) -> u128 {
        self.0 & !SECOND_MASK
    }

    /// The event second of the message the id came with.
    pub fn second(self) -> i64 {
        let low = (self.0 & SECOND_MASK) as u64;
        ((low << (64 - SECOND_BITS)) as i64) >> (64 - SECOND_BITS)
    }

    /// The pair `(key, second)`.
    pub fn pair(self) -> (u128, i64) {
        (self.key(), self.second())
    }
}

impl From<(u128, i64)> for SeenEntry {
    fn from((key, second): (u128, i64)) -> SeenEntry {
        SeenEntry::new(key, second)
    }
}

impl std::fmt::Debug for SeenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeenEntry({:032x}, {})", self.key(), self.second())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_entry_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<SeenEntry>(), 16);
        assert_eq!(std::mem::size_of::<(u128, i64)>(), 32);
    }

    #[test]
    fn seconds_beyond_48_bits_are_clamped_to_the_ends() {
        assert_eq!(SeenEntry::new(1 << 100, i64::MAX).second(), MAX_SECOND);
        assert_eq!(SeenEntry::new(1 << 100, i64::MIN).second(), MIN_SECOND);
        assert_eq!(SeenEntry::new(1 << 100, i64::MIN).key(), 1 << 100);
    }

    proptest! {
        /// Every key reduces as the set reduces it, and every second a timestamp can
        /// carry comes back unchanged.
        #[test]
        fn packing_keeps_the_reduced_key_and_the_second(
            key in any::<u128>(),
            second in (i64::MIN / 1_000_000)..=(i64::MAX / 1_000_000),
        ) {
            let entry = SeenEntry::new(key, second);
            prop_assert_eq!(entry.key(), reduce(key));
            prop_assert_eq!(entry.second(), second);
            prop_assert_eq!(SeenEntry::from(entry.pair()), entry);
        }
    }
}

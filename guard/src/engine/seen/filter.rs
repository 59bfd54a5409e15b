//! A sealed bucket's filter: whether a fingerprint may be among its ids.
//!
//! A new id is looked for in every live bucket, and each bucket's table is large
//! enough that a probe is a cache miss: with the eight or nine buckets of a day's
//! horizon, that was a sixth of the decision thread's time in a backlog drain. A
//! bucket that no longer takes the stream's new ids (sealed when the next one takes
//! over) keeps this filter of its ids — 6 bits an id, a few hundred kilobytes for all
//! of them, which stay in the CPU's cache — and its table is probed only when the
//! filter says the id may be there: for about one new id in fifteen.
//!
//! It is a Bloom filter blocked to one 64-bit word an id (three bits set in the word
//! the fingerprint picks), so a check is one read. It never answers "no" for an id it
//! took. Ids that leave the bucket leave their bits set (more false "maybe"s, never a
//! wrong answer) until the filter is rebuilt from the table; so are ids that arrive
//! late, past what it was sized for.

use super::table::{Fingerprint, Table};

/// Bits per id the filter is sized for (three set per id): about 7 % false "maybe"s.
const BITS_PER_ID: usize = 6;

#[derive(Clone)]
pub(super) struct Filter {
    words: Vec<u64>,
    /// Ids it was sized for, and ids it took.
    capacity: usize,
    added: usize,
}

impl Filter {
    /// The filter of `table`'s ids.
    pub(super) fn of(table: &Table) -> Filter {
        let capacity = table.len().max(1);
        let words = (capacity * BITS_PER_ID).div_ceil(64);
        let mut filter = Filter {
            words: vec![0; words],
            capacity,
            added: 0,
        };
        for (fingerprint, _) in table.iter() {
            filter.insert(fingerprint);
        }
        filter
    }

    /// The word of `fingerprint` (from its top bits) and its three bits there (from
    /// its lowest 18 bits of the top 64: independent of the word).
    fn place(&self, fingerprint: Fingerprint) -> (usize, u64) {
        let hi = fingerprint.hi();
        let word = ((u128::from(hi) * self.words.len() as u128) >> 64) as usize;
        let mask = (1u64 << (hi & 63)) | (1u64 << ((hi >> 6) & 63)) | (1u64 << ((hi >> 12) & 63));
        (word, mask)
    }

    /// Whether `fingerprint` may be among the ids (false: it is not).
    pub(super) fn may_contain(&self, fingerprint: Fingerprint) -> bool {
        let (word, mask) = self.place(fingerprint);
        self.words[word] & mask == mask
    }

    /// Takes one more id.
    pub(super) fn insert(&mut self, fingerprint: Fingerprint) {
        let (word, mask) = self.place(fingerprint);
        self.words[word] |= mask;
        self.added += 1;
    }

    /// Whether it took a quarter more ids than it was sized for (its false "maybe"s
    /// have grown by half): time to rebuild it from the table.
    pub(super) fn overfull(&self) -> bool {
        self.added > self.capacity + self.capacity / 4
    }

    /// Heap bytes it holds.
    pub(super) fn bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(n: u64) -> Fingerprint {
        let digest = xxhash_rust::xxh3::xxh3_128(&n.to_le_bytes());
        Fingerprint::of(super::super::reduce(digest))
    }

    #[test]
    fn every_id_taken_may_be_there_and_few_others_seem_to() {
        let mut table = Table::default();
        for n in 0..100_000 {
            table.insert(fingerprint(n), 0);
        }
        let mut filter = Filter::of(&table);
        assert!((0..100_000).all(|n| filter.may_contain(fingerprint(n))));
        let false_maybes = (100_000..200_000)
            .filter(|n| filter.may_contain(fingerprint(*n)))
            .count();
        // About 7 % expected; a filter that says "maybe" to everything fails.
        assert!(
            false_maybes < 10_000,
            "{false_maybes} false maybes in 100,000"
        );
        assert!(filter.bytes() <= 100_000 * BITS_PER_ID / 8 + 8);
        // Late ids: taken, then found; past a quarter more it asks for a rebuild.
        for n in 200_000..225_000 {
            assert!(!filter.overfull());
            filter.insert(fingerprint(n));
        }
        assert!((200_000..225_000).all(|n| filter.may_contain(fingerprint(n))));
        filter.insert(fingerprint(225_000));
        assert!(filter.overfull());
    }
}

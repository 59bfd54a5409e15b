//! Dedup entries on their way to the store, in blocks of a fixed size.
//!
//! The journal of a backlog drain holds hundreds of thousands of new ids while a
//! checkpoint waits for its order record and the store. In one `Vec` it grew by
//! doubling: up to twice the room it needed, and at each step a copy with both
//! buffers alive. Blocks grow one at a time and move whole from the journal to a
//! checkpoint, to the store and to the changelog (whose blocks have the same size).

use super::SeenEntry;

/// Entries per block: 256 KiB, the changelog's block size.
pub const BLOCK: usize = 16 * 1024;

/// Dedup entries in arrival order, kept as blocks of at most [`BLOCK`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeenBlocks {
    blocks: Vec<Vec<SeenEntry>>,
    len: usize,
}

impl SeenBlocks {
    /// Adds an entry at the end.
    pub fn push(&mut self, entry: SeenEntry) {
        match self.blocks.last_mut() {
            Some(block) if block.len() < BLOCK => block.push(entry),
            _ => {
                let mut block = Vec::with_capacity(BLOCK);
                block.push(entry);
                self.blocks.push(block);
            }
        }
        self.len += 1;
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = SeenEntry> + '_ {
        self.blocks.iter().flatten().copied()
    }

    /// The entries as slices of at most [`BLOCK`], in order.
    pub fn slices(&self) -> impl Iterator<Item = &[SeenEntry]> + '_ {
        self.blocks.iter().map(Vec::as_slice)
    }

    /// Moves `later`'s entries after these (whole blocks: nothing is copied).
    pub fn append(&mut self, later: SeenBlocks) {
        self.len += later.len;
        self.blocks.extend(later.blocks);
    }

    /// Moves `earlier`'s entries before these.
    pub fn prepend(&mut self, mut earlier: SeenBlocks) {
        earlier.append(std::mem::take(self));
        *self = earlier;
    }

    /// Keeps the entries `keep` says yes to, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&SeenEntry) -> bool) {
        for block in &mut self.blocks {
            block.retain(&mut keep);
        }
        self.blocks.retain(|block| !block.is_empty());
        self.len = self.blocks.iter().map(Vec::len).sum();
    }
}

impl FromIterator<SeenEntry> for SeenBlocks {
    fn from_iter<I: IntoIterator<Item = SeenEntry>>(entries: I) -> Self {
        let mut blocks = SeenBlocks::default();
        for entry in entries {
            blocks.push(entry);
        }
        blocks
    }
}

impl From<Vec<SeenEntry>> for SeenBlocks {
    fn from(entries: Vec<SeenEntry>) -> Self {
        entries.into_iter().collect()
    }
}

impl From<&[SeenEntry]> for SeenBlocks {
    fn from(entries: &[SeenEntry]) -> Self {
        entries.iter().copied().collect()
    }
}

impl<const N: usize> From<[SeenEntry; N]> for SeenBlocks {
    fn from(entries: [SeenEntry; N]) -> Self {
        entries.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(range: std::ops::Range<u64>) -> Vec<SeenEntry> {
        range
            .map(|i| SeenEntry::new(u128::from(i + 1) << 64, i as i64))
            .collect()
    }

    #[test]
    fn entries_keep_their_order_across_blocks_and_no_block_outgrows_its_size() {
        let all = entries(0..(2 * BLOCK as u64 + 7));
        let blocks: SeenBlocks = all.iter().copied().collect();
        assert_eq!(blocks.len(), all.len());
        assert_eq!(blocks.iter().collect::<Vec<_>>(), all);
        let sizes: Vec<usize> = blocks.slices().map(<[SeenEntry]>::len).collect();
        assert_eq!(sizes, [BLOCK, BLOCK, 7]);
    }

    #[test]
    fn append_prepend_and_retain_answer_as_a_vec_would() {
        let (a, b, c) = (
            entries(0..10),
            entries(10..20),
            entries(20..BLOCK as u64 + 30),
        );
        let mut blocks = SeenBlocks::from(b.clone());
        blocks.append(SeenBlocks::from(c.clone()));
        blocks.prepend(SeenBlocks::from(a.clone()));
        let mut model: Vec<SeenEntry> = [a, b, c].concat();
        assert_eq!(blocks.iter().collect::<Vec<_>>(), model);
        assert_eq!(blocks.len(), model.len());
        blocks.push(SeenEntry::new(7 << 64, 99));
        model.push(SeenEntry::new(7 << 64, 99));
        let keep = |e: &SeenEntry| e.second() % 3 != 0;
        blocks.retain(keep);
        model.retain(keep);
        assert_eq!(blocks.iter().collect::<Vec<_>>(), model);
        assert_eq!(blocks.len(), model.len());
        blocks.retain(|_| false);
        assert!(blocks.is_empty());
        assert_eq!(blocks.slices().count(), 0);
    }
}

//! Where on the state topic a checkpoint's order records begin.

use std::collections::{BTreeMap, BTreeSet};

/// Tracks where this life's order records landed on the state topic, so that each
/// checkpoint can say where the records after it begin
/// ([`crate::live::store::Checkpoint::journal_from`]): the offset of the record it
/// was cut at. Every later record of this life follows that one on the topic (one
/// idempotent producer keeps their order; a later record sent again after a failure
/// lands later still), and every record of a later life was written after the
/// checkpoint was. When the record it was cut at had to be sent again, records
/// written after its first try may stand before it: the checkpoint then says
/// nothing (`None`: a restart reads from the topic's start).
#[derive(Debug, Default)]
pub struct Placed {
    /// The answer for checkpoints before this life's first record: the restored
    /// checkpoint's; then the last one given.
    from: Option<i64>,
    /// Offsets of acknowledged records, from the newest checkpoint's record on.
    offsets: BTreeMap<u64, i64>,
    /// Records sent again, from the newest checkpoint's record on.
    resent: BTreeSet<u64>,
}

impl Placed {
    /// Starting from a restored checkpoint's `journal_from`.
    pub fn new(restored: Option<i64>) -> Placed {
        Placed {
            from: restored,
            ..Placed::default()
        }
    }

    /// Record `n` is on the broker at `offset`.
    pub fn acked(&mut self, n: u64, offset: i64) {
        self.offsets.insert(n, offset);
    }

    /// Record `n` is sent again after a failed delivery.
    pub fn resent(&mut self, n: u64) {
        self.resent.insert(n);
    }

    /// Where the records after a checkpoint cut at this life's record `record` begin
    /// (0: before this life wrote any). Records before it are forgotten.
    pub fn checkpoint_at(&mut self, record: u64) -> Option<i64> {
        if record > 0 {
            self.from = self
                .offsets
                .get(&record)
                .copied()
                .filter(|_| !self.resent.contains(&record));
            self.offsets = self.offsets.split_off(&record);
            self.resent = self.resent.split_off(&record);
        }
        self.from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_begins_at_the_record_it_was_cut_at() {
        let mut placed = Placed::new(Some(7));
        // Before this life's first record: where the restored checkpoint's began.
        assert_eq!(placed.checkpoint_at(0), Some(7));
        placed.acked(1, 40);
        placed.acked(2, 45);
        assert_eq!(placed.checkpoint_at(2), Some(45));
        assert_eq!(placed.checkpoint_at(0), Some(45), "nothing new recorded");
        // Records before the newest checkpoint's are forgotten.
        assert_eq!(placed.offsets.keys().copied().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_checkpoint_cut_at_a_record_sent_again_says_nothing() {
        let mut placed = Placed::new(Some(7));
        placed.acked(1, 40);
        // Record 2 failed and was sent again after 3 went out: it lands after 3.
        placed.resent(2);
        placed.acked(3, 41);
        placed.acked(2, 42);
        assert_eq!(placed.checkpoint_at(2), None);
        // A record sent again before the checkpoint's own does not matter.
        placed.acked(4, 50);
        assert_eq!(placed.checkpoint_at(4), Some(50));
        // Nor does one sent again after it: it lands later still.
        placed.acked(5, 51);
        placed.resent(6);
        placed.acked(7, 53);
        placed.acked(6, 54);
        assert_eq!(placed.checkpoint_at(5), Some(51));
    }

    #[test]
    fn an_unacknowledged_record_gives_no_offset() {
        let mut placed = Placed::new(None);
        assert_eq!(placed.checkpoint_at(3), None);
    }
}

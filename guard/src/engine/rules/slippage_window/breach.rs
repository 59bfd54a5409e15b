//! One breach of a slippage window, in the compact form the windows hold.

use crate::time::Timestamp;

/// One fill whose adverse slippage exceeded its threshold. A busy day's windows hold
/// tens of thousands: the fill id is a boxed string (no spare capacity), and the
/// strategy is kept only where the group does not name it, so a breach of a
/// strategy's own group is 48 bytes and one allocation (it was 64 and two).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    /// Event time of the fill.
    pub ts: Timestamp,
    /// Arrival order, to keep equal times in the order they came.
    pub seq: u64,
    /// The fill.
    pub fill_id: Box<str>,
    /// Its strategy where the group is not named after it (the one window of
    /// `group_by = "global"` mixes strategies); `None` in a strategy's own group.
    pub other_strategy: Option<Box<str>>,
}

impl Breach {
    /// A breach of `strategy`'s fill, to be held in `group`.
    pub fn new(
        ts: Timestamp,
        seq: u64,
        fill_id: &str,
        strategy: &str,
        group: Option<&str>,
    ) -> Self {
        Breach {
            ts,
            seq,
            fill_id: fill_id.into(),
            other_strategy: (group != Some(strategy)).then(|| strategy.into()),
        }
    }

    /// Its strategy, given the group that holds it.
    pub fn strategy<'a>(&'a self, group: Option<&'a str>) -> &'a str {
        self.other_strategy.as_deref().or(group).unwrap_or_default()
    }
}

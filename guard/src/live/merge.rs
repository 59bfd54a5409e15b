//! The order in which the live guard applies messages of several input partitions.
//!
//! Four input topics (and, scaled out, several partitions each) have no order between
//! them: a consumer returns whatever the broker's fetch responses hold, so a restart
//! that re-reads the same messages could see them interleaved differently and decide
//! differently. Like Kafka Streams, the guard merges its partitions by the messages'
//! Kafka timestamps: it holds what it has fetched, one queue per partition, and
//! applies the head that comes first by (timestamp, stream, partition, offset). A
//! partition's own order is never changed.
//!
//! The merge is exact only when every partition either has a message held or has
//! nothing more on the broker; the pipeline waits for a partition whose cached high
//! watermark says more is there ([`patience`]). `guard record` uses the same merge,
//! so a recorded file replays in the order a guard applies it.

use std::collections::VecDeque;
use std::time::Duration;

/// How far a partition's high watermark may run ahead of anything a consumer will
/// ever fetch: a transaction's commit or abort marker takes an offset no message has,
/// so a partition read to its end can still look a few offsets behind.
pub const WATERMARK_SLACK: i64 = 8;

/// How long held messages wait for a partition whose broker holds a backlog of it.
pub const BACKLOG_PATIENCE: Duration = Duration::from_secs(30);

/// How long held messages wait for a partition with nothing held, from the offset it
/// is fetched from next and its high watermark: `None` when the broker has nothing more
/// of it; `max_order_wait` when it has at most [`WATERMARK_SLACK`] offsets more (maybe
/// only control records, or messages just produced); [`BACKLOG_PATIENCE`] when it has
/// more. Those messages are on the broker, a fetch away: applying a later-stamped
/// message of another partition before them would apply a backlog (a restart, a
/// takeover, a guard that was down) in another order than its timestamps', however slow
/// the fetch. `max_order_wait` of zero never waits.
pub fn patience(fetch_next: i64, high: i64, max_order_wait: Duration) -> Option<Duration> {
    let ahead = high - fetch_next;
    if max_order_wait.is_zero() || ahead <= 0 {
        None
    } else if ahead <= WATERMARK_SLACK {
        Some(max_order_wait)
    } else {
        Some(BACKLOG_PATIENCE.max(max_order_wait))
    }
}

/// The first offset from `next` on that is not one of `echoes` — offsets known to
/// hold the guard's own risk events, which it applies as no-ops (`OwnEvent`): the
/// merge waits for what others wrote, not for the guard's own output coming back. A
/// guard that publishes a trip while draining a backlog would otherwise see its own
/// risk event above its fetch position and hold every other input for it.
pub fn past_echoes(mut next: i64, echoes: &std::collections::BTreeSet<i64>) -> i64 {
    for echo in echoes.range(next..) {
        if *echo != next {
            break;
        }
        next += 1;
    }
    next
}

/// The wall clock in milliseconds since the epoch, as Kafka stamps messages.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A partition: topic and partition number.
pub type Partition = (String, i32);

/// Where a message sorts among the heads of every partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MergeKey {
    /// Kafka message timestamp, milliseconds (`i64::MIN` when the broker gave none).
    pub timestamp_ms: i64,
    /// The stream's rank in [`crate::message::Stream::ALL`]: the tie-break.
    pub rank: usize,
    /// Partition number.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// Messages held per partition, merged by [`MergeKey`].
///
/// A partition is named by `P`: its [`Partition`], or, in the live guard, its index
/// in the guard's table of assigned partitions (no string compared or copied per
/// message). The queues are kept in the order of `P`, and of two heads with equal
/// keys the one of the first partition in that order comes first.
#[derive(Debug)]
pub struct Merge<P, T> {
    queues: Vec<(P, VecDeque<(MergeKey, T)>)>,
    held: usize,
}

impl<P, T> Default for Merge<P, T> {
    fn default() -> Self {
        Merge {
            queues: Vec::new(),
            held: 0,
        }
    }
}

impl<P: Ord + Clone, T> Merge<P, T> {
    /// Holds a message of `partition`; messages of one partition must come in offset
    /// order.
    pub fn push(&mut self, partition: P, key: MergeKey, item: T) {
        match self.position(&partition) {
            Ok(at) => self.queues[at].1.push_back((key, item)),
            Err(at) => self
                .queues
                .insert(at, (partition, VecDeque::from([(key, item)]))),
        }
        self.held += 1;
    }

    /// Where `partition`'s queue is in `queues`, or where it would go.
    fn position(&self, partition: &P) -> Result<usize, usize> {
        self.queues.binary_search_by(|(p, _)| p.cmp(partition))
    }

    fn queue(&self, partition: &P) -> Option<&VecDeque<(MergeKey, T)>> {
        self.position(partition).ok().map(|at| &self.queues[at].1)
    }

    /// The partition whose head comes first, if any message is held.
    pub fn first(&self) -> Option<&P> {
        self.first_at().map(|at| &self.queues[at].0)
    }

    /// Where in `queues` the head that comes first is.
    fn first_at(&self) -> Option<usize> {
        self.queues
            .iter()
            .enumerate()
            .filter_map(|(at, (_, q))| q.front().map(|(k, _)| (k, at)))
            .min_by_key(|(k, _)| **k)
            .map(|(_, at)| at)
    }

    /// The key of the head that comes first.
    pub fn first_key(&self) -> Option<MergeKey> {
        self.queues
            .iter()
            .filter_map(|(_, q)| q.front().map(|(k, _)| *k))
            .min()
    }

    /// The head that comes first: its partition, key and message.
    pub fn first_entry(&self) -> Option<(&P, MergeKey, &T)> {
        let at = self.first_at()?;
        let (partition, queue) = &self.queues[at];
        queue.front().map(|(key, item)| (partition, *key, item))
    }

    /// Takes the head that comes first.
    pub fn pop_first(&mut self) -> Option<(P, MergeKey, T)> {
        let at = self.first_at()?;
        let (partition, queue) = &mut self.queues[at];
        let (key, item) = queue.pop_front()?;
        self.held -= 1;
        Some((partition.clone(), key, item))
    }

    /// The key of `partition`'s head, if it holds a message.
    pub fn head(&self, partition: &P) -> Option<MergeKey> {
        self.queue(partition)
            .and_then(|q| q.front().map(|(k, _)| *k))
    }

    /// Takes `partition`'s head, whatever the other heads are (a recorded order is
    /// being replayed).
    pub fn pop_from(&mut self, partition: &P) -> Option<(MergeKey, T)> {
        let at = self.position(partition).ok()?;
        let head = self.queues[at].1.pop_front()?;
        self.held -= 1;
        Some(head)
    }

    /// Whether `partition` has a message held.
    pub fn holds(&self, partition: &P) -> bool {
        self.queue(partition).is_some_and(|q| !q.is_empty())
    }

    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Drops everything held (the inputs were released).
    pub fn clear(&mut self) {
        self.queues.clear();
        self.held = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(timestamp_ms: i64, rank: usize, offset: i64) -> MergeKey {
        MergeKey {
            timestamp_ms,
            rank,
            partition: 0,
            offset,
        }
    }

    fn drain(merge: &mut Merge<(&'static str, i32), &'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| merge.pop_first().map(|(_, _, item)| item)).collect()
    }

    #[test]
    fn heads_are_merged_by_timestamp_then_stream() {
        let mut merge = Merge::default();
        merge.push(("exec_result", 0), key(10, 0, 0), "fill@10");
        merge.push(("exec_result", 0), key(30, 0, 1), "fill@30");
        merge.push(("ops_command", 0), key(20, 3, 0), "ops@20");
        merge.push(("risk_event", 0), key(30, 1, 0), "risk@30");
        assert_eq!(merge.len(), 4);
        assert_eq!(
            drain(&mut merge),
            ["fill@10", "ops@20", "fill@30", "risk@30"]
        );
        assert!(merge.is_empty());
    }

    #[test]
    fn a_partition_keeps_its_own_order_even_against_its_timestamps() {
        let mut merge = Merge::default();
        merge.push(("exec_result", 0), key(50, 0, 0), "fill@50");
        merge.push(("exec_result", 0), key(10, 0, 1), "fill@10");
        merge.push(("ops_command", 0), key(20, 3, 0), "ops@20");
        assert_eq!(drain(&mut merge), ["ops@20", "fill@50", "fill@10"]);
    }

    #[test]
    fn a_backlog_is_waited_for_longer_than_a_few_offsets() {
        let short = Duration::from_millis(50);
        // Read to the end: nothing to wait for.
        assert_eq!(patience(100, 100, short), None);
        // A watermark behind the fetch position (a broker that under-reports it).
        assert_eq!(patience(100, 90, short), None);
        // A few offsets more: maybe only a transaction marker, so a short wait.
        assert_eq!(patience(100, 101, short), Some(short));
        assert_eq!(patience(100, 100 + WATERMARK_SLACK, short), Some(short));
        // A backlog: the messages are there, wait for the fetch.
        assert_eq!(
            patience(100, 101 + WATERMARK_SLACK, short),
            Some(BACKLOG_PATIENCE)
        );
        // A configured wait longer than the backlog patience is kept.
        let long = BACKLOG_PATIENCE * 2;
        assert_eq!(patience(0, 10_000, long), Some(long));
        // Zero: messages are applied in fetch order.
        assert_eq!(patience(0, 10_000, Duration::ZERO), None);
    }

    #[test]
    fn only_the_guards_own_events_next_in_line_are_skipped() {
        let echoes: std::collections::BTreeSet<i64> = [3, 4, 5, 7, 9].into();
        assert_eq!(past_echoes(3, &echoes), 6);
        assert_eq!(past_echoes(2, &echoes), 2);
        assert_eq!(past_echoes(6, &echoes), 6);
        assert_eq!(past_echoes(7, &echoes), 8);
        assert_eq!(past_echoes(10, &echoes), 10);
        // Nothing but its own events above the fetch position: nothing to wait for.
        let high = 10;
        assert_eq!(
            patience(past_echoes(9, &echoes), high, Duration::from_millis(5)),
            None
        );
        // Another's message at 6 is still waited for.
        assert!(patience(past_echoes(3, &echoes), high, Duration::from_millis(5)).is_some());
    }

    #[test]
    fn holds_tells_which_partitions_have_a_head() {
        let mut merge = Merge::default();
        merge.push(("exec_result", 0), key(1, 0, 0), "a");
        assert!(merge.holds(&("exec_result", 0)));
        assert!(!merge.holds(&("ops_command", 0)));
        merge.pop_first();
        assert!(!merge.holds(&("exec_result", 0)));
        merge.push(("ops_command", 0), key(1, 3, 0), "b");
        merge.clear();
        assert!(merge.is_empty() && merge.first().is_none());
    }

    #[test]
    fn of_two_equal_heads_the_first_partition_in_order_comes_first() {
        // Pushed in the other order: the queues keep the partitions' order.
        let mut merge = Merge::default();
        merge.push(7usize, key(10, 0, 5), "seven");
        merge.push(2usize, key(10, 0, 5), "two");
        merge.push(4usize, key(5, 0, 9), "four");
        assert_eq!(merge.first(), Some(&4));
        assert_eq!(
            merge.pop_first().map(|(p, _, item)| (p, item)),
            Some((4, "four"))
        );
        assert_eq!(
            merge.pop_first().map(|(p, _, item)| (p, item)),
            Some((2, "two"))
        );
        assert_eq!(merge.head(&7).map(|k| k.offset), Some(5));
        assert_eq!(merge.pop_from(&7).map(|(_, item)| item), Some("seven"));
        assert!(merge.is_empty() && merge.pop_from(&7).is_none());
    }
}

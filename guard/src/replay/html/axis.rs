//! The timeline's time axis: ticks at round times of UTC, labelled for people.

use crate::time::Timestamp;

/// One tick of a time axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tick {
    /// Where it stands.
    pub at: Timestamp,
    /// Its label: `HH:MM` (`HH:MM:SS` below a minute's step), with the date
    /// (`MM-DD HH:MM`) when the span crosses a day.
    pub label: String,
}

/// The steps ticks may take, in seconds: round for a clock.
const STEPS: [i64; 20] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200,
    86_400, 172_800, 604_800,
];

/// Ticks at whole multiples of the smallest round step that puts at most
/// `max_ticks` of them between `start` and `end` (both included); none for an empty
/// span.
pub fn time_ticks(start: Timestamp, end: Timestamp, max_ticks: usize) -> Vec<Tick> {
    let span = end.as_micros() - start.as_micros();
    if span <= 0 || max_ticks == 0 {
        return Vec::new();
    }
    let max = max_ticks.max(2) as i64;
    let step_secs = STEPS
        .iter()
        .copied()
        .find(|s| span / (s * 1_000_000) < max)
        .unwrap_or_else(|| (span / 1_000_000 / max + 1).max(1));
    let step = step_secs * 1_000_000;
    let crosses_day = start.to_utc().date_naive() != end.to_utc().date_naive();
    let format = match (crosses_day, step_secs < 60) {
        (true, _) => "%m-%d %H:%M",
        (false, true) => "%H:%M:%S",
        (false, false) => "%H:%M",
    };
    let first = start.as_micros().div_euclid(step) * step;
    let first = if first < start.as_micros() {
        first + step
    } else {
        first
    };
    (0..)
        .map(|i| first + i * step)
        .take_while(|at| *at <= end.as_micros())
        .map(|at| {
            let at = Timestamp::from_micros(at);
            Tick {
                at,
                label: at.to_utc().format(format).to_string(),
            }
        })
        .collect()
}

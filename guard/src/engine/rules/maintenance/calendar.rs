//! When a weekly maintenance window, in its own time zone, occurs in UTC.

use chrono::{Datelike, Duration, NaiveDateTime, NaiveTime, TimeZone};

use super::MaintenanceWindow;
use crate::time::Timestamp;

/// One occurrence of a window, in UTC: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Occurrence {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

impl Occurrence {
    /// Whether `t` is inside.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// The first occurrence of `window` whose end is after `t` (the one `t` is in, or the
/// next one).
pub fn occurrence_ending_after(window: &MaintenanceWindow, t: Timestamp) -> Occurrence {
    let local_date = t.to_utc().with_timezone(&window.tz).date_naive();
    let back = (local_date.weekday().num_days_from_monday() + 7
        - window.weekday.num_days_from_monday())
        % 7;
    // The occurrence that started on or before today, then the following weeks.
    let mut day = local_date - Duration::days(i64::from(back) + 7);
    loop {
        let occ = occurrence_on(window, day);
        if occ.end > t {
            return occ;
        }
        day += Duration::days(7);
    }
}

fn occurrence_on(window: &MaintenanceWindow, day: chrono::NaiveDate) -> Occurrence {
    let at = |secs: u32, day: chrono::NaiveDate| {
        let days = i64::from(secs / 86_400);
        let time = NaiveTime::from_num_seconds_from_midnight_opt(secs % 86_400, 0)
            .unwrap_or(NaiveTime::MIN);
        local_to_utc(window, NaiveDateTime::new(day + Duration::days(days), time))
    };
    let start = at(window.start_secs, day);
    let end_day = if window.end_secs <= window.start_secs {
        day + Duration::days(1)
    } else {
        day
    };
    Occurrence {
        start,
        end: at(window.end_secs, end_day),
    }
}

/// Local time to UTC; an ambiguous time (clocks going back) takes the earlier
/// instant, a skipped time (clocks going forward) the first instant after the gap.
fn local_to_utc(window: &MaintenanceWindow, local: NaiveDateTime) -> Timestamp {
    let mut probe = local;
    for _ in 0..8 {
        if let Some(dt) = window.tz.from_local_datetime(&probe).earliest() {
            return Timestamp::from_micros(dt.timestamp_micros());
        }
        probe += Duration::minutes(30);
    }
    Timestamp::from_micros(local.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn default_window_is_tuesday_two_to_three_in_tokyo() {
        let w = &MaintenanceWindow::default();
        // Tuesday 2025-08-12 02:00 JST is Monday 17:00 UTC.
        let occ = occurrence_ending_after(w, at("2025-08-11T12:00:00Z"));
        assert_eq!(occ.start, at("2025-08-11T17:00:00Z"));
        assert_eq!(occ.end, at("2025-08-11T18:00:00Z"));
        assert!(occ.contains(at("2025-08-11T17:00:00Z")));
        assert!(!occ.contains(at("2025-08-11T18:00:00Z")));
        let next = occurrence_ending_after(w, at("2025-08-11T18:00:00Z"));
        assert_eq!(next.start, at("2025-08-18T17:00:00Z"));
    }

    #[test]
    fn a_window_past_local_midnight_ends_next_day() {
        let w = MaintenanceWindow {
            tz: chrono_tz::UTC,
            start_secs: 23 * 3_600,
            end_secs: 3_600,
            ..MaintenanceWindow::default()
        };
        let occ = occurrence_ending_after(&w, at("2025-08-12T23:30:00Z"));
        assert_eq!(occ.start, at("2025-08-12T23:00:00Z"));
        assert_eq!(occ.end, at("2025-08-13T01:00:00Z"));
        // Early Wednesday is still inside Tuesday's occurrence.
        assert_eq!(occurrence_ending_after(&w, at("2025-08-13T00:30:00Z")), occ);
    }
}

//! `[[maintenance]]`: the weekly windows and how the policy file writes them.

use chrono::Weekday;
use serde::Serialize;
use toml::{Table, Value};

use crate::policy::Reader;

/// A weekly window in its own time zone (CONTRACT §2.6).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MaintenanceWindow {
    /// Off when false.
    pub enabled: bool,
    /// The command's `trigger`.
    pub name: String,
    /// Day the window starts on, in `tz`.
    #[serde(serialize_with = "ser_weekday")]
    pub weekday: Weekday,
    /// Start, seconds after local midnight (inclusive).
    pub start_secs: u32,
    /// End, seconds after local midnight (exclusive); at or before `start_secs`
    /// means the next day.
    pub end_secs: u32,
    /// IANA time zone.
    #[serde(serialize_with = "ser_tz")]
    pub tz: chrono_tz::Tz,
    /// Whether leaving the window resumes by itself, or only an operator does (the
    /// runbook's health check after the work). Left out of the version while `auto`.
    #[serde(skip_serializing_if = "crate::policy::is_default")]
    pub resume: ResumeBy,
}

/// Who lifts a window's pause when it ends (CONTRACT §2.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResumeBy {
    /// Leaving the window removes its reason.
    #[default]
    Auto,
    /// The reason stays until an operator resumes the global scope.
    Operator,
}

impl Default for MaintenanceWindow {
    /// The runbook's: the weekly OS patch, Tuesday 02:00–03:00 in Tokyo.
    fn default() -> Self {
        MaintenanceWindow {
            enabled: true,
            name: "weekly-os-patch".into(),
            weekday: Weekday::Tue,
            start_secs: 2 * 3_600,
            end_secs: 3 * 3_600,
            tz: chrono_tz::Asia::Tokyo,
            resume: ResumeBy::Auto,
        }
    }
}

fn ser_weekday<S: serde::Serializer>(w: &Weekday, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(w)
}

/// A time zone as its IANA name.
pub(crate) fn ser_tz<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&tz.name())
}

/// Reads `maintenance = [...]`: every window over the runbook's, names unique.
pub(super) fn read_windows(r: &mut Reader, value: &Value) -> Vec<MaintenanceWindow> {
    let Value::Array(items) = value else {
        r.problem(
            "maintenance",
            "must be an array of tables ([[maintenance]])",
        );
        return Vec::new();
    };
    let mut windows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("maintenance[{i}]");
        let Value::Table(t) = item else {
            r.problem(&at, "must be a table");
            continue;
        };
        let w = read_window(r, &at, t);
        if windows.iter().any(|o: &MaintenanceWindow| o.name == w.name) {
            r.problem(
                &format!("{at}.name"),
                format_args!(
                    "{:?} is used by another window; names must be unique",
                    w.name
                ),
            );
        }
        windows.push(w);
    }
    windows
}

fn read_window(r: &mut Reader, at: &str, t: &Table) -> MaintenanceWindow {
    r.keys(
        t,
        &format!("{at}."),
        &["enabled", "name", "weekday", "start", "end", "tz", "resume"],
    );
    let mut w = MaintenanceWindow::default();
    r.choice(
        t,
        &format!("{at}.resume"),
        &mut w.resume,
        &[("auto", ResumeBy::Auto), ("operator", ResumeBy::Operator)],
    );
    r.bool(t, &format!("{at}.enabled"), &mut w.enabled);
    if let Some(name) = r.string(t, &format!("{at}.name")) {
        w.name = name;
    }
    if let Some(day) = r.string(t, &format!("{at}.weekday")) {
        match parse_weekday(&day) {
            Some(d) => w.weekday = d,
            None => r.problem(
                &format!("{at}.weekday"),
                format_args!("must be Mon, Tue, Wed, Thu, Fri, Sat or Sun, not {day:?}"),
            ),
        }
    }
    for (key, out, allow_24) in [
        ("start", &mut w.start_secs, false),
        ("end", &mut w.end_secs, true),
    ] {
        if let Some(text) = r.string(t, &format!("{at}.{key}")) {
            match parse_clock(&text, allow_24) {
                Some(secs) => *out = secs,
                None => r.problem(
                    &format!("{at}.{key}"),
                    format_args!(
                        "must be a local time HH:MM (or HH:MM:SS){}, not {text:?}",
                        if allow_24 { ", up to 24:00" } else { "" }
                    ),
                ),
            }
        }
    }
    if w.start_secs == w.end_secs % 86_400 {
        r.problem(at, "start and end must differ");
    }
    r.tz(t, &format!("{at}.tz"), &mut w.tz);
    w
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    // Title case or lower case, short or full: the forms the policy schema lists.
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .find(|d| {
        let full = full_name(*d);
        let short = &full[..3];
        let title = |s: &str| format!("{}{}", s[..1].to_ascii_uppercase(), &s[1..]);
        text == short || text == full || text == title(short) || text == title(full)
    })
}

fn full_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

pub(crate) fn parse_clock(text: &str, allow_24: bool) -> Option<u32> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let n: Vec<u32> = parts.iter().map(|p| p.parse().unwrap_or(99)).collect();
    let (h, m, s) = (n[0], n[1], n.get(2).copied().unwrap_or(0));
    if h == 24 && m == 0 && s == 0 && allow_24 {
        return Some(86_400);
    }
    (h < 24 && m < 60 && s < 60).then_some(h * 3_600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_are_read_short_or_full_in_lower_or_title_case() {
        for text in ["Tue", "tue", "Tuesday", "tuesday"] {
            assert_eq!(parse_weekday(text), Some(Weekday::Tue), "{text}");
        }
        assert_eq!(parse_weekday("TUE"), None);
        assert_eq!(parse_weekday("Tues"), None);
    }

    #[test]
    fn local_times_are_hh_mm_or_hh_mm_ss_and_only_an_end_may_be_24_00() {
        assert_eq!(parse_clock("02:00", false), Some(7_200));
        assert_eq!(parse_clock("23:59:59", false), Some(86_399));
        assert_eq!(parse_clock("24:00", true), Some(86_400));
        assert_eq!(parse_clock("24:00", false), None);
        assert_eq!(parse_clock("2:00", false), None);
        assert_eq!(parse_clock("12:60", false), None);
    }
}

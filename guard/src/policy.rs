//! The guard's policy (CONTRACT §3): a TOML file, every key optional.
//!
//! The file is read into a `toml::Table` and walked by hand rather than through
//! `#[serde(deny_unknown_fields)]`, so that [`Policy::from_toml`] reports every
//! problem at once, each with its key path and what is allowed, instead of stopping at
//! the first. The same walk applies `--sweep` overrides ([`Policy::with_overrides`]).

use std::fmt;

use chrono::Weekday;
use serde::Serialize;
use sha2::{Digest, Sha256};
use toml::{Table, Value};

use crate::time::Span;

/// Which breaches share a slippage window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One window per `strategy_id`.
    Strategy,
    /// One window for all strategies.
    Global,
}

/// Which scope a tripped rule pauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseTarget {
    /// The global scope: every strategy stops.
    Global,
    /// The group's own scope: the strategy that tripped (global for a global window).
    Group,
}

/// CONTRACT §2.1.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlippagePolicy {
    /// Off when false.
    pub enabled: bool,
    /// A fill breaches when its adverse slippage is strictly greater.
    pub threshold_bps: f64,
    /// Consecutive breaches that trip.
    pub trip_at: u32,
    /// A run trips when `last.ts - first.ts < window`.
    pub window: Span,
    /// Which breaches share a window.
    pub group_by: GroupBy,
    /// Which scope a trip pauses.
    pub pause: PauseTarget,
}

/// CONTRACT §2.2.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LosingStreakPolicy {
    /// Off when false.
    pub enabled: bool,
    /// Losing fills in a row that trip.
    pub trip_at: u32,
    /// Which scope a trip pauses.
    pub pause: PauseTarget,
}

/// CONTRACT §2.5.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnhancedPolicy {
    /// Off when false.
    pub enabled: bool,
    /// How long after `adopted_at` the stricter thresholds apply.
    pub lookback: Span,
    /// Multiplier for thresholds and `trip_at`s, in (0, 1].
    pub factor: f64,
}

/// CONTRACT §2.6: a weekly window in its own time zone.
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
}

fn ser_weekday<S: serde::Serializer>(w: &Weekday, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(w)
}

fn ser_tz<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&tz.name())
}

/// The whole policy, every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Policy {
    /// Slippage window rule.
    pub slippage: SlippagePolicy,
    /// Losing streak rule.
    pub losing_streak: LosingStreakPolicy,
    /// Enhanced monitoring after an adoption.
    pub enhanced: EnhancedPolicy,
    /// Weekly maintenance windows.
    pub maintenance: Vec<MaintenanceWindow>,
    /// How far back the guard remembers. Left out of the version while it is the
    /// default, so the contract's policy keeps its name.
    #[serde(skip_serializing_if = "StatePolicy::is_default")]
    pub state: StatePolicy,
}

/// How much history the guard keeps (not in CONTRACT §3: the guard's own key).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatePolicy {
    /// Ids, streaks, breaches and adoptions older than this behind the newest event
    /// time are forgotten: memory is bounded by the message rate times this span.
    pub horizon: Span,
}

impl StatePolicy {
    /// The default horizon: a day, as long as the enhanced-monitoring lookback.
    pub const DEFAULT_HORIZON: Span = Span::from_secs(86_400);

    fn is_default(&self) -> bool {
        self.horizon == Self::DEFAULT_HORIZON
    }
}

/// Every problem found in a policy, one line each with the key's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {}", .0.join("; "))]
pub struct PolicyError(pub Vec<String>);

impl Default for Policy {
    /// The runbook's policy (CONTRACT §3).
    fn default() -> Self {
        Policy {
            slippage: SlippagePolicy {
                enabled: true,
                threshold_bps: 5.0,
                trip_at: 3,
                window: Span::from_secs(600),
                group_by: GroupBy::Strategy,
                pause: PauseTarget::Global,
            },
            losing_streak: LosingStreakPolicy {
                enabled: true,
                trip_at: 5,
                pause: PauseTarget::Global,
            },
            enhanced: EnhancedPolicy {
                enabled: true,
                lookback: Span::from_secs(86_400),
                factor: 0.5,
            },
            maintenance: vec![default_window()],
            state: StatePolicy {
                horizon: StatePolicy::DEFAULT_HORIZON,
            },
        }
    }
}

fn default_window() -> MaintenanceWindow {
    MaintenanceWindow {
        enabled: true,
        name: "weekly-os-patch".into(),
        weekday: Weekday::Tue,
        start_secs: 2 * 3_600,
        end_secs: 3 * 3_600,
        tz: chrono_tz::Asia::Tokyo,
    }
}

impl Policy {
    /// Reads a policy from TOML text; an empty text is the default policy.
    ///
    /// # Errors
    /// [`PolicyError`] listing every unknown key and bad value.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            PolicyError(vec![e.to_string().trim().replace('\n', " ")])
        })?;
        Policy::from_table(&table)
    }

    /// Resolves a parsed TOML table.
    ///
    /// # Errors
    /// [`PolicyError`] listing every unknown key and bad value.
    pub fn from_table(table: &Table) -> Result<Policy, PolicyError> {
        let mut r = Reader::default();
        let mut policy = Policy::default();
        r.keys(
            table,
            "",
            &[
                "slippage",
                "losing_streak",
                "enhanced",
                "maintenance",
                "state",
            ],
        );
        if let Some(t) = r.section(table, "slippage") {
            let p = &mut policy.slippage;
            r.keys(
                t,
                "slippage.",
                &[
                    "enabled",
                    "threshold_bps",
                    "trip_at",
                    "window",
                    "group_by",
                    "pause",
                ],
            );
            r.bool(t, "slippage.enabled", &mut p.enabled);
            r.number(
                t,
                "slippage.threshold_bps",
                &mut p.threshold_bps,
                |v| v >= 0.0,
                "a number >= 0",
            );
            r.count(t, "slippage.trip_at", &mut p.trip_at);
            r.span(t, "slippage.window", &mut p.window);
            r.choice(
                t,
                "slippage.group_by",
                &mut p.group_by,
                &[("strategy", GroupBy::Strategy), ("global", GroupBy::Global)],
            );
            r.choice(t, "slippage.pause", &mut p.pause, &PAUSE_CHOICES);
        }
        if let Some(t) = r.section(table, "losing_streak") {
            let p = &mut policy.losing_streak;
            r.keys(t, "losing_streak.", &["enabled", "trip_at", "pause"]);
            r.bool(t, "losing_streak.enabled", &mut p.enabled);
            r.count(t, "losing_streak.trip_at", &mut p.trip_at);
            r.choice(t, "losing_streak.pause", &mut p.pause, &PAUSE_CHOICES);
        }
        if let Some(t) = r.section(table, "enhanced") {
            let p = &mut policy.enhanced;
            r.keys(t, "enhanced.", &["enabled", "lookback", "factor"]);
            r.bool(t, "enhanced.enabled", &mut p.enabled);
            r.span(t, "enhanced.lookback", &mut p.lookback);
            r.number(
                t,
                "enhanced.factor",
                &mut p.factor,
                |v| v > 0.0 && v <= 1.0,
                "a number in (0, 1]",
            );
        }
        if let Some(t) = r.section(table, "state") {
            r.keys(t, "state.", &["horizon"]);
            r.span(t, "state.horizon", &mut policy.state.horizon);
            if policy.state.horizon < Span::from_secs(60) {
                r.problems.push(format!(
                    "state.horizon: {} is too short (at least 1m: late and duplicate messages must still be recognised)",
                    crate::time::human_span(policy.state.horizon)
                ));
            }
        }
        if let Some(value) = table.get("maintenance") {
            policy.maintenance = r.windows(value);
        }
        if r.problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError(r.problems))
        }
    }

    /// The policy with `key=value` overrides applied to its TOML text (for `--sweep`).
    ///
    /// # Errors
    /// [`PolicyError`] when the text or an override is not valid.
    pub fn with_overrides(
        text: &str,
        overrides: &[(String, String)],
    ) -> Result<Policy, PolicyError> {
        let mut table: Table = text.parse().map_err(|e: toml::de::Error| {
            PolicyError(vec![e.to_string().trim().replace('\n', " ")])
        })?;
        for (key, raw) in overrides {
            let Some((section, leaf)) = key.split_once('.') else {
                return Err(PolicyError(vec![format!(
                    "{key}: an override names a section and a key, e.g. slippage.threshold_bps"
                )]));
            };
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            let Value::Table(section_table) = entry else {
                return Err(PolicyError(vec![format!(
                    "{key}: [{section}] is not a table"
                )]));
            };
            section_table.insert(leaf.to_owned(), override_value(raw));
        }
        Policy::from_table(&table)
    }

    /// A short, stable name of this policy: `p-` and 12 hex digits of the SHA-256 of
    /// its resolved form, so two files that mean the same policy have the same version.
    pub fn version(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a policy always serialises");
        let digest = Sha256::digest(&canonical);
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("p-{hex}")
    }
}

const PAUSE_CHOICES: [(&str, PauseTarget); 2] = [
    ("global", PauseTarget::Global),
    ("group", PauseTarget::Group),
];

fn override_value(raw: &str) -> Value {
    if let Ok(i) = raw.parse::<i64>() {
        Value::Integer(i)
    } else if let Ok(f) = raw.parse::<f64>() {
        Value::Float(f)
    } else if let Ok(b) = raw.parse::<bool>() {
        Value::Boolean(b)
    } else {
        Value::String(raw.to_owned())
    }
}

/// Walks a table, collecting problems instead of stopping at the first.
#[derive(Default)]
struct Reader {
    problems: Vec<String>,
}

impl Reader {
    fn problem(&mut self, key: &str, text: impl fmt::Display) {
        self.problems.push(format!("{key}: {text}"));
    }

    fn keys(&mut self, table: &Table, prefix: &str, allowed: &[&str]) {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    &format!("{prefix}{key}"),
                    format_args!("unknown key (allowed here: {})", allowed.join(", ")),
                );
            }
        }
    }

    fn section<'t>(&mut self, table: &'t Table, key: &str) -> Option<&'t Table> {
        match table.get(key)? {
            Value::Table(t) => Some(t),
            _ => {
                self.problem(key, "must be a table ([section])");
                None
            }
        }
    }

    fn bool(&mut self, t: &Table, path: &str, out: &mut bool) {
        match t.get(leaf(path)) {
            None => {}
            Some(Value::Boolean(b)) => *out = *b,
            Some(_) => self.problem(path, "must be true or false"),
        }
    }

    fn number(
        &mut self,
        t: &Table,
        path: &str,
        out: &mut f64,
        ok: impl Fn(f64) -> bool,
        allowed: &str,
    ) {
        let value = match t.get(leaf(path)) {
            None => return,
            Some(Value::Float(f)) => *f,
            Some(Value::Integer(i)) => *i as f64,
            Some(_) => return self.problem(path, format_args!("must be {allowed}")),
        };
        if value.is_finite() && ok(value) {
            *out = value;
        } else {
            self.problem(path, format_args!("must be {allowed}, not {value}"));
        }
    }

    fn count(&mut self, t: &Table, path: &str, out: &mut u32) {
        match t.get(leaf(path)) {
            None => {}
            Some(Value::Integer(i)) if (1..=1_000_000).contains(i) => *out = *i as u32,
            Some(v) => self.problem(
                path,
                format_args!("must be a whole number from 1 to 1000000, not {v}"),
            ),
        }
    }

    fn span(&mut self, t: &Table, path: &str, out: &mut Span) {
        match t.get(leaf(path)) {
            None => {}
            Some(Value::String(s)) => match Span::parse(s) {
                Ok(span) if span.as_micros() > 0 => *out = span,
                Ok(_) => self.problem(path, "must be longer than zero"),
                Err(e) => self.problem(path, e),
            },
            Some(v) => self.problem(
                path,
                format_args!(
                    "must be a duration string such as \"600s\", \"10m\" or \"24h\", not {v}"
                ),
            ),
        }
    }

    fn choice<T: Copy>(&mut self, t: &Table, path: &str, out: &mut T, choices: &[(&str, T)]) {
        let Some(value) = t.get(leaf(path)) else {
            return;
        };
        let found = value
            .as_str()
            .and_then(|s| choices.iter().find(|(name, _)| *name == s));
        match found {
            Some((_, choice)) => *out = *choice,
            None => {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
                self.problem(
                    path,
                    format_args!("must be one of {}, not {value}", names.join(", ")),
                );
            }
        }
    }

    fn string(&mut self, t: &Table, path: &str) -> Option<String> {
        match t.get(leaf(path)) {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(v) => {
                self.problem(path, format_args!("must be a non-empty string, not {v}"));
                None
            }
        }
    }

    fn windows(&mut self, value: &Value) -> Vec<MaintenanceWindow> {
        let Value::Array(items) = value else {
            self.problem(
                "maintenance",
                "must be an array of tables ([[maintenance]])",
            );
            return Vec::new();
        };
        let mut windows = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("maintenance[{i}]");
            let Value::Table(t) = item else {
                self.problem(&at, "must be a table");
                continue;
            };
            self.keys(
                t,
                &format!("{at}."),
                &["enabled", "name", "weekday", "start", "end", "tz"],
            );
            let mut w = default_window();
            self.bool(t, &format!("{at}.enabled"), &mut w.enabled);
            if let Some(name) = self.string(t, &format!("{at}.name")) {
                w.name = name;
            }
            if let Some(day) = self.string(t, &format!("{at}.weekday")) {
                match parse_weekday(&day) {
                    Some(d) => w.weekday = d,
                    None => self.problem(
                        &format!("{at}.weekday"),
                        format_args!("must be Mon, Tue, Wed, Thu, Fri, Sat or Sun, not {day:?}"),
                    ),
                }
            }
            for (key, out, allow_24) in [
                ("start", &mut w.start_secs, false),
                ("end", &mut w.end_secs, true),
            ] {
                if let Some(text) = self.string(t, &format!("{at}.{key}")) {
                    match parse_clock(&text, allow_24) {
                        Some(secs) => *out = secs,
                        None => self.problem(
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
                self.problem(&at, "start and end must differ");
            }
            if let Some(tz) = self.string(t, &format!("{at}.tz")) {
                match tz.parse::<chrono_tz::Tz>() {
                    Ok(z) => w.tz = z,
                    Err(_) => self.problem(&format!("{at}.tz"), format_args!("must be an IANA time zone such as \"Asia/Tokyo\" or \"UTC\", not {tz:?}")),
                }
            }
            if windows.iter().any(|o: &MaintenanceWindow| o.name == w.name) {
                self.problem(
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
}

fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
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

fn parse_clock(text: &str, allow_24: bool) -> Option<u32> {
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
    fn an_empty_file_is_the_runbook_policy() {
        assert_eq!(Policy::from_toml("").unwrap(), Policy::default());
    }

    #[test]
    fn the_contract_example_is_the_default() {
        let text = r#"
[slippage]
threshold_bps = 5.0
trip_at = 3
window = "10m"
group_by = "strategy"
pause = "global"
[losing_streak]
trip_at = 5
pause = "global"
[enhanced]
lookback = "24h"
factor = 0.5
[[maintenance]]
name = "weekly-os-patch"
weekday = "Tue"
start = "02:00"
end = "03:00"
tz = "Asia/Tokyo"
"#;
        let p = Policy::from_toml(text).unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(p.version(), Policy::default().version());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = Policy::from_toml("[slippage]\nthreshold = 3\ntrip_at = 0\nwindow = \"10\"\n[[maintenance]]\ntz = \"Mars/Base\"\n").unwrap_err();
        let text = err.to_string();
        for needle in [
            "slippage.threshold: unknown key",
            "slippage.trip_at",
            "slippage.window",
            "maintenance[0].tz",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
        assert_eq!(err.0.len(), 4, "{text}");
    }

    #[test]
    fn overrides_replace_single_keys() {
        let p = Policy::with_overrides(
            "",
            &[
                ("slippage.threshold_bps".into(), "8".into()),
                ("slippage.trip_at".into(), "2".into()),
            ],
        )
        .unwrap();
        assert_eq!(p.slippage.threshold_bps, 8.0);
        assert_eq!(p.slippage.trip_at, 2);
        assert_ne!(p.version(), Policy::default().version());
    }

    #[test]
    fn an_empty_maintenance_list_means_no_windows() {
        assert!(Policy::from_toml("maintenance = []")
            .unwrap()
            .maintenance
            .is_empty());
    }
}

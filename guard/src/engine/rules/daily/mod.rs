//! Daily limits (CONTRACT §2.8), `[daily]` in the policy: the realized pnl of each
//! group's trading day, against a loss limit ([`DailyLoss`], `loss.rs`) and a
//! drawdown limit ([`DailyDrawdown`], `drawdown.rs`). Two rules — each trips at most
//! once per group and trading day, under its own name — over one section and one kind
//! of book ([`DayBook`]): [`Daily`] is the rule, a [`Limit`] says what it tests.
//!
//! A fill's trading day is the calendar date, in `tz`, of its local time minus
//! `day_start`. For every group (per strategy, or one for all) and trading day a book
//! keeps `P`, the sum of the `realized_pnl` of the group's fills of that day in
//! arrival order, and `H`, the largest `P` so far (at least 0). A fill without
//! `realized_pnl` adds nothing and judges nothing; a late fill counts toward its own
//! day.

mod drawdown;
mod loss;

use std::collections::BTreeMap;

use chrono::{Duration as ChronoDuration, NaiveDate};
use serde::{Deserialize, Serialize};

pub use drawdown::Drawdown;
pub use loss::Loss;

/// The daily loss rule.
pub type DailyLoss = Daily<Loss>;
/// The daily drawdown rule.
pub type DailyDrawdown = Daily<Drawdown>;

use std::marker::PhantomData;

use serde_json::{json, Map, Value};

use super::maintenance::parse_clock;
use super::{GuardRule, Monitoring, Place};
use crate::engine::decide::{Decide, Trigger};
use crate::message::{Effect, Fill, Rule, Scope};
use crate::policy::{GroupBy, PauseTarget, Reader, Section, ACTION_CHOICES, PAUSE_CHOICES};
use crate::time::Timestamp;

/// `[daily]` (CONTRACT §2.8). Every limit is off while it is 0, the default; the
/// whole section is then left out of the policy's version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DailyPolicy {
    /// Off when false.
    pub enabled: bool,
    /// When a trading day starts, seconds after local midnight (`day_start` in the file).
    #[serde(rename = "day_start", serialize_with = "ser_clock")]
    pub day_start_secs: u32,
    /// The time zone of the trading day.
    #[serde(serialize_with = "super::maintenance::ser_tz")]
    pub tz: chrono_tz::Tz,
    /// A group's day loses at most this much (`P <= -max_loss` trips); 0: off.
    pub max_loss: f64,
    /// A group's day falls at most this far from its peak (`H - P >= max_drawdown`
    /// trips); 0: off.
    pub max_drawdown: f64,
    /// Per strategy, or one book for all.
    pub group_by: GroupBy,
    /// Which scope a trip pauses.
    pub pause: PauseTarget,
    /// The effect of the reason a trip adds.
    pub action: Effect,
}

impl Default for DailyPolicy {
    /// The contract's: days from midnight in Tokyo, both limits off.
    fn default() -> Self {
        DailyPolicy {
            enabled: true,
            day_start_secs: 0,
            tz: chrono_tz::Asia::Tokyo,
            max_loss: 0.0,
            max_drawdown: 0.0,
            group_by: GroupBy::Strategy,
            pause: PauseTarget::Global,
            action: Effect::Pause,
        }
    }
}

impl DailyPolicy {
    /// The trading day of `ts`: the date, in `tz`, of its local time minus
    /// `day_start`.
    pub fn trading_day(&self, ts: Timestamp) -> NaiveDate {
        let local = ts.to_utc().with_timezone(&self.tz).naive_local();
        (local - ChronoDuration::seconds(i64::from(self.day_start_secs))).date()
    }

    /// The book a fill counts in: its strategy's, or the one for all.
    fn group<'f>(&self, fill: &'f Fill) -> Option<&'f str> {
        match self.group_by {
            GroupBy::Strategy => Some(fill.strategy_id.as_str()),
            GroupBy::Global => None,
        }
    }

    /// The scope a trip of `group` pauses.
    fn scope(&self, group: Option<&str>) -> Scope {
        match (self.pause, group) {
            (PauseTarget::Group, Some(strategy)) => Scope::strategy(strategy),
            _ => Scope::Global,
        }
    }
}

fn ser_clock<S: serde::Serializer>(secs: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{:02}:{:02}", secs / 3_600, secs / 60 % 60))
}

impl Section for DailyPolicy {
    fn key(&self) -> &'static str {
        "daily"
    }

    fn read(&mut self, value: &toml::Value, r: &mut Reader) {
        let Some(t) = r.table(value, "daily") else {
            return;
        };
        let keys = [
            "enabled",
            "day_start",
            "tz",
            "max_loss",
            "max_drawdown",
            "group_by",
            "pause",
            "action",
        ];
        r.keys(t, "daily.", &keys);
        r.bool(t, "daily.enabled", &mut self.enabled);
        if let Some(text) = r.string(t, "daily.day_start") {
            match parse_clock(&text, false) {
                Some(secs) => self.day_start_secs = secs,
                None => r.problem(
                    "daily.day_start",
                    format_args!("must be a local time HH:MM (or HH:MM:SS), not {text:?}"),
                ),
            }
        }
        r.tz(t, "daily.tz", &mut self.tz);
        for (key, out) in [
            ("daily.max_loss", &mut self.max_loss),
            ("daily.max_drawdown", &mut self.max_drawdown),
        ] {
            r.number(t, key, out, |v| v >= 0.0, "a number >= 0 (0: off)");
        }
        r.choice(
            t,
            "daily.group_by",
            &mut self.group_by,
            &[("strategy", GroupBy::Strategy), ("global", GroupBy::Global)],
        );
        r.choice(t, "daily.pause", &mut self.pause, &PAUSE_CHOICES);
        r.choice(t, "daily.action", &mut self.action, &ACTION_CHOICES);
    }
}

/// One group's trading day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// `P`: the realized pnl so far, exactly (stored as the bits of the `f64`, so a
    /// snapshot restores the very same sum).
    #[serde(with = "exact")]
    pub pnl: f64,
    /// `H`: the largest `P` so far, at least 0.
    #[serde(with = "exact")]
    pub peak: f64,
    /// The rule tripped for this group and day.
    pub tripped: bool,
}

/// The trading days of every group, as one daily rule keeps them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayBook {
    #[serde(with = "crate::engine::pairs")]
    days: BTreeMap<(Option<String>, TradingDay), Day>,
}

/// A trading day, written `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TradingDay(pub NaiveDate);

impl Serialize for TradingDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TradingDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map(TradingDay)
            .map_err(serde::de::Error::custom)
    }
}

impl DayBook {
    /// Adds a fill with `pnl` to its group's day and returns that day as it now
    /// stands.
    pub fn add(&mut self, group: Option<&str>, day: NaiveDate, pnl: f64) -> &mut Day {
        let key = (group.map(str::to_owned), TradingDay(day));
        let entry = self.days.entry(key).or_default();
        entry.pnl += pnl;
        entry.peak = entry.peak.max(entry.pnl);
        entry
    }

    /// Forgets every day (a global resume).
    pub fn clear(&mut self) {
        self.days.clear();
    }

    /// Forgets every day of one group (its resume).
    pub fn clear_group(&mut self, group: Option<&str>) {
        self.days.retain(|(g, _), _| g.as_deref() != group);
    }

    /// Forgets the days that ended before `cutoff`'s trading day began.
    pub fn forget_before(&mut self, cutoff: NaiveDate) {
        self.days.retain(|(_, day), _| day.0 >= cutoff);
    }

    /// Whether no day is kept (a snapshot then leaves the book out).
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// Every day of every group.
    pub fn days(&self) -> impl Iterator<Item = (Option<&str>, NaiveDate, &Day)> {
        self.days
            .iter()
            .map(|((g, d), day)| (g.as_deref(), d.0, day))
    }
}

/// What a daily rule does with a fill: the policy it judges by, the limit as it
/// applies (times the enhanced factor), and the trip when the test holds.
pub(super) struct Judged<'a> {
    pub(super) group: Option<&'a str>,
    pub(super) day: NaiveDate,
    pub(super) limit: f64,
    pub(super) scope: Scope,
}

impl DailyPolicy {
    /// The group, day, limit and scope of a fill with realized pnl, when `limit` is on.
    pub(super) fn judge<'f>(
        &self,
        fill: &'f Fill,
        limit: f64,
        monitoring: Monitoring,
    ) -> Option<(Judged<'f>, f64)> {
        let pnl = fill.realized_pnl?;
        if !self.enabled || limit <= 0.0 {
            return None;
        }
        let group = self.group(fill);
        let judged = Judged {
            group,
            day: self.trading_day(fill.ts),
            limit: monitoring.scale(limit),
            scope: self.scope(group),
        };
        Some((judged, pnl))
    }
}

/// What a daily rule tests: its limit in the policy and when a day has reached it.
pub trait Limit {
    /// The rule's wire name.
    const RULE: Rule;
    /// Its key in `/state`.
    const VIEW: &'static str;
    /// The limit as the policy sets it (0: off).
    fn limit(policy: &DailyPolicy) -> f64;
    /// Whether `day` has reached `limit` (as it applies to the fill).
    fn reached(day: &Day, limit: f64) -> bool;
    /// The test that held, for the reason.
    fn test(day: &Day, limit: f64) -> String;
}

/// A daily rule: one book of every group's trading days, tested against one limit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Daily<L> {
    book: DayBook,
    #[serde(skip)]
    limit: PhantomData<L>,
}

impl<L> Daily<L> {
    /// Whether no day is kept (a snapshot then leaves the rule out).
    pub fn is_empty(&self) -> bool {
        self.book.is_empty()
    }

    /// The book.
    pub fn book(&self) -> &DayBook {
        &self.book
    }
}

impl<L: Limit> GuardRule for Daily<L> {
    type Policy = DailyPolicy;
    const RULE: Rule = L::RULE;
    const PLACE: Place = Place::Workers;

    #[inline]
    fn on_fill(
        &mut self,
        policy: &DailyPolicy,
        fill: &Fill,
        monitoring: Monitoring,
        decide: &mut Decide<'_>,
    ) {
        let Some((judged, pnl)) = policy.judge(fill, L::limit(policy), monitoring) else {
            return;
        };
        let day = self.book.add(judged.group, judged.day, pnl);
        if day.tripped || !L::reached(day, judged.limit) {
            return;
        }
        day.tripped = true;
        let test = L::test(day, judged.limit);
        let whose = judged
            .group
            .map_or_else(|| "all strategies".to_owned(), |s| format!("strategy {s}"));
        let trigger = Trigger {
            id: &fill.fill_id,
            event_ts: fill.ts,
            evidence: vec![fill.fill_id.clone()],
            reason: format!(
                "{} on trading day {} ({whose}): {test}{}",
                L::RULE.as_str().replace('_', " "),
                judged.day,
                monitoring.note()
            ),
        };
        decide.trip(L::RULE, policy.action, judged.scope, trigger);
    }

    /// A global resume forgets every day; a strategy's resume its own days (a book
    /// for all strategies is not reset by one strategy's resume).
    fn reset(&mut self, scope: &Scope) {
        match scope {
            Scope::Global => self.book.clear(),
            Scope::Strategy { strategy_id } => self.book.clear_group(Some(strategy_id)),
        }
    }

    fn forget(&mut self, policy: &DailyPolicy, cutoff: Timestamp) {
        self.book.forget_before(policy.trading_day(cutoff));
    }

    fn view(&self, out: &mut Map<String, Value>) {
        if self.book.is_empty() {
            return;
        }
        let days = self.book.days().map(|(group, day, d)| {
            json!({
                "group": group.unwrap_or("(all strategies)"),
                "trading_day": day.to_string(),
                "pnl": d.pnl,
                "peak": d.peak,
                "tripped": d.tripped,
            })
        });
        out.insert(L::VIEW.into(), Value::Array(days.collect()));
    }
}

/// `f64` written as its bits: a snapshot restores exactly the sum it saved.
mod exact {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

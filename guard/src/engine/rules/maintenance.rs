//! Maintenance windows (CONTRACT §2.6), `[[maintenance]]` in the policy: weekly, in
//! their own time zone.
//!
//! The engine's clock only moves forward. When it moves, each window is checked
//! against the occurrence that ends after the new clock; entering pauses the global
//! scope as of the occurrence's start, leaving resumes it as of its end (once no
//! window holds it), and a clock that jumps over a whole occurrence changes nothing.
//! Once a window with `resume = "operator"` has held the reason, leaving no longer
//! removes it: only an operator's resume of the global scope does (version 2).

mod calendar;
mod window;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use calendar::{occurrence_ending_after, Occurrence};
pub(crate) use window::{parse_clock, ser_tz};
pub use window::{MaintenanceWindow, ResumeBy};

use super::GuardRule;
use crate::engine::decide::{Decide, Trigger};
use crate::message::{Effect, Rule, Scope};
use crate::policy::{Reader, Section};
use crate::time::Timestamp;

/// `[[maintenance]]`: every window (the runbook's one unless the file says otherwise;
/// `maintenance = []` means none).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct MaintenancePolicy {
    /// The windows, names unique.
    pub windows: Vec<MaintenanceWindow>,
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        MaintenancePolicy {
            windows: vec![MaintenanceWindow::default()],
        }
    }
}

impl Section for MaintenancePolicy {
    fn key(&self) -> &'static str {
        "maintenance"
    }

    fn is_array(&self) -> bool {
        true
    }

    fn read(&mut self, value: &toml::Value, r: &mut Reader) {
        self.windows = window::read_windows(r, value);
    }
}

/// The windows the clock is in, each with the occurrence it entered, and whether a
/// window that only an operator ends has held the reason since the last global
/// resume.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(from = "Stored", into = "Stored")]
pub struct Maintenance {
    entered: BTreeMap<String, Occurrence>,
    /// An operator-resumed window has held the reason: leaving keeps it.
    until_operator: bool,
    /// Per policy window, the occurrence ending after the clock (derived, not state).
    #[serde(skip)]
    next: Vec<Option<Occurrence>>,
}

impl PartialEq for Maintenance {
    fn eq(&self, other: &Self) -> bool {
        self.entered == other.entered && self.until_operator == other.until_operator
    }
}

/// How the state is written: the entered windows alone (version 1's form) while no
/// operator-resumed window holds the reason, else both.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Entered(BTreeMap<String, Occurrence>),
    Latched {
        entered: BTreeMap<String, Occurrence>,
        until_operator: bool,
    },
}

impl From<Stored> for Maintenance {
    fn from(stored: Stored) -> Self {
        let (entered, until_operator) = match stored {
            Stored::Entered(entered) => (entered, false),
            Stored::Latched {
                entered,
                until_operator,
            } => (entered, until_operator),
        };
        Maintenance {
            entered,
            until_operator,
            next: Vec::new(),
        }
    }
}

impl From<Maintenance> for Stored {
    fn from(m: Maintenance) -> Self {
        if m.until_operator {
            Stored::Latched {
                entered: m.entered,
                until_operator: true,
            }
        } else {
            Stored::Entered(m.entered)
        }
    }
}

/// A window entered or left, as of `at`.
struct Change {
    at: Timestamp,
    enter: bool,
    name: String,
    occurrence: Occurrence,
    resume: ResumeBy,
}

impl Maintenance {
    /// The names of the windows the clock is in.
    pub fn active(&self) -> impl Iterator<Item = &str> {
        self.entered.keys().map(String::as_str)
    }

    /// Whether the clock is in no window.
    pub fn is_empty(&self) -> bool {
        self.entered.is_empty()
    }

    /// The windows entered and left when the clock moves to `now`, in time order
    /// (leaves before enters at equal times).
    fn changes(&mut self, policy: &MaintenancePolicy, now: Timestamp) -> Vec<Change> {
        if self.next.len() != policy.windows.len() {
            self.next = vec![None; policy.windows.len()];
        }
        let mut changes = Vec::new();
        for (window, next) in policy.windows.iter().zip(&mut self.next) {
            if !window.enabled {
                continue;
            }
            let occurrence = match *next {
                Some(o) if now < o.end => o,
                _ => *next.insert(occurrence_ending_after(window, now)),
            };
            let inside = occurrence.contains(now);
            let entered = self.entered.get(&window.name).copied();
            if let Some(previous) = entered {
                if !inside || previous != occurrence {
                    changes.push(Change::leave(previous.end, &window.name, previous));
                }
            }
            if inside && entered != Some(occurrence) {
                changes.push(Change::enter(&window.name, occurrence, window.resume));
            }
        }
        // A window the policy no longer has (or has switched off) is left now.
        for (name, occurrence) in &self.entered {
            if !policy.windows.iter().any(|w| w.enabled && &w.name == name) {
                changes.push(Change::leave(occurrence.end.min(now), name, *occurrence));
            }
        }
        changes.sort_by_key(|c| (c.at, c.enter));
        changes
    }

    fn apply(&mut self, change: Change, decide: &mut Decide<'_>) {
        let Change {
            at,
            enter,
            name,
            occurrence,
            resume,
        } = change;
        let trigger = Trigger {
            id: &name,
            event_ts: at,
            evidence: Vec::new(),
            reason: format!(
                "maintenance window {name} {} ({} to {})",
                if enter { "started" } else { "ended" },
                occurrence.start,
                occurrence.end
            ),
        };
        if enter {
            self.entered.insert(name.clone(), occurrence);
            self.until_operator |= resume == ResumeBy::Operator;
            decide.pause(Rule::Maintenance, &Scope::Global, &trigger);
        } else {
            self.entered.remove(&name);
            if self.entered.is_empty() && !self.until_operator {
                decide.lift(Rule::Maintenance, Effect::Pause, &Scope::Global, &trigger);
            }
        }
    }
}

impl Change {
    fn enter(name: &str, occurrence: Occurrence, resume: ResumeBy) -> Change {
        Change {
            at: occurrence.start,
            enter: true,
            name: name.to_owned(),
            occurrence,
            resume,
        }
    }

    fn leave(at: Timestamp, name: &str, occurrence: Occurrence) -> Change {
        Change {
            at,
            enter: false,
            name: name.to_owned(),
            occurrence,
            resume: ResumeBy::Auto,
        }
    }
}

impl GuardRule for Maintenance {
    type Policy = MaintenancePolicy;
    const RULE: Rule = Rule::Maintenance;

    fn on_clock(&mut self, policy: &MaintenancePolicy, now: Timestamp, decide: &mut Decide<'_>) {
        if policy.windows.is_empty() && self.entered.is_empty() {
            return;
        }
        for change in self.changes(policy, now) {
            self.apply(change, decide);
        }
    }

    /// A global resume is the operator's word after the health check: a window that
    /// waits for it lets go.
    fn reset(&mut self, scope: &Scope) {
        if *scope == Scope::Global {
            self.until_operator = false;
        }
    }

    fn view(&self, out: &mut Map<String, Value>) {
        let active = self.active().map(|name| Value::String(name.to_owned()));
        out.insert("maintenance_active".into(), Value::Array(active.collect()));
        if self.until_operator {
            out.insert("maintenance_awaits_operator".into(), Value::Bool(true));
        }
    }

    fn adopt_policy(&mut self, _policy: &MaintenancePolicy) {
        self.next.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rules::testing::{at, Given};

    // The runbook's window: Tuesday 02:00–03:00 Asia/Tokyo = Monday 17:00–18:00 UTC.

    fn runbook() -> Given<Maintenance> {
        Given::policy(MaintenancePolicy::default())
    }

    fn night_window(name: &str, weekday: chrono::Weekday) -> MaintenanceWindow {
        MaintenanceWindow {
            name: name.into(),
            weekday,
            start_secs: 23 * 3_600,
            end_secs: 3_600,
            tz: chrono_tz::UTC,
            ..MaintenanceWindow::default()
        }
    }

    #[test]
    fn entering_the_window_pauses_globally_as_of_its_start() {
        // Given the runbook's window and a clock just before it
        let mut g = runbook();
        assert!(g.clock(at("2025-08-11T16:59:59.999Z")).is_empty());
        // When the clock moves into it
        let decided = g.clock(at("2025-08-11T17:20:00Z"));
        // Then the global scope pauses, stamped with the window's start
        assert_eq!(decided, ["pause global maintenance weekly-os-patch []"]);
        let pause = g.last_command();
        assert_eq!(pause.event_ts, at("2025-08-11T17:00:00Z"));
        assert_eq!(
            pause.reason,
            "maintenance window weekly-os-patch started (2025-08-11T17:00:00.000Z to 2025-08-11T18:00:00.000Z)"
        );
        assert!(g.paused(&Scope::Global));
        assert_eq!(g.rule.active().collect::<Vec<_>>(), ["weekly-os-patch"]);
    }

    #[test]
    fn leaving_the_window_resumes_as_of_its_end() {
        let mut g = runbook();
        g.clock(at("2025-08-11T17:30:00Z"));
        // When the clock reaches the end (exclusive)
        let decided = g.clock(at("2025-08-11T18:00:00Z"));
        // Then the global scope resumes, stamped with the end
        assert_eq!(decided, ["resume global maintenance weekly-os-patch []"]);
        assert_eq!(g.last_command().event_ts, at("2025-08-11T18:00:00Z"));
        assert!(!g.paused(&Scope::Global));
        assert!(g.rule.is_empty());
    }

    #[test]
    fn a_clock_that_jumps_over_a_whole_window_changes_nothing() {
        let mut g = runbook();
        assert!(g.clock(at("2025-08-11T16:00:00Z")).is_empty());
        assert!(g.clock(at("2025-08-11T19:00:00Z")).is_empty());
        assert!(g.rule.is_empty());
    }

    #[test]
    fn a_jump_from_one_occurrence_into_the_next_leaves_then_enters() {
        let mut g = runbook();
        g.clock(at("2025-08-11T17:30:00Z"));
        assert_eq!(
            g.clock(at("2025-08-18T17:30:00Z")),
            [
                "resume global maintenance weekly-os-patch []",
                "pause global maintenance weekly-os-patch []"
            ]
        );
    }

    #[test]
    fn overlapping_windows_hold_the_pause_until_the_last_one_ends() {
        // Given two windows: Mon 23:00–01:00 and Tue 00:30–02:00 UTC
        let mut second = night_window("second", chrono::Weekday::Tue);
        (second.start_secs, second.end_secs) = (1_800, 7_200);
        let first = night_window("first", chrono::Weekday::Mon);
        let mut g = Given::<Maintenance>::policy(MaintenancePolicy {
            windows: vec![first, second],
        });
        let pause = g.clock(at("2025-08-11T23:30:00Z"));
        assert_eq!(pause, ["pause global maintenance first []"]);
        assert!(g.clock(at("2025-08-12T00:45:00Z")).is_empty());
        // When the first ends, the second still holds the pause
        assert!(g.clock(at("2025-08-12T01:30:00Z")).is_empty());
        assert!(g.paused(&Scope::Global));
        // Then the end of the second resumes
        let resume = g.clock(at("2025-08-12T02:00:00Z"));
        assert_eq!(resume, ["resume global maintenance second []"]);
    }

    #[test]
    fn a_window_the_policy_no_longer_has_is_left_at_once() {
        let mut g = runbook();
        g.clock(at("2025-08-11T17:30:00Z"));
        // Given the state now runs under a policy without the window
        g.policy.windows.clear();
        g.rule.adopt_policy(&g.policy);
        // When the clock moves, still inside the old window
        let decided = g.clock(at("2025-08-11T17:31:00Z"));
        // Then the window is left, stamped with the clock
        assert_eq!(decided, ["resume global maintenance weekly-os-patch []"]);
        assert_eq!(g.last_command().event_ts, at("2025-08-11T17:31:00Z"));
        assert!(g.rule.is_empty());
    }

    #[test]
    fn leaving_the_window_keeps_the_pause_an_operator_holds() {
        let mut g = runbook();
        g.clock(at("2025-08-11T17:30:00Z"));
        let order = Trigger::message("o1", at("2025-08-11T17:40:00Z"), "operator".into());
        g.judge(|_, _, decide| decide.pause(Rule::Operator, &Scope::Global, &order));
        assert!(g.clock(at("2025-08-11T18:00:00Z")).is_empty());
        assert!(g.paused(&Scope::Global));
    }

    #[test]
    fn the_status_view_lists_the_windows_the_clock_is_in() {
        let mut g = runbook();
        g.clock(at("2025-08-11T17:30:00Z"));
        let mut view = Map::new();
        g.rule.view(&mut view);
        let active = serde_json::json!(["weekly-os-patch"]);
        assert_eq!(view["maintenance_active"], active);
    }

    #[test]
    fn the_state_serialises_as_the_entered_windows_alone() {
        let mut g = runbook();
        g.clock(at("2025-08-11T17:30:00Z"));
        let json = serde_json::to_string(&g.rule).unwrap();
        assert_eq!(
            json,
            r#"{"weekly-os-patch":{"start":"2025-08-11T17:00:00.000Z","end":"2025-08-11T18:00:00.000Z"}}"#
        );
        let back: Maintenance = serde_json::from_str(&json).unwrap();
        assert_eq!(back, g.rule);
    }
}

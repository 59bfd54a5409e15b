//! The resolved policy as a policy file: what `guard policy` prints, every key with its
//! value in force (defaults included), in the form the file takes — so the output read
//! back is the same policy, with the same `policy_version`.

use serde_json::{json, Value};

use super::Policy;
use crate::time::{exact_span, Span};

impl Policy {
    /// This policy as TOML that [`Policy::from_toml`] reads back to an equal policy:
    /// its sections in the contract's order (keys sorted within each), spans in their
    /// largest exact unit.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        // Top-level keys come before the first table.
        if let Some(env) = self.env {
            out.push_str(&format!("env = {}\n", json!(env)));
        }
        if self.rules.maintenance.windows.is_empty() {
            out.push_str("maintenance = []\n");
        }
        if !out.is_empty() {
            out.push('\n');
        }
        let rules = &self.rules;
        let mut section = |key: &str, value: Value| {
            let items = match value {
                Value::Array(items) => items.into_iter().map(|v| (true, v)).collect(),
                v => vec![(false, v)],
            };
            for (array, item) in items {
                let table: toml::Table =
                    serde_json::from_value(spans(item)).expect("a section is a TOML table");
                let body = toml::to_string(&table).expect("a section writes as TOML");
                let header = if array {
                    format!("[[{key}]]")
                } else {
                    format!("[{key}]")
                };
                out.push_str(&format!("{header}\n{body}\n"));
            }
        };
        section(
            "slippage",
            with_action(json!(rules.slippage), rules.slippage.action),
        );
        section(
            "losing_streak",
            with_action(json!(rules.losing_streak), rules.losing_streak.action),
        );
        section("enhanced", json!(rules.enhanced));
        section("daily", json!(rules.daily));
        section("warnings", json!(rules.warnings));
        section("acks", json!(rules.acks));
        section("state", json!(self.state));
        let windows: Vec<Value> = rules
            .maintenance
            .windows
            .iter()
            .map(|w| {
                let mut v = json!(w);
                let o = v.as_object_mut().expect("a window is an object");
                o.remove("start_secs");
                o.remove("end_secs");
                o.insert("start".into(), json!(clock(w.start_secs)));
                o.insert("end".into(), json!(clock(w.end_secs)));
                o.insert("resume".into(), json!(w.resume));
                v
            })
            .collect();
        section("maintenance", Value::Array(windows));
        out.trim_end().to_owned() + "\n"
    }
}

/// Spans as the resolved form writes them (`"600s"`) in their largest exact unit
/// (`"10m"`), anywhere in `value`.
fn spans(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(match s.strip_suffix('s').map(str::parse::<u64>) {
            Some(Ok(_)) => Span::parse(&s).map_or(s, exact_span),
            _ => s,
        }),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, spans(v))).collect()),
        other => other,
    }
}

/// A rule's section with its `action` written out (the resolved form leaves the
/// default out, to keep version-1 names).
fn with_action(mut section: Value, action: crate::message::Effect) -> Value {
    section["action"] = json!(action);
    section
}

/// Seconds after midnight as `HH:MM` (or `HH:MM:SS`); `24:00` for the end of the day.
fn clock(secs: u32) -> String {
    let (h, m, s) = (secs / 3_600, secs / 60 % 60, secs % 60);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_policy_reads_back_to_the_same_version() {
        for text in [
            "",
            "maintenance = []\n[state]\nhorizon = \"2h\"",
            "env = \"stg\"\n[slippage]\nthreshold_bps = 3.5\nwindow = \"90s\"\naction = \"reduce_only\"\npause = \"group\"\n[daily]\nmax_loss = 1000\nday_start = \"17:30\"\ntz = \"America/New_York\"\n[acks]\ngateways = [\"b\", \"a\"]\ntimeout = \"1500ms\"\n[warnings]\nenabled = true\n[[maintenance]]\nname = \"night\"\nweekday = \"Sun\"\nstart = \"23:00:30\"\nend = \"24:00\"\ntz = \"UTC\"\nresume = \"operator\"",
        ] {
            let policy = Policy::from_toml(text).unwrap();
            let printed = policy.to_toml();
            let back = Policy::from_toml(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
            assert_eq!(back, policy, "{printed}");
            assert_eq!(back.version(), policy.version(), "{printed}");
        }
    }

    #[test]
    fn every_section_is_printed_with_its_defaults() {
        let printed = Policy::default().to_toml();
        for key in [
            "[slippage]",
            "action = \"pause\"",
            "[daily]",
            "[acks]",
            "[warnings]",
            "[state]",
            "horizon = ",
            "[[maintenance]]",
            "start = \"02:00\"",
            "resume = \"auto\"",
        ] {
            assert!(printed.contains(key), "{key} missing:\n{printed}");
        }
    }
}

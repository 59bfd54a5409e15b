//! Reading a policy table: every problem collected with its key's path.

use std::fmt;

use toml::{Table, Value};

use crate::time::Span;

/// Walks a table, collecting problems instead of stopping at the first. Each reader
/// method leaves its output alone when the key is absent or its value is refused.
#[derive(Default)]
pub(crate) struct Reader {
    pub(super) problems: Vec<String>,
}

impl Reader {
    /// Records a problem with the key at `key`.
    pub(crate) fn problem(&mut self, key: &str, text: impl fmt::Display) {
        self.problems.push(format!("{key}: {text}"));
    }

    /// Reports every key of `table` that is not `allowed`.
    pub(crate) fn keys(&mut self, table: &Table, prefix: &str, allowed: &[&str]) {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                self.problem(
                    &format!("{prefix}{key}"),
                    format_args!("unknown key (allowed here: {})", allowed.join(", ")),
                );
            }
        }
    }

    /// The value of section `key` as a table, or a problem.
    pub(crate) fn table<'t>(&mut self, value: &'t Value, key: &str) -> Option<&'t Table> {
        match value {
            Value::Table(t) => Some(t),
            _ => {
                self.problem(key, "must be a table ([section])");
                None
            }
        }
    }

    pub(crate) fn bool(&mut self, t: &Table, path: &str, out: &mut bool) {
        match t.get(leaf(path)) {
            None => {}
            Some(Value::Boolean(b)) => *out = *b,
            Some(_) => self.problem(path, "must be true or false"),
        }
    }

    pub(crate) fn number(
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

    pub(crate) fn count(&mut self, t: &Table, path: &str, out: &mut u32) {
        match t.get(leaf(path)) {
            None => {}
            Some(Value::Integer(i)) if (1..=1_000_000).contains(i) => *out = *i as u32,
            Some(v) => self.problem(
                path,
                format_args!("must be a whole number from 1 to 1000000, not {v}"),
            ),
        }
    }

    /// An IANA time zone (`Asia/Tokyo`, `UTC`).
    pub(crate) fn tz(&mut self, t: &Table, path: &str, out: &mut chrono_tz::Tz) {
        let Some(tz) = self.string(t, path) else {
            return;
        };
        match tz.parse::<chrono_tz::Tz>() {
            Ok(z) => *out = z,
            Err(_) => self.problem(
                path,
                format_args!(
                    "must be an IANA time zone such as \"Asia/Tokyo\" or \"UTC\", not {tz:?}"
                ),
            ),
        }
    }

    pub(crate) fn span(&mut self, t: &Table, path: &str, out: &mut Span) {
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

    pub(crate) fn choice<T: Copy>(
        &mut self,
        t: &Table,
        path: &str,
        out: &mut T,
        choices: &[(&str, T)],
    ) {
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

    pub(crate) fn string(&mut self, t: &Table, path: &str) -> Option<String> {
        match t.get(leaf(path)) {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(v) => {
                self.problem(path, format_args!("must be a non-empty string, not {v}"));
                None
            }
        }
    }
}

/// The last part of a key's path: the key inside its table.
fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

//! The open windows as a snapshot keeps them (snapshot format 4): each group as
//! `[group, [breach, …]]`, each breach as `[ts, seq, fill_id]`, and its strategy as a
//! fourth item only where the group is not that strategy (the one window of
//! `group_by = "global"`).
//!
//! Formats 2 and 3 wrote each breach as an object of four keys, its strategy repeated
//! in every breach of its own group: about two and a half times the bytes, and a
//! backlog's windows are most of the engine's snapshot, written at every checkpoint.
//! Both forms are read.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Breach;
use crate::time::Timestamp;

/// Every group's breaches, by group.
type Groups = BTreeMap<Option<String>, Vec<Breach>>;

/// A breach as written.
#[derive(Serialize)]
#[serde(untagged)]
enum Written<'a> {
    /// Of the strategy its group is named after.
    Own(&'a Timestamp, u64, &'a str),
    /// Of another strategy (the global window).
    Other(&'a Timestamp, u64, &'a str, &'a str),
}

/// A breach as read: either form of this format, or the object of formats 2 and 3.
#[derive(Deserialize)]
#[serde(untagged)]
enum Read {
    Own(Timestamp, u64, String),
    Other(Timestamp, u64, String, String),
    Object {
        ts: Timestamp,
        seq: u64,
        fill_id: String,
        strategy_id: String,
    },
}

/// One group's breaches, each in its short form: its strategy named only where the
/// group does not name it ([`Breach::other_strategy`]).
struct Group<'a>(&'a [Breach]);

impl Serialize for Group<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|b| match &b.other_strategy {
            None => Written::Own(&b.ts, b.seq, &b.fill_id),
            Some(strategy) => Written::Other(&b.ts, b.seq, &b.fill_id, strategy),
        }))
    }
}

/// Writes the groups as pairs in key order, each breach in its short form.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize<S: Serializer>(groups: &Groups, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        groups
            .iter()
            .map(|(name, breaches)| (name, Group(breaches))),
    )
}

/// Reads the groups back, in the short form or as objects.
///
/// # Errors
/// Whatever the deserializer reports, or a short breach of the global window (which
/// must name its strategy).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Groups, D::Error> {
    let pairs = Vec::<(Option<String>, Vec<Read>)>::deserialize(d)?;
    let mut groups = Groups::new();
    for (name, read) in pairs {
        let mut breaches = Vec::with_capacity(read.len());
        for breach in read {
            let group = name.as_deref();
            breaches.push(match breach {
                Read::Own(ts, seq, fill_id) => {
                    let strategy = group.ok_or_else(|| {
                        D::Error::custom(
                            "a breach of the global slippage window must name its strategy",
                        )
                    })?;
                    Breach::new(ts, seq, &fill_id, strategy, group)
                }
                Read::Other(ts, seq, fill_id, strategy_id)
                | Read::Object {
                    ts,
                    seq,
                    fill_id,
                    strategy_id,
                } => Breach::new(ts, seq, &fill_id, &strategy_id, group),
            });
        }
        groups.insert(name, breaches);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder(#[serde(with = "super")] Groups);

    fn breach(ms: i64, seq: u64, fill: &str, strategy: &str, group: Option<&str>) -> Breach {
        Breach::new(Timestamp::from_millis(ms), seq, fill, strategy, group)
    }

    fn holder() -> Holder {
        Holder(Groups::from([
            (
                Some("alpha".to_owned()),
                vec![
                    breach(1_000, 1, "f1", "alpha", Some("alpha")),
                    breach(2_000, 3, "f3", "alpha", Some("alpha")),
                ],
            ),
            (
                None,
                vec![
                    breach(1_500, 2, "f2", "beta", None),
                    breach(2_500, 4, "f4", "gamma", None),
                ],
            ),
        ]))
    }

    #[test]
    fn a_breach_names_its_strategy_only_outside_the_strategys_own_group() {
        let text = serde_json::to_string(&holder()).unwrap();
        assert_eq!(
            text,
            r#"[[null,[["1970-01-01T00:00:01.500Z",2,"f2","beta"],["1970-01-01T00:00:02.500Z",4,"f4","gamma"]]],["alpha",[["1970-01-01T00:00:01.000Z",1,"f1"],["1970-01-01T00:00:02.000Z",3,"f3"]]]]"#
        );
        let back: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!(back, holder());
    }

    #[test]
    fn the_objects_of_formats_2_and_3_are_read() {
        let text = r#"[["alpha",[{"ts":"1970-01-01T00:00:01.000Z","seq":1,"fill_id":"f1","strategy_id":"alpha"},["1970-01-01T00:00:02.000Z",3,"f3"]]],[null,[{"ts":"1970-01-01T00:00:01.500Z","seq":2,"fill_id":"f2","strategy_id":"beta"},["1970-01-01T00:00:02.500Z",4,"f4","gamma"]]]]"#;
        let read: Holder = serde_json::from_str(text).unwrap();
        assert_eq!(read, holder());
    }

    #[test]
    fn a_short_breach_of_the_global_window_is_refused() {
        let text = r#"[[null,[["1970-01-01T00:00:01.000Z",1,"f1"]]]]"#;
        let err = serde_json::from_str::<Holder>(text).unwrap_err();
        assert!(err.to_string().contains("must name its strategy"), "{err}");
    }
}

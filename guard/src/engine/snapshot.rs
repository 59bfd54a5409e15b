//! What the engine remembers, and its snapshots.
//!
//! A snapshot is the JSON of [`EngineState`] with its format and the policy version it
//! was taken under. The rules' states are flattened into the state's object, one key
//! per rule, so the form is the one this format has always had.

use serde::{Deserialize, Serialize};

use super::rules::Rules;
use super::{Engine, EngineOptions, ScopeBook, Seen, SeenBlocks, SeenEntry};
use crate::policy::Policy;
use crate::time::Timestamp;

/// Everything the rules remember. Serialises deterministically.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// The engine's clock; `None` before the first message.
    pub clock: Option<Timestamp>,
    /// What rules have numbered to keep equal event times in arrival order (the
    /// slippage windows' breaches).
    pub arrivals: u64,
    /// Paused scopes and their reasons.
    pub scopes: ScopeBook,
    /// Every rule's state, under the rule's own key.
    #[serde(flatten)]
    pub rules: Rules,
    /// Ids applied within the state horizon.
    pub seen: Seen,
    /// The newest event time applied (the state horizon counts back from it).
    #[serde(default)]
    pub newest: Option<Timestamp>,
    /// Everything older than this was forgotten (the last sweep's cutoff).
    #[serde(default)]
    pub forgotten_before: Option<Timestamp>,
}

/// A serialised engine state with the policy it was taken under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format of this snapshot; bumped when [`EngineState`] changes incompatibly.
    pub format: u32,
    /// The policy in force when it was taken.
    pub policy_version: String,
    /// The state.
    pub state: EngineState,
}

/// The snapshot format this build writes. It also reads format 2, whose dedup keys
/// are full 128-bit digests (the set keeps their top 80 bits since format 3), and
/// format 3, whose slippage breaches are objects (arrays since format 4, the
/// strategy left out where the group names it).
pub const SNAPSHOT_FORMAT: u32 = 4;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a snapshot.
    #[error("snapshot is not readable: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// Written by an incompatible build.
    #[error(
        "snapshot format {found} is not supported (this build reads formats 2 to {SNAPSHOT_FORMAT})"
    )]
    Format {
        /// The format found.
        found: u32,
    },
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: u32,
    policy_version: &'a str,
    state: &'a EngineState,
}

impl Engine {
    /// The serialised state (JSON), restorable with [`Engine::restore`].
    pub fn snapshot(&self) -> Vec<u8> {
        self.snapshot_sized(0)
    }

    /// The snapshot written into a buffer of `expected` bytes (the size of the last
    /// one, say), so that a snapshot of megabytes is not grown by doubling, a copy at
    /// each step, with two large buffers alive at the last.
    fn snapshot_sized(&self, expected: usize) -> Vec<u8> {
        let snapshot = SnapshotRef {
            format: SNAPSHOT_FORMAT,
            policy_version: &self.policy_version,
            state: &self.state,
        };
        let mut bytes = Vec::with_capacity(expected);
        serde_json::to_writer(&mut bytes, &snapshot).expect("engine state always serialises");
        bytes
    }

    /// The snapshot without the set of seen ids, which a store keeps incrementally
    /// (see [`Engine::drain_seen_journal`]); restore it with [`Engine::restore`] and
    /// put the ids back with [`Engine::restore_seen`].
    pub fn snapshot_without_seen(&mut self) -> Vec<u8> {
        self.snapshot_without_seen_sized(0)
    }

    /// [`Engine::snapshot_without_seen`] into a buffer of `expected` bytes
    /// ([`Engine::snapshot_sized`]).
    pub fn snapshot_without_seen_sized(&mut self, expected: usize) -> Vec<u8> {
        let seen = std::mem::take(&mut self.state.seen);
        let bytes = self.snapshot_sized(expected);
        self.state.seen = seen;
        bytes
    }

    /// Starts journaling the ids of applied messages for incremental persistence.
    pub fn enable_seen_journal(&mut self) {
        self.state.seen.enable_journal();
    }

    /// The dedup keys added since the last call (empty unless journaling).
    pub fn drain_seen_journal(&mut self) -> SeenBlocks {
        self.state.seen.drain_journal()
    }

    /// How many dedup keys wait in the journal.
    pub fn seen_journal_len(&self) -> usize {
        self.state.seen.journal_len()
    }

    /// Adds dedup entries back after [`Engine::restore`] of a snapshot taken without
    /// them; entries older than the state's horizon are left out.
    pub fn restore_seen(&mut self, entries: impl IntoIterator<Item = SeenEntry>) {
        let from = self.seen_forgotten_before().unwrap_or(i64::MIN);
        self.state.seen.extend_entries(
            entries
                .into_iter()
                .map(SeenEntry::pair)
                .filter(|(_, second)| *second >= from),
        );
    }

    /// Seconds (event time) before which seen ids are forgotten, once a sweep ran.
    pub fn seen_forgotten_before(&self) -> Option<i64> {
        self.state.forgotten_before.map(Timestamp::whole_seconds)
    }

    /// An engine continuing from a snapshot taken by [`Engine::snapshot`]; the
    /// snapshot's own policy version is returned so the caller can say when the
    /// policy changed across the restart.
    ///
    /// # Errors
    /// [`SnapshotError`] when the bytes are not a snapshot of this format.
    pub fn restore(
        policy: Policy,
        options: EngineOptions,
        bytes: &[u8],
    ) -> Result<(Engine, String), SnapshotError> {
        let snapshot: Snapshot = serde_json::from_slice(bytes)?;
        if !(2..=SNAPSHOT_FORMAT).contains(&snapshot.format) {
            return Err(SnapshotError::Format {
                found: snapshot.format,
            });
        }
        Ok((
            Engine::with_state(policy, options, snapshot.state),
            snapshot.policy_version,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Scope;

    /// A snapshot of format 2 as the guard wrote it before its rules were units
    /// (`guard replay --state-out`): every rule's state at the top level of `state`,
    /// next to the engine's own keys.
    const FORMAT_2: &str = r#"{"format":2,"policy_version":"p-83158d3f4bdf","state":{"clock":"2025-08-11T17:30:00.000Z","arrivals":2,"scopes":{"paused":[[{"kind":"global"},{"reasons":["maintenance"],"since":"2025-08-11T17:00:00.000Z"}]]},"slippage":{"groups":[["alpha",[{"ts":"2025-08-11T17:29:00.000Z","seq":1,"fill_id":"f1","strategy_id":"alpha"},{"ts":"2025-08-11T17:29:30.000Z","seq":2,"fill_id":"f2","strategy_id":"alpha"}]]]},"streaks":{"streaks":{"beta":{"fills":["f3"],"last":"2025-08-11T17:10:00.000Z"}}},"adoptions":{"beta":["2025-08-11T00:00:00.000Z"]},"maintenance":{"weekly-os-patch":{"start":"2025-08-11T17:00:00.000Z","end":"2025-08-11T18:00:00.000Z"}},"seen":["22454f2c2d1d6dfc2092d8692a6a17aa:1754933340","441d356975ca2e6060bf653133489d43:1754933400","92c952a0bfb5e9416ad31e6748740c13:1754932200","fb36ee4654e9a48c51b61fe951fb677d:1754933370"],"newest":"2025-08-11T17:30:00.000Z","forgotten_before":"2025-08-10T17:10:00.000Z"}}"#;

    #[test]
    fn a_format_2_snapshot_restores_every_rule_and_is_written_back_as_format_4() {
        let (engine, version) = Engine::restore(
            Policy::default(),
            EngineOptions::default(),
            FORMAT_2.as_bytes(),
        )
        .unwrap();
        assert_eq!(version, "p-83158d3f4bdf");
        let state = engine.state();
        assert_eq!(state.rules.slippage.breaches(), 2);
        assert_eq!(state.rules.streaks.len(), 1);
        assert_eq!(state.rules.adoptions.len(), 1);
        assert_eq!(
            state.rules.maintenance.active().collect::<Vec<_>>(),
            ["weekly-os-patch"]
        );
        assert!(state.scopes.is_paused(&Scope::Global));
        assert_eq!(state.seen.len(), 4);
        // Migrated: written back in this build's format (the dedup keys shortened),
        // which restores to the same state.
        let written = engine.snapshot();
        assert!(String::from_utf8_lossy(&written).starts_with(r#"{"format":4,"#));
        let (again, _) =
            Engine::restore(Policy::default(), EngineOptions::default(), &written).unwrap();
        assert_eq!(again.state(), engine.state());
        assert_eq!(again.snapshot(), written);
    }

    #[test]
    fn a_snapshot_of_another_format_is_refused_with_both_formats_named() {
        let other = FORMAT_2.replacen("\"format\":2", "\"format\":1", 1);
        let err = Engine::restore(
            Policy::default(),
            EngineOptions::default(),
            other.as_bytes(),
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "snapshot format 1 is not supported (this build reads formats 2 to 4)"
        );
    }
}

use super::*;
use crate::engine::EngineOptions;
use crate::message::{Action, Mode};
use crate::policy::Policy;

const DAY: &str = include_str!("../../../../tests/golden/runbook_day/input.jsonl");
const ACKS: &str = include_str!("../../../../tests/golden/v2_acks/input.jsonl");
const ACKS_POLICY: &str = include_str!("../../../../tests/golden/v2_acks/policy.toml");

fn engine(policy: &str) -> Engine {
    Engine::new(Policy::from_toml(policy).unwrap(), EngineOptions::default())
}

/// Explains `id` over `text` as the file `day.jsonl`; also how many lines were read.
fn explain(policy: &str, text: &str, id: &str) -> (Result<Explanation, Box<NotFound>>, usize) {
    explain_text(engine(policy), id, "day.jsonl", text)
}

/// The decisions `guard replay` makes of `text`.
fn decisions(policy: &str, text: &str) -> Vec<Decision> {
    crate::replay::run(engine(policy), text.lines()).0
}

fn command(decisions: &[Decision], rule: Rule, action: Action) -> String {
    decisions
        .iter()
        .find_map(|d| match d {
            Decision::GuardCommand(c) if c.rule == rule && c.action == action => {
                Some(c.command_id.clone())
            }
            _ => None,
        })
        .expect("the command is decided")
}

fn place(line: u64) -> Place {
    Place::line("day.jsonl", line)
}

#[test]
fn a_slippage_pause_is_explained_by_its_fills_their_lines_and_the_scope_it_changed() {
    let id = command(&decisions("", DAY), Rule::SlippageWindow, Action::Pause);
    let x = explain("", DAY, &id).0.unwrap();
    assert_eq!(x.decision.id(), id);
    let found: Vec<(&str, Option<&Place>)> = x
        .evidence
        .iter()
        .map(|c| match &c.source {
            Source::Input { place, .. } => (c.id.as_str(), Some(place)),
            _ => (c.id.as_str(), None),
        })
        .collect();
    // f-003 is on lines 4 and 5 (a duplicate): the applied one is line 4.
    let expected = [
        ("f-002", place(3)),
        ("f-003", place(4)),
        ("f-004", place(6)),
    ];
    let expected: Vec<_> = expected.iter().map(|(i, p)| (*i, Some(p))).collect();
    assert_eq!(found, expected);
    assert_eq!(x.trigger.as_ref().unwrap().id, "f-004");
    assert_eq!(x.step.place, place(6));
    assert_eq!(x.before, ScopeState::of(None));
    assert_eq!(x.after.mode, Mode::Paused);
    assert_eq!(
        x.after.reasons,
        [Reason {
            rule: Rule::SlippageWindow,
            effect: Effect::Pause
        }]
    );
    let [Decision::RiskEvent(event)] = x.same_trigger.iter().map(|d| &**d).collect::<Vec<_>>()[..]
    else {
        panic!("the trip's risk event: {:?}", x.same_trigger);
    };
    assert_eq!(event.kind, "slippage_window");
    let later = x.next_command.expect("the operator's resume");
    assert_eq!(later.place, place(7));
    assert!(matches!(&*later.decision, Decision::GuardCommand(c) if c.trigger == "ops-001"));
    assert_eq!(x.at_end, None);
    assert_eq!(
        x.act.command.as_deref(),
        Some("guard resume --scope global --operator NAME --reason \"REASON\"")
    );
    assert_eq!(x.act.runbook.link, "docs/OPERATIONS.md#slippage-pause");
}

#[test]
fn the_guards_risk_event_is_explained_by_the_trigger_its_id_was_made_from() {
    let all = decisions("", DAY);
    let pause = command(&all, Rule::LosingStreak, Action::Pause);
    let event = all
        .iter()
        .find(|d| matches!(d, Decision::RiskEvent(e) if e.kind == "losing_streak"))
        .unwrap()
        .id()
        .to_owned();
    let x = explain("", DAY, &event).0.unwrap();
    assert_eq!(x.trigger.as_ref().unwrap().id, "f-104");
    let ids: Vec<&str> = x.evidence.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["f-101", "f-102", "f-104"]);
    let same: Vec<&str> = x.same_trigger.iter().map(|d| d.id()).collect();
    assert_eq!(same, [pause.as_str()]);
    assert_eq!(x.before.mode, Mode::Running);
    assert_eq!(x.after.reasons[0].rule, Rule::LosingStreak);
    assert_eq!(x.act.runbook.link, "docs/OPERATIONS.md#losing-streak");
}

#[test]
fn reading_stops_once_the_next_command_of_the_scope_is_found() {
    let id = command(&decisions("", DAY), Rule::SlippageWindow, Action::Pause);
    let (x, read) = explain("", DAY, &id);
    assert!(x.is_ok());
    assert_eq!(read, 7, "the resume is on line 7");
}

#[test]
fn a_scope_never_resumed_is_shown_as_it_is_at_the_end_of_the_files() {
    let lines: Vec<&str> = DAY.lines().take(6).collect();
    let text = lines.join("\n");
    let id = command(&decisions("", &text), Rule::SlippageWindow, Action::Pause);
    let x = explain("", &text, &id).0.unwrap();
    assert_eq!(x.next_command, None);
    assert_eq!(x.at_end.unwrap().mode, Mode::Paused);
}

#[test]
fn a_maintenance_pause_names_its_window_and_needs_nothing_when_it_ends_by_itself() {
    let id = command(&decisions("", DAY), Rule::Maintenance, Action::Pause);
    let x = explain("", DAY, &id).0.unwrap();
    let trigger = x.trigger.unwrap();
    assert_eq!(trigger.id, "weekly-os-patch");
    assert_eq!(trigger.source, Source::MaintenanceWindow { resume: "auto" });
    assert!(x.evidence.is_empty());
    assert_eq!(
        x.step.id.as_deref(),
        Some("f-302"),
        "its time moved the clock"
    );
    assert_eq!(x.act.command, None);
    assert_eq!(
        x.act.runbook.link,
        "docs/OPERATIONS.md#maintenance-health-check-gate"
    );
}

#[test]
fn an_unacknowledged_command_is_evidence_from_the_guard_itself() {
    let all = decisions(ACKS_POLICY, ACKS);
    let escalation = all
        .iter()
        .find(|d| matches!(d, Decision::RiskEvent(e) if e.kind == "command_unacknowledged"))
        .unwrap();
    let x = explain(ACKS_POLICY, ACKS, escalation.id()).0.unwrap();
    let [cited] = x.evidence.as_slice() else {
        panic!("one command: {:?}", x.evidence);
    };
    let Source::Guard {
        place: at,
        decision,
    } = &cited.source
    else {
        panic!("the guard's own command: {cited:?}");
    };
    assert_eq!(*at, place(1));
    assert_eq!(decision.id(), cited.id);
    assert_eq!(x.trigger.unwrap().id, cited.id);
    assert_eq!(
        x.act.runbook.link,
        "docs/OPERATIONS.md#unacknowledged-pause"
    );
}

#[test]
fn an_unknown_id_counts_the_decisions_and_offers_the_ones_it_starts() {
    let id = command(&decisions("", DAY), Rule::SlippageWindow, Action::Pause);
    let short = &id[..10];
    let missing = explain("", DAY, short).0.unwrap_err();
    assert_eq!((missing.commands, missing.events), (8, 2));
    assert_eq!(missing.nearest, std::slice::from_ref(&id));
    assert_eq!(missing.input, None);
    let text = missing.to_string();
    assert!(text.contains("8 guard commands, 2 risk events"), "{text}");
    assert!(text.contains(&format!("did you mean: {id}")), "{text}");
}

#[test]
fn an_input_id_says_where_it_is_and_which_decisions_rest_on_it() {
    let all = decisions("", DAY);
    let missing = explain("", DAY, "f-003").0.unwrap_err();
    assert_eq!(missing.input, Some((place(4), Stream::ExecResult)));
    let resting: Vec<&str> = all
        .iter()
        .filter(|d| d.id().starts_with("cmd-916a") || d.id().starts_with("evt-09d1"))
        .map(Decision::id)
        .collect();
    assert_eq!(missing.cited_by, resting);
    assert!(missing
        .to_string()
        .contains("is an input message (exec_result at day.jsonl:4)"));
}

#[test]
fn every_playbook_link_is_a_heading_anchor() {
    for (names, title) in PLAYBOOKS {
        for name in names.iter().copied().chain(["nothing_known"]) {
            let book = playbook(name);
            assert!(book.link.starts_with("docs/OPERATIONS.md#"), "{book:?}");
            assert!(
                !book.link.contains(' ') && !book.link.contains('('),
                "{book:?}"
            );
        }
        assert!(!title.is_empty());
    }
    assert_eq!(
        playbook("slippage_window_warning").link,
        "docs/OPERATIONS.md#slippage-pause"
    );
    assert_eq!(
        playbook("operator").link,
        "docs/OPERATIONS.md#pause-and-resume-runbook-toggle"
    );
}

#[test]
fn the_text_names_every_evidence_line_and_the_reasons_before_and_after() {
    let id = command(&decisions("", DAY), Rule::SlippageWindow, Action::Pause);
    let text = explain("", DAY, &id).0.unwrap().to_string();
    for needle in [
        format!("guard_command {id}: pause global"),
        "f-002  day.jsonl:3  exec_result  slippage 8.0 bps".into(),
        "f-003  day.jsonl:4".into(),
        "f-004  day.jsonl:6".into(),
        "before  running (no reasons)".into(),
        "after   paused since 2025-08-11T00:09:30.000Z: slippage_window (pause)".into(),
        "runbook: \"Slippage pause\" docs/OPERATIONS.md#slippage-pause".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn the_next_command_may_come_from_the_same_step() {
    let fill = |id: &str, ts: &str| {
        format!(
            r#"{{"stream":"exec_result","event":{{"fill_id":"{id}","strategy_id":"alpha","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100.1,"ts":"{ts}"}}}}"#
        )
    };
    // Monday 17:00-18:00 UTC is the default window; the third breach ends it and trips.
    let text = [
        fill("m1", "2025-08-11T17:30:00Z"),
        fill("m2", "2025-08-11T17:55:00Z"),
        fill("m3", "2025-08-11T17:57:00Z"),
        fill("m4", "2025-08-11T18:01:00Z"),
    ]
    .join("\n");
    let all = decisions("", &text);
    let resume = command(&all, Rule::Maintenance, Action::Resume);
    let pause = command(&all, Rule::SlippageWindow, Action::Pause);
    let x = explain("", &text, &resume).0.unwrap();
    assert_eq!(x.step.place, place(4));
    // After the step, not after the decision: the step's trip holds the scope again.
    assert_eq!(x.before.reasons[0].rule, Rule::Maintenance);
    assert_eq!(x.after.reasons[0].rule, Rule::SlippageWindow);
    let text = x.to_string();
    let later = x.next_command.expect("the trip of the same step");
    assert_eq!(
        (later.place, later.decision.id()),
        (place(4), pause.as_str())
    );
    assert!(
        text.contains("next command of global (the same step, applying day.jsonl:4)"),
        "{text}"
    );
    assert!(
        x.act
            .advice
            .starts_with("the same step left global paused again"),
        "{:?}",
        x.act
    );
}

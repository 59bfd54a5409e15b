use super::*;
use crate::engine::EngineOptions;
use crate::policy::Policy;
use crate::replay::explain::{explain_text, Cited, Place};
use crate::replay::{Line, Replay};

fn golden(day: &str) -> (String, String) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden")
        .join(day);
    let input = std::fs::read_to_string(dir.join("input.jsonl")).unwrap();
    let policy = std::fs::read_to_string(dir.join("policy.toml")).unwrap_or_default();
    (input, policy)
}

fn engine(policy: &str) -> Engine {
    Engine::new(Policy::from_toml(policy).unwrap(), EngineOptions::default())
}

struct Discard;

impl crate::replay::DecisionSink for Discard {
    fn emit(&mut self, _: &[Decision]) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Feeds the day line by line as the live guard feeds its steps, keeping the cases.
fn casebook_of(input: &str, policy: &str, capacity: usize) -> (Casebook, Vec<Decision>) {
    let mut replay = Replay::new(engine(policy), Discard);
    let mut decisions = Vec::new();
    let mut book = Casebook::new(capacity);
    let mut before = ScopeBook::default();
    for (i, bytes) in input.lines().enumerate() {
        let line = Line {
            file: "day.jsonl",
            number: i as u64 + 1,
            bytes: bytes.as_bytes(),
        };
        let _ = replay.feed_with(&line, |step| {
            decisions.extend_from_slice(step.decisions);
            if !step.decisions.is_empty() {
                let view = StepView {
                    place: Place::line("day.jsonl", line.number),
                    input: Some(step.input),
                    decisions: step.decisions,
                };
                book.record(&view, &before, step.engine);
            }
            // As the live guard keeps it (pipeline/cases.rs): the decisions' scopes
            // after a step that decided, everything after one that did not.
            let scopes = &step.engine.state().scopes;
            if step.decisions.is_empty() {
                if !matches!(step.input, crate::message::Input::Fill(_)) {
                    before = scopes.clone();
                }
            } else {
                for decision in step.decisions {
                    before.copy_scope(scopes, decision.scope());
                }
            }
        });
    }
    (book, decisions)
}

/// The first pause of the slippage window among `decisions`.
fn slippage_pause(decisions: &[Decision]) -> &Decision {
    decisions
        .iter()
        .find(|d| matches!(d, Decision::GuardCommand(c) if c.rule == crate::message::Rule::SlippageWindow))
        .unwrap()
}

/// `guard explain ID --input day.jsonl`.
fn explained(input: &str, policy: &str, id: &str) -> crate::replay::explain::Explanation {
    explain_text(engine(policy), id, "day.jsonl", input)
        .0
        .unwrap()
}

#[test]
fn a_case_once_its_evidence_is_found_is_what_explain_makes_of_the_files() {
    let mut compared = 0;
    for day in [
        "runbook_day",
        "v2_acks",
        "v2_modes_warnings_env",
        "maintenance_weeks",
        "late_breaches",
        "enhanced_global",
    ] {
        let (input, policy) = golden(day);
        let (book, decisions) = casebook_of(&input, &policy, usize::MAX);
        assert_eq!(book.len(), decisions.len(), "{day}: one case per decision");
        for decision in &decisions {
            let expected = explained(&input, &policy, decision.id());
            let mut case = book.get(decision.id()).unwrap();
            // What the live guard looks up in its input topics, the files say.
            for id in case.unresolved.clone() {
                let cited = expected
                    .trigger
                    .iter()
                    .chain(&expected.evidence)
                    .find(|c| c.id == id)
                    .unwrap();
                assert!(
                    matches!(cited.source, Source::Input { .. }),
                    "{day} {}: only earlier input messages are looked up, not {id}",
                    decision.id()
                );
                case.resolve(&id, &cited.source);
            }
            assert!(case.unresolved.is_empty());
            assert_eq!(case.explanation, expected, "{day} {}", decision.id());
            compared += 1;
        }
    }
    assert!(compared > 40, "only {compared} decisions compared");
}

#[test]
fn a_step_settles_its_own_message_and_leaves_earlier_evidence_to_look_up() {
    let (input, policy) = golden("runbook_day");
    let (book, decisions) = casebook_of(&input, &policy, usize::MAX);
    let pause = slippage_pause(&decisions);
    let case = book.get(pause.id()).unwrap();
    // f-004 is the step's own fill; f-002 and f-003 came earlier.
    assert_eq!(case.unresolved, ["f-002", "f-003"]);
    let trigger = case.explanation.trigger.unwrap();
    assert_eq!(trigger.id, "f-004");
    assert!(matches!(trigger.source, Source::Input { .. }));
}

#[test]
fn the_oldest_cases_go_beyond_the_capacity_and_before_the_horizon() {
    let (input, policy) = golden("runbook_day");
    let (all, decisions) = casebook_of(&input, &policy, usize::MAX);
    let (mut two, _) = casebook_of(&input, &policy, 2);
    assert_eq!(two.len(), 2);
    let last: Vec<&str> = decisions[decisions.len() - 2..]
        .iter()
        .map(Decision::id)
        .collect();
    for id in &last {
        assert!(two.get(id).is_ok(), "{id} is among the newest");
    }
    let gone = two.get(decisions[0].id()).unwrap_err();
    assert_eq!(gone.kept, 2);
    assert!(
        !gone.nearest.is_empty(),
        "ids that look like it are offered"
    );

    let newest = all.get(last[1]).unwrap().event_time;
    two.forget(newest.plus(crate::time::Span::from_secs(1)));
    assert!(two.is_empty());
}

#[test]
fn the_cases_of_a_trip_share_its_decisions_and_its_fill() {
    let (input, policy) = golden("runbook_day");
    let (book, decisions) = casebook_of(&input, &policy, usize::MAX);
    let pause = slippage_pause(&decisions);
    let command = book.get(pause.id()).unwrap().explanation;
    let [event] = command.same_trigger.as_slice() else {
        panic!("the trip's risk event: {:?}", command.same_trigger);
    };
    let event = book.get(event.id()).unwrap().explanation;
    // One copy of each decision: the command's case holds the risk event the event's
    // case is about, and the other way round.
    assert!(Arc::ptr_eq(&command.same_trigger[0], &event.decision));
    assert!(Arc::ptr_eq(&event.same_trigger[0], &command.decision));
    // One copy of the fill that triggered both.
    let message = |x: &crate::replay::explain::Explanation| match &x.trigger {
        Some(Cited {
            source: Source::Input { message, .. },
            ..
        }) => message.clone(),
        other => panic!("a fill's trigger: {other:?}"),
    };
    assert!(message(&command).shares(&message(&event)));
}

#[test]
fn a_scope_is_forgotten_with_its_last_case() {
    let (input, policy) = golden("runbook_day");
    let (mut book, decisions) = casebook_of(&input, &policy, usize::MAX);
    let scopes = |book: &Casebook| {
        let mut scopes: Vec<Scope> = book
            .cases
            .values()
            .map(|c| c.explanation.scope.clone())
            .collect();
        scopes.sort_by_key(|s| format!("{s:?}"));
        scopes.dedup();
        scopes
    };
    let mut kept = scopes(&book);
    assert!(kept.len() > 1, "the day decides about more than one scope");
    let mut now: Vec<Scope> = book.now.keys().cloned().collect();
    now.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(now, kept);
    // Down to the newest case: only its scope is still shown, and nothing waits for a
    // scope no case is of.
    let (mut last, _) = casebook_of(&input, &policy, 1);
    assert_eq!(last.len(), 1);
    kept = scopes(&last);
    assert_eq!(last.now.keys().cloned().collect::<Vec<_>>(), kept);
    assert!(last.waiting.keys().all(|s| kept.contains(s)));
    // Past the horizon: nothing is left.
    let newest = book
        .get(decisions[decisions.len() - 1].id())
        .unwrap()
        .event_time;
    for b in [&mut book, &mut last] {
        b.forget(newest.plus(crate::time::Span::from_secs(1)));
        assert!(b.is_empty() && b.now.is_empty() && b.waiting.is_empty());
    }
}

use super::*;
use crate::engine::{Engine, EngineOptions};
use crate::message::{Mode, Scope};
use crate::policy::Policy;
use crate::replay::{Line, MemorySink, Replay, Summary, Tally};
use crate::time::Timestamp;

const GOLDEN: [(&str, &str, &str); 3] = [
    (
        "runbook_day",
        include_str!("../../../../tests/golden/runbook_day/input.jsonl"),
        "",
    ),
    (
        "v2_modes_warnings_env",
        include_str!("../../../../tests/golden/v2_modes_warnings_env/input.jsonl"),
        include_str!("../../../../tests/golden/v2_modes_warnings_env/policy.toml"),
    ),
    (
        "maintenance_weeks",
        include_str!("../../../../tests/golden/maintenance_weeks/input.jsonl"),
        include_str!("../../../../tests/golden/maintenance_weeks/policy.toml"),
    ),
];

/// A replay of `lines` (the file `day.jsonl`) watched by [`PageFacts`].
struct Ran {
    facts: PageFacts,
    summary: Summary,
    tally: Tally,
    engine: Engine,
}

impl Ran {
    fn new<S: AsRef<str>>(policy: &str, lines: impl IntoIterator<Item = S>) -> Ran {
        let policy = Policy::from_toml(policy).unwrap();
        let mut facts = PageFacts::new(&policy);
        let engine = Engine::new(policy, EngineOptions::default());
        let mut replay = Replay::new(engine, MemorySink::default());
        for (i, text) in lines.into_iter().enumerate() {
            let line = Line {
                file: "day.jsonl",
                number: i as u64 + 1,
                bytes: text.as_ref().as_bytes(),
            };
            let _ = replay.feed_with(&line, |step| facts.observe(&line, &step));
        }
        let (engine, _, summary, tally) = replay.finish().unwrap();
        Ran {
            facts,
            summary,
            tally,
            engine,
        }
    }

    fn page(&self, inputs: &[String]) -> String {
        self.facts.render(&Run {
            inputs,
            summary: &self.summary,
            tally: &self.tally,
            policy: self.engine.policy(),
            policy_version: self.engine.policy_version(),
        })
    }
}

fn ts(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn fill(id: &str, strategy: &str, bps: f64, pnl: Option<f64>, at: &str) -> String {
    let pnl = pnl.map_or(String::new(), |p| format!(r#","realized_pnl":{p}"#));
    let fill = serde_json::json!({"fill_id": id, "strategy_id": strategy}).to_string();
    format!(
        r#"{{"stream":"exec_result","event":{},"symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"slippage_bps":{bps},"ts":"{at}"{pnl}}}}}"#,
        &fill[..fill.len() - 1]
    )
}

#[test]
fn escaping_turns_every_markup_character_into_a_reference() {
    assert_eq!(
        escape(r#"<script>alert('x')</script> & "q""#),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
    );
    assert!(matches!(escape("alpha-1"), std::borrow::Cow::Borrowed(_)));
}

#[test]
fn bands_run_from_each_command_to_the_next_and_start_and_end_with_the_span() {
    let (t0, t10, t20, t30, t40) = (
        ts("2025-08-11T00:00:00Z"),
        ts("2025-08-11T00:10:00Z"),
        ts("2025-08-11T00:20:00Z"),
        ts("2025-08-11T00:30:00Z"),
        ts("2025-08-11T00:40:00Z"),
    );
    let band = |mode, from, to| Band { mode, from, to };
    let got = bands(
        &[
            (t10, Mode::Paused),
            (t20, Mode::Running),
            (t30, Mode::ReduceOnly),
        ],
        t0,
        t40,
    );
    assert_eq!(
        got,
        [
            band(Mode::Running, t0, t10),
            band(Mode::Paused, t10, t20),
            band(Mode::Running, t20, t30),
            band(Mode::ReduceOnly, t30, t40),
        ]
    );
    // A pause at the span's start has no running band before it; one still held at
    // the end runs to the end.
    assert_eq!(
        bands(&[(t0, Mode::Paused)], t0, t40),
        [band(Mode::Paused, t0, t40)]
    );
    // A command earlier in event time than the one before (a late fill) ends that
    // band where it began, and its own band starts at its time.
    assert_eq!(
        bands(&[(t20, Mode::Paused), (t10, Mode::Running)], t0, t40),
        [band(Mode::Running, t0, t20), band(Mode::Running, t10, t40)]
    );
    assert_eq!(bands(&[], t0, t40), [band(Mode::Running, t0, t40)]);
}

/// The bands say what `--summary-json`'s `mode_seconds` says, for every scope of
/// every golden day: the timeline and the table never disagree.
#[test]
fn every_golden_days_bands_add_up_to_its_mode_seconds() {
    for (name, input, policy) in GOLDEN {
        let ran = Ran::new(policy, input.lines());
        let figures = ReplayFigures::new(&ran.summary, &ran.tally, ran.engine.policy_version());
        let (start, end) = (
            figures.first_event_ts.unwrap(),
            figures.last_event_ts.unwrap(),
        );
        let mut scopes: Vec<Scope> = ran.facts.changes().keys().cloned().collect();
        scopes.push(Scope::Global);
        for scope in scopes {
            let none = Vec::new();
            let changes = ran.facts.changes().get(&scope).unwrap_or(&none);
            let seconds = |mode| {
                bands(changes, start, end)
                    .iter()
                    .filter(|b| b.mode == mode)
                    .map(|b| b.to.since(b.from).as_micros() as f64 / 1e6)
                    .sum::<f64>()
            };
            let want = &figures.mode_seconds[&scope.to_string()];
            assert_eq!(seconds(Mode::Paused), want.paused, "{name} {scope}");
            assert_eq!(
                seconds(Mode::ReduceOnly),
                want.reduce_only,
                "{name} {scope}"
            );
        }
        assert!(ran.facts.changes().contains_key(&Scope::Global), "{name}");
    }
}

#[test]
fn ticks_fall_on_round_times_and_name_the_day_when_the_span_crosses_one() {
    let ticks = time_ticks(ts("2025-08-11T00:00:00Z"), ts("2025-08-11T18:00:00Z"), 12);
    let labels: Vec<&str> = ticks.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "00:00", "02:00", "04:00", "06:00", "08:00", "10:00", "12:00", "14:00", "16:00",
            "18:00"
        ]
    );
    let ticks = time_ticks(ts("2025-08-11T22:10:00Z"), ts("2025-08-12T01:55:00Z"), 12);
    assert_eq!(ticks[0].label, "08-11 22:30");
    assert_eq!(ticks.last().unwrap().label, "08-12 01:30");
    assert!(time_ticks(ts("2025-08-11T00:00:00Z"), ts("2025-08-11T00:00:00Z"), 12).is_empty());
}

#[test]
fn slippage_at_the_threshold_falls_left_of_it_and_every_fill_is_in_one_bin() {
    let mut h = SlippageHistogram::new(5.0);
    for bps in [-0.77, 0.77, 3.08, 5.0, 5.0001, 7.0, 8.0, 8.0] {
        h.add(bps);
    }
    assert_eq!((h.count(), h.above()), (8, 4));
    let bins = h.bins();
    assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 8);
    let holding = |bps: f64| {
        bins.iter()
            .find(|b| b.low.is_none_or(|l| l < bps) && b.high.is_none_or(|h| bps <= h))
            .unwrap()
    };
    assert_eq!(holding(5.0).high, Some(5.0), "{bins:?}");
    assert_eq!(holding(5.0001).low, Some(5.0), "{bins:?}");
    assert_eq!(holding(8.0).count, 2);
    // Round bins: every edge is a multiple of the width, zero among them.
    let width = bins[0].high.unwrap() - bins[0].low.unwrap();
    assert_eq!(width, 0.5);
    assert!(bins.iter().any(|b| b.high == Some(0.0)));
    assert!(bins.len() <= 40);
}

#[test]
fn the_tails_beyond_the_middle_fills_get_an_open_bin_each() {
    let mut h = SlippageHistogram::new(5.0);
    for i in 0..1000 {
        h.add(f64::from(i % 40) / 10.0);
    }
    h.add(9_000.0);
    h.add(-1e300);
    let bins = h.bins();
    let (first, last) = (&bins[0], &bins[bins.len() - 1]);
    assert_eq!((first.low, first.count), (None, 1), "{bins:?}");
    assert_eq!((last.high, last.count), (None, 1), "{bins:?}");
    assert!(last.low.unwrap() >= 5.0 && last.low.unwrap() < 9_000.0);
    assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 1002);
    assert!(bins.len() <= 42, "{}", bins.len());
    assert!(SlippageHistogram::new(5.0).bins().is_empty());
}

/// A trip long after thousands of losses that a win ended each time: the index kept
/// them, was trimmed many times, and the trip's evidence is still cited with the
/// right lines. Fills that can be neither a breach nor a loss are never kept.
#[test]
fn trimming_the_fill_index_keeps_what_a_later_trip_cites() {
    let mut lines = vec![
        fill("l0", "beta", 0.0, Some(-5.0), "2025-08-11T00:00:00Z"),
        fill("b1", "alpha", 9.0, None, "2025-08-11T00:00:00Z"),
        fill("l1", "beta", 0.0, Some(-5.0), "2025-08-11T00:00:01Z"),
    ];
    for i in 0..10_000 {
        let at = format!("2025-08-11T00:{:02}:{:02}Z", 1 + i / 600, (i / 10) % 60);
        let pnl = if i % 2 == 0 { -1.0 } else { 1.0 };
        lines.push(fill(&format!("q{i}"), "gamma", 1.0, Some(pnl), &at));
        lines.push(fill(&format!("r{i}"), "gamma", 2.0, None, &at));
    }
    lines.push(fill("b2", "alpha", 9.0, None, "2025-08-11T00:08:00Z"));
    lines.push(fill("b3", "alpha", 9.0, None, "2025-08-11T00:05:00Z"));
    let ran = Ran::new("[losing_streak]\ntrip_at = 2\npause = \"group\"\n", &lines);
    // 5,000 losses were kept; without trimming they would all still be there.
    let kept = ran.facts.fill_index().len();
    assert!((1..4_200).contains(&kept), "trimmed to {kept}");
    let first = ran.facts.first_trip().expect("the streak trips");
    assert_eq!(first.event.kind, "losing_streak");
    let cited: Vec<(&str, u64)> = first
        .evidence
        .iter()
        .map(|(id, c)| (id.as_str(), c.as_ref().expect("kept").line))
        .collect();
    assert_eq!(cited, [("l0", 1), ("l1", 3)]);
    let last = ran.facts.last_trip().expect("the slippage window trips");
    assert_eq!(last.event.kind, "slippage_window");
    let cited: Vec<(&str, u64)> = last
        .evidence
        .iter()
        .map(|(id, c)| (id.as_str(), c.as_ref().expect("kept").line))
        .collect();
    assert_eq!(cited, [("b1", 2), ("b3", 20_005), ("b2", 20_004)]);
    assert_eq!(last.trigger.line, 20_005);
    assert_eq!(last.command.as_ref().unwrap().trigger, "b3");
    assert_eq!(ran.tally.first_trip.as_ref().unwrap().fill_id, "l1");
    assert_eq!(ran.tally.last_trip.as_ref().unwrap().fill_id, "b3");
}

/// Kept: a fill above the lowest threshold a strategy can have (the runbook's 5 bps
/// halved under enhanced monitoring) or a loss; nothing else can be evidence.
#[test]
fn only_fills_that_could_be_a_breach_or_a_loss_are_kept() {
    let keep = |policy: &str, bps: f64, pnl: Option<f64>| {
        let mut index = FillIndex::new(&Policy::from_toml(policy).unwrap());
        let text = fill("f", "alpha", bps, pnl, "2025-08-11T00:00:00Z");
        let input = crate::decode::decode_envelope(text.as_bytes()).unwrap();
        let crate::message::Input::Fill(f) = input else {
            unreachable!()
        };
        let line = Line {
            file: "day.jsonl",
            number: 7,
            bytes: text.as_bytes(),
        };
        index.keep(&line, &f);
        index.cite("f").map(|c| c.line)
    };
    assert_eq!(keep("", 2.6, None), Some(7));
    assert_eq!(keep("", 2.5, None), None);
    assert_eq!(keep("", 2.5, Some(0.0)), None);
    assert_eq!(keep("", -3.0, Some(-0.01)), Some(7));
    assert_eq!(keep("[enhanced]\nenabled = false\n", 2.6, None), None);
    assert_eq!(keep("[enhanced]\nenabled = false\n", 5.01, None), Some(7));
}

#[test]
fn ids_from_the_input_cannot_inject_markup_and_nothing_is_fetched() {
    let hostile = "<script>alert(1)</script>";
    let lines = [
        fill("<img src=x>", hostile, 9.0, None, "2025-08-11T00:00:00Z"),
        fill("f2", hostile, 9.0, None, "2025-08-11T00:01:00Z"),
        fill("f3\"'", hostile, 9.0, None, "2025-08-11T00:02:00Z"),
    ];
    let ran = Ran::new("", lines);
    assert_eq!(ran.tally.pauses(), 1);
    let page = ran.page(&["<b>day</b>.jsonl".to_owned()]);
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&lt;img src=x&gt;"));
    assert!(page.contains("&lt;b&gt;day&lt;/b&gt;.jsonl"));
    for banned in [
        "<script",
        "<img",
        "<b>day",
        "f3\"'",
        "http://",
        "https://",
        "url(",
        "@font-face",
        "@import",
        "<link",
        "href=",
    ] {
        assert!(!page.contains(banned), "{banned} in the page");
    }
}

#[test]
fn the_runbook_days_page_holds_its_figures_trips_and_policy() {
    let (_, input, _) = GOLDEN[0];
    let ran = Ran::new("", input.lines());
    let page = ran.page(&["day.jsonl".to_owned()]);
    for want in [
        "<title>Replay report 2025-08-11 (p-83158d3f4bdf)</title>",
        "data-figure=\"fills\"><div class=\"value\">11</div>",
        "data-figure=\"invalid\"><div class=\"value\">1</div>",
        "data-figure=\"trips\"><div class=\"value\">2</div>",
        "<svg id=\"timeline\"",
        "<g class=\"row\" data-scope=\"strategy:gamma\">",
        "<rect class=\"band paused\"",
        "<svg id=\"slippage\"",
        "id=\"threshold-line\"",
        "<svg id=\"trips-by-rule\"",
        "<section class=\"trip\" id=\"first-trip\">",
        "<code>day.jsonl:6</code>",
        "# policy_version = p-83158d3f4bdf\n[slippage]",
        "day.jsonl:12</code></td><td>exec_result: invalid type",
    ] {
        assert!(page.contains(want), "{want}");
    }
    // Rendering is a pure function of the run: the same bytes again.
    assert_eq!(page, ran.page(&["day.jsonl".to_owned()]));
}

#[test]
fn a_run_without_events_says_so_in_every_section() {
    let ran = Ran::new("", Vec::<String>::new());
    let page = ran.page(&[]);
    assert!(page.contains("Nothing was applied: no timeline."));
    assert!(page.contains("No fill was applied."));
    assert!(page.contains("No rule tripped."));
    assert!(!page.contains("<svg id=\"timeline\""));
}

//! `guard replay --html FILE`: the page is written next to the run's other outputs,
//! holds the figures `--summary-json` writes, fetches nothing, and renders in a real
//! browser — headless Chromium, installed by scripts/install-chromium.sh (its path in
//! `CHROMIUM_BIN`, as scripts/test.sh sets it) — with its text and a drawn timeline.

mod cli_support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cli_support::{guard, root, text};

use serde_json::Value;

/// The page and the summary JSON of one golden day, written by one run.
struct Day {
    dir: PathBuf,
    page: PathBuf,
    html: String,
    json: Value,
}

fn replay_day(case: &str) -> Day {
    let dir = temp(case);
    let page = dir.join("page.html");
    let input = format!("tests/golden/{case}/input.jsonl");
    let policy = format!("tests/golden/{case}/policy.toml");
    let decisions = dir.join("decisions.jsonl");
    let mut args = vec![
        "replay",
        "--input",
        &input,
        "--output",
        decisions.to_str().unwrap(),
        "--summary-json",
        "-",
        "--html",
        page.to_str().unwrap(),
        "--report",
    ];
    if root().join(&policy).exists() {
        args.extend(["--policy", &policy]);
    }
    let out = guard(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("report:"),
        "--report still prints"
    );
    let json = serde_json::from_slice(&out.stdout).expect("the summary JSON");
    let html = std::fs::read_to_string(&page).expect("the page is written");
    Day {
        dir,
        page,
        html,
        json,
    }
}

/// The number in the header's tile `data-figure="{key}"`.
fn tile(html: &str, key: &str) -> u64 {
    let at = format!("data-figure=\"{key}\"><div class=\"value\">");
    let start = html.find(&at).unwrap_or_else(|| panic!("no tile {key}")) + at.len();
    let end = start + html[start..].find('<').unwrap();
    html[start..end].parse().unwrap()
}

fn count(json: &Value, path: &str) -> u64 {
    json.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path}"))
}

/// Every timeline band as (scope, mode, width), from the rows of `html`.
fn bands(html: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for row in html.split("<g class=\"row\" data-scope=\"").skip(1) {
        let scope = &row[..row.find('"').unwrap()];
        let row = &row[..row.find("</g>").unwrap()];
        for band in row.split("<rect class=\"band ").skip(1) {
            let mode = &band[..band.find('"').unwrap()];
            let w = band.split(" width=\"").nth(1).unwrap();
            let width: f64 = w[..w.find('"').unwrap()].parse().unwrap();
            out.push((scope.to_owned(), mode.to_owned(), width));
        }
    }
    out
}

/// Nothing in the page points outside it.
fn assert_self_contained(html: &str) {
    for banned in [
        "http://",
        "https://",
        "src=",
        "href=",
        "url(",
        "@import",
        "@font-face",
        "<script",
        "<link",
        "<iframe",
        "<object",
    ] {
        assert!(!html.contains(banned), "the page holds {banned:?}");
    }
}

/// Every scope with time paused (or reduce-only) in the summary has a band of that
/// mode with some width, and no other scope has one.
fn assert_bands_match(html: &str, json: &Value) {
    let bands = bands(html);
    let modes = json["mode_seconds"].as_object().unwrap();
    assert!(modes.len() > 1, "a day with held strategies");
    for (scope, seconds) in modes {
        for (key, mode) in [("paused", "paused"), ("reduce_only", "reduce_only")] {
            let held = seconds[key].as_f64().unwrap() > 0.0;
            let drawn = bands
                .iter()
                .any(|(s, m, w)| s == scope && m == mode && *w > 0.0);
            assert_eq!(held, drawn, "{scope} {mode}: {bands:?}");
        }
    }
}

#[test]
fn the_page_is_written_with_the_days_figures_next_to_every_other_output() {
    for case in ["runbook_day", "v2_modes_warnings_env", "v2_acks"] {
        let day = replay_day(case);
        let (html, json) = (&day.html, &day.json);
        assert_self_contained(html);
        assert_bands_match(html, json);
        assert_eq!(
            tile(html, "fills"),
            count(json, "/inputs/exec_result/applied")
        );
        assert_eq!(
            tile(html, "other_env"),
            count(json, "/inputs/exec_result/other_env")
        );
        for (key, path) in [
            ("invalid", "/invalid"),
            ("duplicates", "/duplicates"),
            ("trips", "/trips/total"),
            ("pauses", "/pauses/total"),
            ("reduce_only", "/reduce_only/total"),
            ("resumes", "/commands/resume"),
            ("warnings", "/warnings/total"),
        ] {
            assert_eq!(tile(html, key), count(json, path), "{case} {key}");
        }
        let version = json["policy_version"].as_str().unwrap();
        assert!(html.contains(&format!("# policy_version = {version}\n")));
        for (id, which) in [("first-trip", "first"), ("last-trip", "last")] {
            let trip = &json["trips"][which];
            let card = html.split(&format!("id=\"{id}\"")).nth(1);
            if trip.is_null() {
                assert!(card.is_none(), "{case}: no trip, no card");
                continue;
            }
            let card = card.unwrap().split("</section>").next().unwrap();
            let fill = trip["fill_id"].as_str().unwrap();
            let kind = trip["kind"].as_str().unwrap();
            assert!(card.contains(&format!(
                "fill <code>{fill}</code> at <code>tests/golden/{case}/input.jsonl:"
            )));
            assert!(card.contains(&format!("<code>{kind}</code>")), "{card}");
        }
        let decisions = std::fs::read(day.dir.join("decisions.jsonl")).unwrap();
        let expected = std::fs::read(root().join(format!("tests/golden/{case}/expected.jsonl")));
        assert_eq!(
            decisions,
            expected.unwrap(),
            "{case}: the decisions as ever"
        );
    }
}

#[test]
fn the_same_day_gives_the_same_page_and_stdout_can_carry_it() {
    let day = replay_day("runbook_day");
    let decisions = day.dir.join("again.jsonl");
    let out = guard(&[
        "replay",
        "--input",
        "tests/golden/runbook_day/input.jsonl",
        "--output",
        decisions.to_str().unwrap(),
        "--html",
        "-",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), day.html);
}

#[test]
fn html_is_refused_where_it_would_mix_with_or_overwrite_another_output() {
    let dir = temp("refused");
    let same = dir.join("same");
    let same = same.to_str().unwrap();
    let day = "examples/day.jsonl";
    let cases: [(&[&str], &str); 6] = [
        (
            &["--html", "-"],
            "--html -: standard output already carries the decisions",
        ),
        (
            &["--html", "-", "--output", same, "--summary-json", "-"],
            "standard output can carry only one of them",
        ),
        (
            &["--html", same, "--output", same],
            "--html and --output name the same file",
        ),
        (
            &[
                "--html",
                same,
                "--summary-json",
                same,
                "--output",
                "/dev/null",
            ],
            "--html and --summary-json name the same file",
        ),
        (
            &["--html", same, "--state-out", same],
            "--html and --state-out name the same file",
        ),
        (
            &["--html", same, "--sweep", "slippage.trip_at=2,3"],
            "--html draws one policy's day and --sweep runs several",
        ),
    ];
    for (extra, said) in cases {
        let mut args = vec!["replay", "--input", day];
        args.extend(extra);
        let out = guard(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(said), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(out.stdout.is_empty(), "{extra:?}: nothing is written");
    }
    assert!(!Path::new(same).exists(), "no refused run created the file");
}

// --- in a browser --------------------------------------------------------------------

/// Headless Chromium: `CHROMIUM_BIN`, else what scripts/install-chromium.sh installs.
/// A browser that cannot be had fails the test, on CI and off it: it never passes
/// without having rendered the page.
fn chromium_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "CHROMIUM_BIN={} does not exist",
            path.display()
        );
        return path;
    }
    let out = Command::new("bash")
        .arg(root().join("scripts/install-chromium.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs");
    let ci = std::env::var_os("CI").is_some();
    assert!(
        out.status.success(),
        "scripts/install-chromium.sh failed{}: headless Chromium is needed to render the \
         --html page (set CHROMIUM_BIN to a chromium binary)",
        if ci { " on CI" } else { "" }
    );
    PathBuf::from(text(&out.stdout).trim())
}

/// Runs headless Chromium with `args` on `page`, its own profile in `dir`, at most
/// 120 s; returns its standard output.
fn chromium(dir: &Path, page: &Path, args: &[&str]) -> String {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let (stdout, stderr) = (
        dir.join(format!("out-{run}")),
        dir.join(format!("err-{run}")),
    );
    let mut child = Command::new(chromium_bin())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join(format!("profile-{run}")).display()
        ))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(File::create(&stdout).unwrap())
        .stderr(File::create(&stderr).unwrap())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(status.success(), "chromium {args:?}: {status}\n{err}");
    std::fs::read_to_string(&stdout).unwrap()
}

/// The DOM's text: tags dropped, the few references the page uses read back.
fn dom_text(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Width and height from a PNG's header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn chromium_renders_the_pages_text_and_draws_the_timeline() {
    let day = replay_day("v2_modes_warnings_env");
    let dom = chromium(&day.dir, &day.page, &["--dump-dom"]);
    assert!(dom.contains("<svg id=\"timeline\""), "{dom}");
    assert!(!dom.contains("<script"), "no script in the DOM");
    assert_bands_match(&dom, &day.json);
    let words = dom_text(&dom);
    let version = day.json["policy_version"].as_str().unwrap();
    for want in [
        "Replay report 2025-08-11",
        "8 fills applied",
        "1 other-env fills",
        "2 trips",
        "3 pauses",
        "3 reduce-only",
        "global",
        "strategy:alpha",
        "strategy:gamma",
        "strategy:delta",
        "slippage_window",
        "losing_streak",
        "First trip: slippage_window by strategy alpha",
        "Last trip: losing_streak by strategy beta",
        "tests/golden/v2_modes_warnings_env/input.jsonl:4",
        "threshold 5 bps",
        version,
    ] {
        assert!(
            words.contains(want),
            "{want:?} not in the rendered text:\n{words}"
        );
    }
    let mut per_scope: BTreeMap<String, usize> = BTreeMap::new();
    for (scope, _, _) in bands(&dom) {
        *per_scope.entry(scope).or_default() += 1;
    }
    assert_eq!(
        per_scope.keys().collect::<Vec<_>>(),
        [
            "global",
            "strategy:alpha",
            "strategy:delta",
            "strategy:gamma"
        ]
    );
}

#[test]
fn chromium_screenshots_the_page_at_its_size_with_the_paused_bands_drawn() {
    let day = replay_day("runbook_day");
    let shot = |page: &Path, name: &str| {
        let png = day.dir.join(name);
        let arg = format!("--screenshot={}", png.display());
        chromium(&day.dir, page, &["--window-size=1200,900", &arg]);
        std::fs::read(&png).unwrap()
    };
    let png = shot(&day.page, "page.png");
    assert_eq!(png_size(&png), (1200, 900));
    assert!(
        png.len() > 30_000,
        "a page with text and charts: {} bytes",
        png.len()
    );
    // Rendering is deterministic, so a change in the image is a change in the page.
    assert_eq!(
        png,
        shot(&day.page, "again.png"),
        "the same page, the same image"
    );
    // The same page without its paused bands: the timeline looks different, so the
    // bands were drawn (visible, in the first screenful).
    let mut html = day.html.clone();
    let mut removed = 0;
    while let Some(start) = html.find("<rect class=\"band paused\"") {
        let end = start + html[start..].find("</rect>").unwrap() + "</rect>".len();
        html.replace_range(start..end, "");
        removed += 1;
    }
    assert!(removed >= 3, "the runbook day's pauses: {removed}");
    let bare = day.dir.join("bare.html");
    std::fs::write(&bare, html).unwrap();
    assert_ne!(
        png,
        shot(&bare, "bare.png"),
        "the paused bands show in the image"
    );
}

/// A fresh directory for one call.
fn temp(name: &str) -> PathBuf {
    cli_support::scratch_dir("html", name)
}

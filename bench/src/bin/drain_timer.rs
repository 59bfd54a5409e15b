//! `drain-timer`: times one backlog-drain contender of bench/compare.sh, the same way
//! for every contender.
//!
//!   drain-timer [--timeout SECONDS] -- COMMAND [ARGS...]
//!
//! Starts COMMAND with its stdout piped and stamps, on this process's monotonic clock,
//! the contender's `ready` line (input assigned) and its `done N` line (N messages
//! consumed and applied) — the drain protocol of `bench::drain`. At each of the two
//! lines it also reads the contender's CPU time from /proc. Other stdout lines go to
//! stderr. After the contender exits, its peak RSS comes from the kernel (`wait4`'s
//! `ru_maxrss`: the high-water mark of the whole life, shutdown included).
//!
//! Prints one JSON line: `messages`, `seconds` (ready → done), `msgs_per_s`,
//! `cpu_s` (CPU between the two lines), `startup_s` (start → ready), `exit_s` (done →
//! exit), `cpu_total_s`, `peak_rss_mb`, `exit_code`. Fields it could not measure are
//! null. A contender still running after the timeout (default 1800 s) is killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::drain;
use serde_json::json;

fn die(m: &str) -> ! {
    eprintln!("drain-timer: {m}");
    std::process::exit(2)
}

/// user + system CPU seconds of a live process.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / hz)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut timeout = Duration::from_secs(1800);
    if args.first().map(String::as_str) == Some("--timeout") {
        let secs: u64 = args
            .get(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| die("--timeout takes seconds"));
        timeout = Duration::from_secs(secs);
        args.drain(..2);
    }
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    let Some((program, rest)) = args.split_first() else {
        die("usage: drain-timer [--timeout SECONDS] -- COMMAND [ARGS...]");
    };
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| die(&format!("{program}: {e}")));
    let pid = child.id();
    let finished = Arc::new(AtomicBool::new(false));
    {
        let finished = finished.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if finished.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!(
                "drain-timer: {program_pid} still running after {timeout:?}; killing it",
                program_pid = pid
            );
            // SAFETY: kill(2) on our own child's pid, which is not reaped before
            // `finished` is set.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        });
    }
    let mut ready: Option<(Instant, Option<f64>)> = None;
    let mut done: Option<(Instant, Option<f64>, u64)> = None;
    let stdout = child.stdout.take().expect("piped stdout");
    for line in BufReader::new(stdout).lines() {
        let now = Instant::now();
        let Ok(line) = line else { break };
        let line = line.trim();
        if line == drain::READY && ready.is_none() {
            ready = Some((now, cpu_seconds(pid)));
        } else if let Some(n) = line
            .strip_prefix(drain::DONE)
            .and_then(|n| n.trim().parse::<u64>().ok())
        {
            if done.is_none() {
                done = Some((now, cpu_seconds(pid), n));
            }
        } else {
            eprintln!("{line}");
        }
    }
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid value to be filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child (never reaped through `child`), with valid
    // out-pointers.
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    let exited = Instant::now();
    finished.store(true, Ordering::Relaxed);
    std::mem::forget(child);
    let exit_code = if waited < 0 {
        None
    } else if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        Some(128 + libc::WTERMSIG(status))
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu_total = (waited >= 0).then(|| tv(usage.ru_utime) + tv(usage.ru_stime));
    let peak_rss_mb = (waited >= 0).then(|| usage.ru_maxrss as f64 / 1024.0);
    let measured = match (ready, done) {
        (Some((r, rc)), Some((d, dc, n))) if d > r => {
            let secs = d.duration_since(r).as_secs_f64();
            Some((n, secs, rc.zip(dc).map(|(a, b)| b - a), d))
        }
        _ => None,
    };
    let out = json!({
        "messages": measured.map(|m| m.0),
        "seconds": measured.map(|m| round3(m.1)),
        "msgs_per_s": measured.map(|m| (m.0 as f64 / m.1).round() as u64),
        "cpu_s": measured.and_then(|m| m.2).map(round3),
        "startup_s": ready.map(|r| round3(r.0.duration_since(started).as_secs_f64())),
        "exit_s": measured.map(|m| round3(exited.duration_since(m.3).as_secs_f64())),
        "cpu_total_s": cpu_total.map(round3),
        "peak_rss_mb": peak_rss_mb.map(|m| (m * 10.0).round() / 10.0),
        "exit_code": exit_code,
    });
    println!("{out}");
}

//! `gen-stream`: writes a deterministic mixed replay stream for benchmarks.
//!
//! Usage: gen-stream [MESSAGES] [STRATEGIES] [BREACH_SHARE] > stream.jsonl
//! Defaults: 1000000 messages, 1000 strategies, 0.02 of fills breaching 5 bps.

use std::io::{BufWriter, Write};

use bench::{mixed_stream, StreamShape};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!(
            "usage: gen-stream [MESSAGES] [STRATEGIES] [BREACH_SHARE] [fills] > stream.jsonl"
        );
        return;
    }
    let parse = |i: usize, what: &str| -> Option<f64> {
        args.get(i).map(|v| {
            v.parse().unwrap_or_else(|_| {
                eprintln!("gen-stream: {what} must be a number, not {v:?}");
                std::process::exit(2)
            })
        })
    };
    let mut shape = StreamShape::default();
    if let Some(v) = parse(0, "MESSAGES") {
        shape.messages = v as u64;
    }
    if let Some(v) = parse(1, "STRATEGIES") {
        shape.strategies = v as u64;
    }
    if let Some(v) = parse(2, "BREACH_SHARE") {
        shape.breach_share = v;
    }
    shape.fills_only = args.get(3).is_some_and(|a| a == "fills");
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut failed = false;
    mixed_stream(&shape, |line| {
        if !failed && (out.write_all(line.as_bytes()).is_err() || out.write_all(b"\n").is_err()) {
            failed = true;
        }
    });
    if failed || out.flush().is_err() {
        eprintln!("gen-stream: cannot write to standard output");
        std::process::exit(1);
    }
}

//! Load generation for the guard's benchmarks: deterministic streams of mixed
//! messages in the replay envelope form (CONTRACT §4).

use std::fmt::Write as _;

pub mod drain;

/// A small, fast, deterministic PRNG (splitmix64): the same seed gives the same stream
/// on every machine, so benchmark inputs are reproducible without a dependency.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Shape of a generated stream.
#[derive(Clone, Debug)]
pub struct StreamShape {
    /// Messages to generate.
    pub messages: u64,
    /// Distinct strategies.
    pub strategies: u64,
    /// Share of fills whose slippage breaches the runbook's 5 bps.
    pub breach_share: f64,
    /// Mean event-time step between messages, in milliseconds.
    pub step_ms: u64,
    /// PRNG seed.
    pub seed: u64,
    /// Only fills (no risk events, operator orders, adoptions or repeats).
    pub fills_only: bool,
}

impl Default for StreamShape {
    fn default() -> Self {
        StreamShape {
            messages: 1_000_000,
            strategies: 1_000,
            breach_share: 0.02,
            step_ms: 50,
            seed: 42,
            fills_only: false,
        }
    }
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC.
pub fn rfc3339_ms(ms: i64) -> String {
    guard::time::Timestamp::from_millis(ms).to_string()
}

/// Writes the stream's lines, one envelope each, into `out` via `emit`. The mix is
/// ~95% fills (some breaching, some closing with a P&L), ~2% risk events, ~2%
/// operator orders, ~1% adoptions, and ~0.2% repeated deliveries of a recent fill.
pub fn mixed_stream(shape: &StreamShape, mut emit: impl FnMut(&str)) {
    let mut rng = SplitMix::new(shape.seed);
    // Monday 2025-08-11 00:00 UTC; the default maintenance window is at 17:00 UTC.
    let mut now_ms: i64 = 1_754_870_400_000;
    let mut line = String::with_capacity(512);
    let mut last_fill = String::new();
    for n in 0..shape.messages {
        now_ms += rng.below(shape.step_ms * 2 + 1) as i64;
        line.clear();
        let strategy = rng.below(shape.strategies);
        let roll = if shape.fills_only {
            999
        } else {
            rng.below(1000)
        };
        // Some fills arrive late, up to a minute.
        let ts_ms = if rng.below(20) == 0 {
            now_ms - rng.below(60_000) as i64
        } else {
            now_ms
        };
        let ts = rfc3339_ms(ts_ms);
        if roll < 2 && !last_fill.is_empty() {
            line.push_str(&last_fill);
        } else if roll < 22 {
            let severity = ["info", "warning", "critical"][rng.below(3) as usize];
            let scope = if rng.below(4) == 0 {
                r#"{"kind":"global"}"#.to_owned()
            } else {
                format!(r#"{{"kind":"strategy","strategy_id":"s{strategy}"}}"#)
            };
            let _ = write!(
                line,
                r#"{{"stream":"risk_event","event":{{"event_id":"n-{n}","source":"noctus","kind":"drawdown","severity":"{severity}","scope":{scope},"ts":"{ts}"}}}}"#
            );
        } else if roll < 42 {
            let action = if rng.below(3) == 0 { "pause" } else { "resume" };
            let scope = if rng.below(2) == 0 {
                r#"{"kind":"global"}"#.to_owned()
            } else {
                format!(r#"{{"kind":"strategy","strategy_id":"s{strategy}"}}"#)
            };
            let _ = write!(
                line,
                r#"{{"stream":"ops_command","event":{{"command_id":"ops-{n}","action":"{action}","scope":{scope},"operator":"oncall","reason":"load test","ts":"{ts}"}}}}"#
            );
        } else if roll < 52 {
            let _ = write!(
                line,
                r#"{{"stream":"strategy_release","event":{{"strategy_id":"s{strategy}","version":"v{n}","adopted_at":"{ts}"}}}}"#
            );
        } else {
            let breach = rng.unit() < shape.breach_share;
            let bps = if breach {
                5.5 + rng.unit() * 20.0
            } else {
                rng.unit() * 4.0 - 1.0
            };
            let expected = 1000.0 + (strategy % 100) as f64;
            let fill_price = expected * (1.0 + bps / 10_000.0);
            let pnl = match rng.below(4) {
                0 => format!(r#","realized_pnl":{:.2}"#, -(rng.unit() * 500.0)),
                1 => format!(r#","realized_pnl":{:.2}"#, rng.unit() * 500.0),
                _ => String::new(),
            };
            let _ = write!(
                line,
                r#"{{"stream":"exec_result","event":{{"fill_id":"f-{n}","order_id":"o-{n}","strategy_id":"s{strategy}","symbol":"SYM{}","side":"buy","qty":{},"expected_price":{expected:.2},"fill_price":{fill_price:.4}{pnl},"ts":"{ts}","env":"prod"}}}}"#,
                strategy % 50,
                1 + rng.below(500)
            );
            last_fill.clone_from(&line);
        }
        emit(&line);
    }
}

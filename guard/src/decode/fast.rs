//! A one-pass reader for the common shape of a fill: a flat JSON object of the known
//! keys, strings without escapes. It answers only when it is sure to give what serde
//! gives; anything else (an escape, an unknown key, a nested value, a repeated key, a
//! missing field, any error) returns `None`, and the caller decodes with serde, whose
//! answer and error text stay the reference. A property test holds the two together.

use crate::message::{Env, Fill, Side};
use crate::time::Timestamp;

/// The fill in `bytes`, when it has the common shape.
pub fn fill(bytes: &[u8]) -> Option<Fill> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut r = Reader { text, at: 0 };
    let mut fields = Fields::default();
    r.skip_ws();
    r.eat(b'{')?;
    r.skip_ws();
    if r.peek()? != b'}' {
        loop {
            let key = r.string()?;
            r.skip_ws();
            r.eat(b':')?;
            r.skip_ws();
            fields.read(key, &mut r)?;
            r.skip_ws();
            match r.next()? {
                b',' => r.skip_ws(),
                b'}' => break,
                _ => return None,
            }
        }
    } else {
        r.at += 1;
    }
    r.skip_ws();
    if r.at != text.len() {
        return None;
    }
    fields.finish()
}

/// The values read so far, each at most once.
#[derive(Default)]
struct Fields<'a> {
    seen: u16,
    fill_id: Option<&'a str>,
    order_id: Option<&'a str>,
    strategy_id: Option<&'a str>,
    strategy_version: Option<&'a str>,
    symbol: Option<&'a str>,
    side: Option<Side>,
    qty: Option<f64>,
    expected_price: Option<f64>,
    fill_price: Option<f64>,
    slippage_bps: Option<f64>,
    realized_pnl: Option<f64>,
    ts: Option<Timestamp>,
    env: Option<Env>,
}

impl<'a> Fields<'a> {
    /// Reads the value of `key`; `None` for an unknown or repeated key, or a value
    /// this reader does not take.
    fn read(&mut self, key: &str, r: &mut Reader<'a>) -> Option<()> {
        let bit = match key {
            "fill_id" => 0,
            "order_id" => 1,
            "strategy_id" => 2,
            "strategy_version" => 3,
            "symbol" => 4,
            "side" => 5,
            "qty" => 6,
            "expected_price" => 7,
            "fill_price" => 8,
            "slippage_bps" => 9,
            "realized_pnl" => 10,
            "ts" => 11,
            "env" => 12,
            _ => return None,
        };
        if self.seen & (1 << bit) != 0 {
            return None;
        }
        self.seen |= 1 << bit;
        // `null` is absent for the optional fields, as serde reads an `Option`.
        let optional = matches!(bit, 1 | 3 | 9 | 10 | 12);
        if optional && r.null() {
            return Some(());
        }
        match bit {
            0 => self.fill_id = Some(r.string()?),
            1 => self.order_id = Some(r.string()?),
            2 => self.strategy_id = Some(r.string()?),
            3 => self.strategy_version = Some(r.string()?),
            4 => self.symbol = Some(r.string()?),
            5 => {
                self.side = Some(match r.string()? {
                    "buy" => Side::Buy,
                    "sell" => Side::Sell,
                    _ => return None,
                })
            }
            6 => self.qty = Some(r.number()?),
            7 => self.expected_price = Some(r.number()?),
            8 => self.fill_price = Some(r.number()?),
            9 => self.slippage_bps = Some(r.number()?),
            10 => self.realized_pnl = Some(r.number()?),
            11 => self.ts = Some(Timestamp::from_text(r.string()?).ok()?),
            _ => {
                self.env = Some(match r.string()? {
                    "prod" => Env::Prod,
                    "stg" => Env::Stg,
                    "dev" => Env::Dev,
                    _ => return None,
                })
            }
        }
        Some(())
    }

    /// The fill, when every required field was given.
    fn finish(self) -> Option<Fill> {
        Some(Fill {
            fill_id: self.fill_id?.to_owned(),
            order_id: self.order_id.map(str::to_owned),
            strategy_id: self.strategy_id?.to_owned(),
            strategy_version: self.strategy_version.map(str::to_owned),
            symbol: self.symbol?.to_owned(),
            side: self.side?,
            qty: self.qty?,
            expected_price: self.expected_price?,
            fill_price: self.fill_price?,
            slippage_bps: self.slippage_bps,
            realized_pnl: self.realized_pnl,
            ts: self.ts?,
            env: self.env,
        })
    }
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// `null`, consumed when it is there.
    fn null(&mut self) -> bool {
        let found = self.text.as_bytes()[self.at..].starts_with(b"null");
        if found {
            self.at += 4;
        }
        found
    }

    /// A string without escapes or control characters (serde refuses the latter; the
    /// former it would unescape).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        loop {
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        // The whole text is UTF-8 and both ends are ASCII quotes: a char boundary.
        Some(&self.text[start..self.at - 1])
    }

    /// A JSON number, read by serde_json itself so its value is bit for bit what the
    /// serde path gives.
    fn number(&mut self) -> Option<f64> {
        let start = self.at;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
        ) {
            self.at += 1;
        }
        serde_json::from_str(&self.text[start..self.at]).ok()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::{Fill, Stream};

    const FILL: &str = r#"{"fill_id":"f-1","order_id":"o-1","strategy_id":"s1","strategy_version":"v2","symbol":"7203.T","side":"sell","qty":100,"expected_price":1000.0,"fill_price":999.25,"slippage_bps":7.5,"realized_pnl":-12.5,"ts":"2026-03-02T09:00:00.123Z","env":"stg"}"#;

    fn serde_fill(bytes: &[u8]) -> Option<Fill> {
        serde_json::from_slice(bytes).ok()
    }

    #[test]
    fn reads_the_common_shape_as_serde_does() {
        let fast = fill(FILL.as_bytes()).expect("the common shape");
        assert_eq!(Some(fast), serde_fill(FILL.as_bytes()));
        let spaced = " {\n \"fill_id\" : \"f\", \"strategy_id\":\"s\",\"symbol\":\"X\",\"side\":\"buy\",\"qty\":1e2,\"expected_price\":1,\"fill_price\":1.0E0,\"ts\":\"2026-03-02T09:00:00+09:00\",\"env\":null}\t";
        assert_eq!(fill(spaced.as_bytes()), serde_fill(spaced.as_bytes()));
        assert!(fill(spaced.as_bytes()).is_some());
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        for text in [
            r#"{"fill_id":"f\u0031","strategy_id":"s","symbol":"X","side":"buy","qty":1,"expected_price":1,"fill_price":1,"ts":"2026-03-02T09:00:00Z"}"#,
            r#"{"fill_id":"f","fill_id":"g","strategy_id":"s","symbol":"X","side":"buy","qty":1,"expected_price":1,"fill_price":1,"ts":"2026-03-02T09:00:00Z"}"#,
            r#"{"fill_id":"f","venue":"x","strategy_id":"s","symbol":"X","side":"buy","qty":1,"expected_price":1,"fill_price":1,"ts":"2026-03-02T09:00:00Z"}"#,
            r#"{"fill_id":"f","strategy_id":"s","symbol":"X","side":"buy","qty":"1","expected_price":1,"fill_price":1,"ts":"2026-03-02T09:00:00Z"}"#,
            r#"{"fill_id":"f","strategy_id":"s","symbol":"X","side":"buy","qty":01,"expected_price":1,"fill_price":1,"ts":"2026-03-02T09:00:00Z"}"#,
            r#"{"fill_id":"f","strategy_id":"s","symbol":"X","side":"buy","qty":1,"expected_price":1,"fill_price":1}"#,
            r#"{"fill_id":"f","strategy_id":"s","symbol":"X","side":"buy","qty":1,"expected_price":1,"fill_price":1,"ts":"2026-03-02T09:00:00Z"} x"#,
            r#"{"fill_id":null,"strategy_id":"s","symbol":"X","side":"buy","qty":1,"expected_price":1,"fill_price":1,"ts":"2026-03-02T09:00:00Z"}"#,
        ] {
            assert_eq!(fill(text.as_bytes()), None, "{text}");
        }
    }

    /// Byte-level edits of a fill: wherever the fast reader answers, serde gives the
    /// same fill.
    fn edited() -> impl Strategy<Value = Vec<u8>> {
        let base = FILL.as_bytes().to_vec();
        let len = base.len();
        proptest::collection::vec((0..len, any::<u8>(), 0..3u8), 1..4).prop_map(move |edits| {
            let mut bytes = base.clone();
            for (at, byte, kind) in edits {
                let at = at.min(bytes.len().saturating_sub(1));
                match kind {
                    0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            bytes
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn never_answers_differently_from_serde(bytes in edited()) {
            if let Some(fast) = fill(&bytes) {
                prop_assert_eq!(Some(fast), serde_fill(&bytes));
            }
        }

        /// The whole decoding of a replay line, error texts included, is what serde
        /// alone gives, whether the line takes the one-pass path or not.
        #[test]
        fn envelopes_decode_as_with_serde_alone(event in edited(), tail in "[ }x]{0,2}") {
            let mut line = br#"{"stream":"exec_result","event":"#.to_vec();
            line.extend_from_slice(&event);
            line.push(b'}');
            line.extend_from_slice(tail.as_bytes());
            prop_assert_eq!(
                super::super::decode_envelope(&line),
                super::super::decode_envelope_with_serde(&line)
            );
            prop_assert_eq!(
                super::super::decode(Stream::ExecResult, &event),
                super::super::decode_with_serde(Stream::ExecResult, &event)
            );
        }
    }
}

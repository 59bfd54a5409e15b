//! The one-pass reader against serde, which stays the reference.

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

/// The number `text` as the reader gives it, when it took every byte.
fn read_number(text: &str) -> Option<f64> {
    let mut r = Reader {
        bytes: text.as_bytes(),
        at: 0,
    };
    r.number().filter(|_| r.at == text.len())
}

#[test]
fn reads_numbers_as_serde_does() {
    for text in [
        "0",
        "-0",
        "-0.0",
        "100",
        "1000.0",
        "999.25",
        "-12.5",
        "0.1",
        "0.3",
        "1.005",
        "123456789012345",
        "0.000000000000001",
        "9007199254740993",
        "1e2",
        "1.0E0",
        "12345678901234567890",
        "0.1234567890123456789",
    ] {
        let serde: f64 = serde_json::from_str(text).unwrap();
        assert_eq!(
            read_number(text).map(f64::to_bits),
            Some(serde.to_bits()),
            "{text}"
        );
    }
    for text in ["01", "-", "1.", ".5", "-.5", "00.5", "1.2.3", "--1", "1e"] {
        let whole = read_number(text);
        assert!(
            whole.is_none() || serde_json::from_str::<f64>(text).is_ok(),
            "{text}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]
    #[test]
    fn numbers_read_as_serde_reads_them(
        text in "-?[0-9]{0,19}(\\.[0-9]{0,19})?([eE][+-]?[0-9]{1,3})?",
    ) {
        let serde = serde_json::from_str::<f64>(&text).ok().map(f64::to_bits);
        prop_assert_eq!(read_number(&text).map(f64::to_bits), serde);
    }

    /// Any bytes as the fill id, across the eight-byte steps: the reader gives what
    /// serde gives, and answers whenever the id is UTF-8 with nothing to unescape.
    #[test]
    fn ids_of_any_bytes_read_as_serde_reads_them(
        id in proptest::collection::vec(prop_oneof![0x80..=0xffu8, 0x20..0x7fu8, any::<u8>(), Just(b'"')], 0..40),
    ) {
        let mut line = br#"{"fill_id":""#.to_vec();
        line.extend_from_slice(&id);
        line.extend_from_slice(&FILL.as_bytes()[15..]);
        let fast = fill(&line);
        if fast.is_some() {
            prop_assert_eq!(&fast, &serde_fill(&line));
        }
        let plain = std::str::from_utf8(&id).is_ok_and(|id| !id.contains(['"', '\\']) && !id.contains(|c: char| c < ' '));
        prop_assert_eq!(fast.is_some(), plain);
    }

    #[test]
    fn never_answers_differently_from_serde(bytes in edited()) {
        if let Some(fast) = fill(&bytes) {
            prop_assert_eq!(Some(fast), serde_fill(&bytes));
        }
    }

    /// Decoded into a fill already used (any of the edited ones, its optional
    /// fields given or not): what serde gives, or the spent fill untouched.
    #[test]
    fn a_fill_read_into_a_spent_one_is_what_serde_gives(bytes in edited(), spent in edited()) {
        if let Some(mut into) = fill(&spent) {
            let before = into.clone();
            if fill_into(&bytes, &mut into) {
                prop_assert_eq!(Some(into), serde_fill(&bytes));
            } else {
                prop_assert_eq!(into, before);
                prop_assert_eq!(fill(&bytes), None);
            }
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
        let mut slot = fill(FILL.as_bytes()).map(crate::message::Input::Fill);
        let into = super::super::decode_into(Stream::ExecResult, &event, &mut slot);
        prop_assert_eq!(
            into.map(|()| slot.expect("decoded into the slot")),
            super::super::decode_with_serde(Stream::ExecResult, &event)
        );
    }
}

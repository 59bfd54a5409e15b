//! Decoding and validating input messages (CONTRACT §1 and §4).
//!
//! serde does the structural work (required fields, types, enums, RFC 3339 times,
//! no numbers as strings); [`validate`] adds what types cannot say (non-empty ids,
//! positive prices, finite numbers). Everything that fails is an [`DecodeError`] whose
//! text is the reason written to the dead-letter topic or the replay summary.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

mod admit;
mod fast;

pub use admit::{Admission, Refusal};

use crate::message::{Input, Scope, Stream};

/// Why a message is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape (missing field, wrong type, bad time).
    #[error("{stream}: {detail}")]
    Malformed {
        /// The stream the message was read as (or `envelope`).
        stream: &'static str,
        /// serde's account of the problem.
        detail: String,
    },
    /// Well-formed but a value breaks the contract.
    #[error("{stream}: field `{field}` {problem}")]
    Invalid {
        /// The stream.
        stream: &'static str,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A replay envelope names a stream the guard does not read.
    #[error("envelope: unknown input stream {0:?} (expected exec_result, risk_event, strategy_release, ops_command or guard_ack)")]
    UnknownStream(String),
    /// Larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

/// The largest input message accepted by default (1 MiB), live and in replay.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Decodes one message of `stream` from its JSON bytes and validates it. A fill of the
/// common shape is read in one pass (`decode::fast`); everything else by serde, whose
/// answers the one-pass reader is held to.
///
/// # Errors
/// [`DecodeError`] with the reason when the message is not valid.
pub fn decode(stream: Stream, bytes: &[u8]) -> Result<Input, DecodeError> {
    if stream == Stream::ExecResult {
        if let Some(fill) = fast::fill(bytes) {
            let input = Input::Fill(fill);
            validate(&input)?;
            return Ok(input);
        }
    }
    decode_with_serde(stream, bytes)
}

/// [`decode`] into `slot`, which holds the input applied before (or nothing): a fill
/// of the common shape is read into that fill in place, its strings keeping their
/// buffers, so a pipeline that keeps one slot neither allocates a fill's strings nor
/// moves the input (192 bytes) through return values. On an error the slot holds
/// what it held or a partly read fill: a spent input either way.
///
/// # Errors
/// As [`decode`].
pub fn decode_into(
    stream: Stream,
    bytes: &[u8],
    slot: &mut Option<Input>,
) -> Result<(), DecodeError> {
    let in_place = match slot {
        Some(Input::Fill(fill)) if stream == Stream::ExecResult => fast::fill_into(bytes, fill),
        _ => false,
    };
    match slot {
        Some(input) if in_place => validate(input),
        _ => {
            *slot = Some(decode(stream, bytes)?);
            Ok(())
        }
    }
}

/// [`decode`] by serde alone: the reference.
fn decode_with_serde(stream: Stream, bytes: &[u8]) -> Result<Input, DecodeError> {
    fn parse<'a, T: Deserialize<'a>>(stream: Stream, bytes: &'a [u8]) -> Result<T, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
            stream: stream.as_str(),
            detail: e.to_string(),
        })
    }
    let input = match stream {
        Stream::ExecResult => Input::Fill(parse(stream, bytes)?),
        Stream::RiskEvent => Input::RiskEvent(parse(stream, bytes)?),
        Stream::StrategyRelease => Input::Release(parse(stream, bytes)?),
        Stream::OpsCommand => Input::Ops(parse(stream, bytes)?),
        Stream::GuardAck => Input::Ack(parse(stream, bytes)?),
    };
    validate(&input)?;
    Ok(input)
}

/// Where a replay line's decoding got to, so an error can name the stream it was in.
#[derive(Clone, Debug, Default)]
enum Phase {
    #[default]
    Envelope,
    Event(Stream),
    UnknownStream(String),
}

/// Decodes `{"stream": ..., "event": {...}}` in one pass when `stream` comes first
/// (the event is parsed straight into its type); otherwise the event is kept as raw
/// JSON and decoded once the stream is known.
struct EnvelopeSeed<'p> {
    phase: &'p RefCell<Phase>,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Input;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Input, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Input;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an envelope {\"stream\": ..., \"event\": {...}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Input, A::Error> {
        let mut stream: Option<Stream> = None;
        let mut input: Option<Input> = None;
        let mut raw: Option<&'de RawValue> = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "stream" => {
                    if stream.is_some() {
                        return Err(de::Error::duplicate_field("stream"));
                    }
                    let name: Cow<'de, str> = map.next_value()?;
                    let Some(found) = Stream::from_name(&name) else {
                        *self.phase.borrow_mut() = Phase::UnknownStream(name.into_owned());
                        return Err(de::Error::custom("unknown stream"));
                    };
                    stream = Some(found);
                }
                "event" => {
                    if input.is_some() || raw.is_some() {
                        return Err(de::Error::duplicate_field("event"));
                    }
                    match stream {
                        Some(s) => {
                            *self.phase.borrow_mut() = Phase::Event(s);
                            input = Some(match s {
                                Stream::ExecResult => Input::Fill(map.next_value()?),
                                Stream::RiskEvent => Input::RiskEvent(map.next_value()?),
                                Stream::StrategyRelease => Input::Release(map.next_value()?),
                                Stream::OpsCommand => Input::Ops(map.next_value()?),
                                Stream::GuardAck => Input::Ack(map.next_value()?),
                            });
                            *self.phase.borrow_mut() = Phase::Envelope;
                        }
                        None => raw = Some(map.next_value()?),
                    }
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let stream = stream.ok_or_else(|| de::Error::missing_field("stream"))?;
        match (input, raw) {
            (Some(input), _) => Ok(input),
            (None, Some(raw)) => {
                *self.phase.borrow_mut() = Phase::Event(stream);
                let mut de = serde_json::Deserializer::from_str(raw.get());
                let input = match stream {
                    Stream::ExecResult => {
                        Input::Fill(Deserialize::deserialize(&mut de).map_err(de::Error::custom)?)
                    }
                    Stream::RiskEvent => Input::RiskEvent(
                        Deserialize::deserialize(&mut de).map_err(de::Error::custom)?,
                    ),
                    Stream::StrategyRelease => Input::Release(
                        Deserialize::deserialize(&mut de).map_err(de::Error::custom)?,
                    ),
                    Stream::OpsCommand => {
                        Input::Ops(Deserialize::deserialize(&mut de).map_err(de::Error::custom)?)
                    }
                    Stream::GuardAck => {
                        Input::Ack(Deserialize::deserialize(&mut de).map_err(de::Error::custom)?)
                    }
                };
                *self.phase.borrow_mut() = Phase::Envelope;
                Ok(input)
            }
            (None, None) => Err(de::Error::missing_field("event")),
        }
    }
}

/// Decodes one replay line `{"stream": "...", "event": {...}}` (CONTRACT §4).
///
/// # Errors
/// [`DecodeError`] when the envelope or the event is not valid.
pub fn decode_envelope(line: &[u8]) -> Result<Input, DecodeError> {
    // The form `guard record` writes, with a fill of the common shape: read in one pass.
    if let Some(fill) = line
        .strip_prefix(FILL_ENVELOPE.as_bytes())
        .and_then(|rest| rest.strip_suffix(b"}"))
        .and_then(fast::fill)
    {
        let input = Input::Fill(fill);
        validate(&input)?;
        return Ok(input);
    }
    decode_envelope_with_serde(line)
}

/// How a fill's envelope starts in the form `guard record` writes.
const FILL_ENVELOPE: &str = r#"{"stream":"exec_result","event":"#;

fn decode_envelope_with_serde(line: &[u8]) -> Result<Input, DecodeError> {
    let phase = RefCell::new(Phase::Envelope);
    let mut de = serde_json::Deserializer::from_slice(line);
    let decoded = EnvelopeSeed { phase: &phase }
        .deserialize(&mut de)
        .and_then(|input| de.end().map(|()| input));
    match decoded {
        Ok(input) => {
            validate(&input)?;
            Ok(input)
        }
        Err(e) => Err(match phase.into_inner() {
            Phase::UnknownStream(name) => DecodeError::UnknownStream(name),
            Phase::Event(stream) => DecodeError::Malformed {
                stream: stream.as_str(),
                detail: e.to_string(),
            },
            Phase::Envelope => DecodeError::Malformed {
                stream: "envelope",
                detail: e.to_string(),
            },
        }),
    }
}

/// Checks what serde's types cannot: non-empty ids, positive prices.
///
/// # Errors
/// [`DecodeError::Invalid`] naming the first field that breaks the contract.
pub fn validate(input: &Input) -> Result<(), DecodeError> {
    const EMPTY: &str = "must not be empty";
    const POSITIVE: &str = "must be a number > 0";
    let bad_scope =
        |scope: &Scope| matches!(scope, Scope::Strategy { strategy_id } if strategy_id.is_empty());
    // (field, broken, what is wrong), in the order the fields are reported. Not
    // greater than 0 also refuses NaN, should one ever get past the parser.
    let not_positive = |x: f64| x.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater);
    let failed = match input {
        Input::Fill(f) => first_broken(&[
            ("fill_id", f.fill_id.is_empty(), EMPTY),
            ("strategy_id", f.strategy_id.is_empty(), EMPTY),
            ("symbol", f.symbol.is_empty(), EMPTY),
            ("qty", not_positive(f.qty), POSITIVE),
            ("expected_price", not_positive(f.expected_price), POSITIVE),
            ("fill_price", not_positive(f.fill_price), POSITIVE),
        ]),
        Input::RiskEvent(e) => first_broken(&[
            ("event_id", e.event_id.is_empty(), EMPTY),
            ("scope.strategy_id", bad_scope(&e.scope), EMPTY),
        ]),
        Input::Release(r) => first_broken(&[("strategy_id", r.strategy_id.is_empty(), EMPTY)]),
        Input::Ops(o) => first_broken(&[
            ("command_id", o.command_id.is_empty(), EMPTY),
            ("operator", o.operator.is_empty(), EMPTY),
            ("scope.strategy_id", bad_scope(&o.scope), EMPTY),
        ]),
        Input::Ack(a) => first_broken(&[
            ("command_id", a.command_id.is_empty(), EMPTY),
            ("gateway", a.gateway.is_empty(), EMPTY),
        ]),
    };
    match failed {
        Some((field, problem)) => Err(DecodeError::Invalid {
            stream: input.stream().as_str(),
            field,
            problem,
        }),
        None => Ok(()),
    }
}

/// The first check that is broken: its field and what is wrong.
fn first_broken(
    checks: &[(&'static str, bool, &'static str)],
) -> Option<(&'static str, &'static str)> {
    checks
        .iter()
        .find(|(_, broken, _)| *broken)
        .map(|(field, _, problem)| (*field, *problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILL: &str = r#"{"fill_id":"f1","strategy_id":"alpha","symbol":"7203.T","side":"buy","qty":100,"expected_price":100.0,"fill_price":100.07,"ts":"2025-08-12T01:02:03.456Z"}"#;

    #[test]
    fn a_valid_fill_decodes_and_computes_slippage() {
        let Input::Fill(fill) = decode(Stream::ExecResult, FILL.as_bytes()).unwrap() else {
            panic!("not a fill")
        };
        assert!((fill.slippage_bps() - 7.0).abs() < 1e-9);
    }

    #[test]
    fn unknown_fields_and_nulls_are_accepted() {
        let line = FILL.replace("\"qty\"", "\"venue\":\"X\",\"realized_pnl\":null,\"qty\"");
        assert!(decode(Stream::ExecResult, line.as_bytes()).is_ok());
    }

    #[test]
    fn numbers_as_strings_and_missing_fields_are_invalid() {
        let as_string = FILL.replace("\"qty\":100", "\"qty\":\"100\"");
        assert!(decode(Stream::ExecResult, as_string.as_bytes()).is_err());
        let missing = FILL.replace("\"symbol\":\"7203.T\",", "");
        let err = decode(Stream::ExecResult, missing.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("symbol"), "{err}");
    }

    #[test]
    fn non_positive_prices_name_the_field() {
        let zero = FILL.replace("\"fill_price\":100.07", "\"fill_price\":0");
        let err = decode(Stream::ExecResult, zero.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exec_result: field `fill_price` must be a number > 0"
        );
    }

    #[test]
    fn envelope_fields_in_any_order_decode_the_same() {
        let first = format!(r#"{{"stream":"exec_result","event":{FILL}}}"#);
        let last = format!(r#"{{"event":{FILL},"extra":[1,2],"stream":"exec_result"}}"#);
        assert_eq!(
            decode_envelope(first.as_bytes()).unwrap(),
            decode_envelope(last.as_bytes()).unwrap()
        );
        let bad = FILL.replace("\"qty\":100", "\"qty\":\"100\"");
        for line in [
            format!(r#"{{"stream":"exec_result","event":{bad}}}"#),
            format!(r#"{{"event":{bad},"stream":"exec_result"}}"#),
        ] {
            let err = decode_envelope(line.as_bytes()).unwrap_err();
            assert!(
                err.to_string().starts_with("exec_result: invalid type"),
                "{err}"
            );
        }
    }

    #[test]
    fn envelope_with_unknown_stream_is_invalid() {
        let err = decode_envelope(br#"{"stream":"fills","event":{}}"#).unwrap_err();
        assert!(matches!(err, DecodeError::UnknownStream(_)));
    }
}

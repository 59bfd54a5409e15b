//! Admission: what every input passes before the engine sees it, the same on every
//! path (the live guard and its scale-out workers, `guard replay`, `--sweep`, the
//! demo, the tests' replay oracle): the size limit, decoding and validation, and — on
//! the wall clock only — the future-stamp limit.

use std::fmt;

use crate::message::{Input, Stream};
use crate::time::{human_span, Span, Timestamp};

use super::{decode_envelope, decode_into, DecodeError, MAX_MESSAGE_BYTES};

/// The limits an input is admitted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    /// Largest message (live: its bytes; replay: its event's JSON text as recorded).
    pub max_message_bytes: usize,
    /// On the wall clock: the largest lead of an event time over it.
    pub max_future: Span,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_future: Span::from_secs(300),
        }
    }
}

/// Why an input was not admitted: the reason a dead letter or a replay summary shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// Too large, not JSON, or not valid.
    Invalid(DecodeError),
    /// Stamped too far ahead of the wall clock.
    Future {
        /// Its event time.
        time: Timestamp,
        /// How far ahead of the clock.
        ahead: Span,
        /// The limit.
        limit: Span,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Invalid(e) => e.fmt(f),
            Refusal::Future { time, ahead, limit } => write!(
                f,
                "event time {time} is {} ahead of the guard's clock (limit {})",
                human_span(*ahead),
                human_span(*limit)
            ),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<DecodeError> for Refusal {
    fn from(e: DecodeError) -> Self {
        Refusal::Invalid(e)
    }
}

impl Admission {
    /// A message of `stream` as an input partition gives it. `wall_clock`: the time
    /// now when the guard runs on the wall clock, for the future-stamp limit (a time
    /// far ahead would move the event-time horizon and make the guard forget every
    /// streak and id at once); `None` on event time, as replay.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn payload(
        &self,
        stream: Stream,
        bytes: &[u8],
        wall_clock: Option<Timestamp>,
    ) -> Result<Input, Refusal> {
        let mut slot = None;
        self.payload_into(stream, bytes, wall_clock, &mut slot)?;
        Ok(slot.expect("an admitted input is in the slot"))
    }

    /// [`Admission::payload`] into `slot`, which holds the input applied before
    /// ([`decode_into`]).
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn payload_into(
        &self,
        stream: Stream,
        bytes: &[u8],
        wall_clock: Option<Timestamp>,
        slot: &mut Option<Input>,
    ) -> Result<(), Refusal> {
        self.check_size(bytes.len())?;
        decode_into(stream, bytes, slot)?;
        let Some(input) = slot.as_ref() else {
            return Ok(());
        };
        if let Some(now) = wall_clock {
            let ahead = input.event_time().since(now);
            if ahead > self.max_future {
                return Err(Refusal::Future {
                    time: input.event_time(),
                    ahead,
                    limit: self.max_future,
                });
            }
        }
        Ok(())
    }

    /// A replay line (CONTRACT §4). The event's JSON text is measured only when the
    /// line is longer than the limit, so the check costs nothing on normal lines.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn line(&self, line: &[u8]) -> Result<Input, Refusal> {
        #[derive(serde::Deserialize)]
        struct Event<'a> {
            #[serde(borrow)]
            event: &'a serde_json::value::RawValue,
        }
        if line.len() > self.max_message_bytes {
            if let Ok(envelope) = serde_json::from_slice::<Event<'_>>(line) {
                self.check_size(envelope.event.get().len())?;
            }
        }
        Ok(decode_envelope(line)?)
    }

    fn check_size(&self, size: usize) -> Result<(), DecodeError> {
        if size > self.max_message_bytes {
            return Err(DecodeError::TooLarge {
                size,
                limit: self.max_message_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILL: &str = r#"{"fill_id":"f1","strategy_id":"a","symbol":"X","side":"buy","qty":1,"expected_price":100,"fill_price":100,"ts":"2026-01-01T00:00:00Z"}"#;

    #[test]
    fn a_time_ahead_of_the_wall_clock_is_refused_only_past_the_limit() {
        let admission = Admission::default();
        let ts = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let at = |secs_before: i64| Some(ts.plus(Span::from_secs(-secs_before)));
        assert!(admission
            .payload(Stream::ExecResult, FILL.as_bytes(), at(300))
            .is_ok());
        let refused = admission
            .payload(Stream::ExecResult, FILL.as_bytes(), at(301))
            .unwrap_err();
        assert!(matches!(refused, Refusal::Future { .. }), "{refused}");
        assert!(refused.to_string().contains("ahead of the guard's clock"));
        // On event time there is no such limit.
        assert!(admission
            .payload(Stream::ExecResult, FILL.as_bytes(), None)
            .is_ok());
    }

    #[test]
    fn the_size_limit_is_the_same_for_a_payload_and_a_replay_event() {
        let admission = Admission {
            max_message_bytes: FILL.len(),
            ..Admission::default()
        };
        let line = format!(r#"{{"stream":"exec_result","event":{FILL}}}"#);
        assert!(admission
            .payload(Stream::ExecResult, FILL.as_bytes(), None)
            .is_ok());
        assert!(admission.line(line.as_bytes()).is_ok());
        let padded = FILL.replace('}', " }");
        let line = format!(r#"{{"stream":"exec_result","event":{padded}}}"#);
        for refused in [
            admission
                .payload(Stream::ExecResult, padded.as_bytes(), None)
                .unwrap_err(),
            admission.line(line.as_bytes()).unwrap_err(),
        ] {
            assert!(
                refused.to_string().contains("exceeds the limit"),
                "{refused}"
            );
        }
    }
}

//! Every decoder on arbitrary bytes: never a panic, and whatever decodes is valid and
//! goes through the engine without a panic.
#![no_main]

use guard::decode::{decode, decode_envelope};
use guard::engine::{Engine, EngineOptions};
use guard::message::Stream;
use guard::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(Policy::default(), EngineOptions::default());
    if let Ok(input) = decode_envelope(data) {
        let _ = engine.apply(&input);
    }
    for stream in Stream::ALL {
        if let Ok(input) = decode(stream, data) {
            let _ = engine.apply(&input);
            let _ = engine.apply(&input);
        }
    }
});

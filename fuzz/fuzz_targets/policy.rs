//! The policy reader on arbitrary text: never a panic; a policy it accepts has a
//! version and drives an engine.
#![no_main]

use guard::engine::{Engine, EngineOptions};
use guard::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = Policy::from_toml(text) {
        let _ = policy.version();
        let mut engine = Engine::new(policy, EngineOptions::default());
        let _ = engine.tick(guard::time::Timestamp::from_millis(1_754_870_400_000));
    }
});

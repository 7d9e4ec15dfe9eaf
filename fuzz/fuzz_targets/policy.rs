//! The policy parser: a policy or every problem with its position, never a panic.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_core::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(problems) = Policy::parse(text) {
            assert!(!problems.0.is_empty());
        }
    }
});

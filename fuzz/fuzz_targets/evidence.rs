//! The evidence package reader: any bytes give a report or an error, never a panic.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_ledger::{verify_evidence, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = verify_evidence(data, &VerifyOptions::default());
});

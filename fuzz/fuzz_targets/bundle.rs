//! The bundle reader: any bytes give a report or an error, never a panic.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_ledger::{verify_bundle, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = verify_bundle(data, &VerifyOptions::default());
});

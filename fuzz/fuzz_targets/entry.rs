//! The signed-entry decoder (canonical JSON of an event, key and signature).
#![no_main]
#![forbid(unsafe_code)]

use breakglass_ledger::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data) {
        // A decoded entry re-encodes to exactly its bytes.
        assert_eq!(entry.bytes(), data);
        let _ = entry.verify_signature();
    }
});

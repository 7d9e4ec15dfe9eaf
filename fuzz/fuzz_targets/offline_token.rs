//! The offline approval token reader.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_core::offline::OfflineApproval;
use breakglass_core::PublicKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((approval, sig)) = OfflineApproval::decode(text) {
            let _ = approval.verify(&sig, &PublicKey([7; 32]));
        }
    }
});

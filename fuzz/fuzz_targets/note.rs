//! The C2SP signed-note / checkpoint reader, against a fixed log key, and vkey parsing.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_ledger::{NoteSigner, NoteVerifier};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let signer = NoteSigner::new("fuzz.example/log", SigningKey::from_bytes(&[7; 32]))
        .expect("a valid name");
    let _ = signer.verifier().verify_checkpoint(text);
    let _ = NoteVerifier::from_vkey(text);
});

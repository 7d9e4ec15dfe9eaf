//! The C2SP signed-note / checkpoint reader, against a fixed log key; vkey parsing; and the
//! reader of witnesses' cosignatures (a checkpoint body and a cosignature line, as a team's
//! database stores them), against a fixed witness key.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_ledger::{Checkpoint, Cosigner, NoteSigner, NoteVerifier};
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
    // A stored cosignature: the checkpoint body, then the line after the last newline.
    let witness = Cosigner::new("fuzz.example/log/witness/w", SigningKey::from_bytes(&[8; 32]))
        .expect("a valid name")
        .verifier();
    let (body, line) = text.rsplit_once('\n').unwrap_or((text, ""));
    let _ = witness.claims(line);
    if let Ok(cp) = Checkpoint::from_body(&format!("{body}\n")) {
        let _ = witness.verify(&cp, line);
    }
});

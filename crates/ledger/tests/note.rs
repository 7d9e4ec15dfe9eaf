//! C2SP signed-note checkpoints: round trips, interoperability with Go's
//! `golang.org/x/mod/sumdb/note`, and rejection of every malformed or altered
//! note.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use breakglass_ledger::{leaf_hash, Checkpoint, NoteError, NoteSigner, NoteVerifier};
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};

const ORIGIN: &str = "breakglass.example/log";

fn signer(seed: u8) -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).expect("valid key name")
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: ORIGIN.to_owned(),
        size: 42,
        root: leaf_hash(b"root"),
        extensions: vec!["Timestamp: 1700000000".to_owned()],
    }
}

fn signed() -> String {
    signer(1)
        .sign_checkpoint(&checkpoint())
        .expect("valid checkpoint")
}

#[test]
fn round_trip() {
    let note = signed();
    let cp = signer(1)
        .verifier()
        .verify_checkpoint(&note)
        .expect("own note verifies");
    assert_eq!(cp, checkpoint());
    assert!(note.starts_with(&checkpoint().to_body()));
    assert!(
        note.contains("\n\n\u{2014} breakglass.example/log "),
        "signature block: blank line, em dash, space, key name: {note}"
    );

    let no_ext = Checkpoint {
        extensions: vec![],
        size: 0,
        ..checkpoint()
    };
    let note = signer(1)
        .sign_checkpoint(&no_ext)
        .expect("valid checkpoint");
    assert_eq!(
        signer(1).verifier().verify_checkpoint(&note),
        Ok(no_ext),
        "size 0 and no extensions round trip"
    );
}

#[test]
fn body_format_is_exact() {
    let cp = Checkpoint {
        origin: "o".into(),
        size: 7,
        root: [0u8; 32],
        extensions: vec![],
    };
    assert_eq!(
        cp.to_body(),
        "o\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    );
    assert_eq!(Checkpoint::from_body(&cp.to_body()), Ok(cp));
}

#[test]
fn key_id_is_sha256_of_name_newline_alg_key() {
    let s = signer(9);
    let v = s.verifier();
    let mut h = Sha256::new();
    h.update(ORIGIN.as_bytes());
    h.update([0x0A, 0x01]);
    h.update(v.verifying_key().as_bytes());
    let want: [u8; 4] = h.finalize()[..4].try_into().expect("4 bytes");
    assert_eq!(v.key_id(), want);
    assert_eq!(
        v.vkey(),
        format!(
            "{ORIGIN}+{}+{}",
            hex::encode(want),
            STANDARD.encode([&[0x01][..], v.verifying_key().as_bytes()].concat())
        )
    );
    assert_eq!(NoteVerifier::from_vkey(&v.vkey()), Ok(v));
}

/// Known answer from golang.org/x/mod/sumdb/note's documentation: the same
/// seed must give the same verifier key and, Ed25519 being deterministic, the
/// same signature line, so Go verifiers and witnesses accept our notes.
#[test]
fn matches_go_sumdb_note_vector() {
    let skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"; // PRIVATE+KEY+PeterNeumann+c74f20a3+...
    let seed = STANDARD.decode(skey).expect("base64");
    assert_eq!(seed[0], 0x01, "Ed25519 algorithm byte");
    let key = SigningKey::from_bytes(&seed[1..].try_into().expect("32-byte seed"));
    let signer = NoteSigner::new("PeterNeumann", key.clone()).expect("valid name");
    let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    assert_eq!(signer.verifier().vkey(), vkey);
    assert_eq!(hex::encode(signer.verifier().key_id()), "c74f20a3");
    assert_eq!(NoteVerifier::from_vkey(vkey), Ok(signer.verifier()));

    let text = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n";
    let blob = [
        &signer.verifier().key_id()[..],
        &key.sign(text.as_bytes()).to_bytes()[..],
    ]
    .concat();
    assert_eq!(
        STANDARD.encode(blob),
        "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
    );
}

#[test]
fn every_single_byte_change_is_rejected() {
    let note = signed();
    let verifier = signer(1).verifier();
    let original = verifier
        .verify_checkpoint(&note)
        .expect("original verifies");
    let bytes = note.as_bytes();
    let mut checked = 0;
    for pos in 0..bytes.len() {
        for replacement in [bytes[pos] ^ 0x01, bytes[pos] ^ 0x20, b'A', b'\n'] {
            if replacement == bytes[pos] {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[pos] = replacement;
            // Changes that break UTF-8 cannot even be presented as a note.
            let Ok(changed) = String::from_utf8(changed) else {
                continue;
            };
            let result = verifier.verify_checkpoint(&changed);
            assert!(
                result.is_err(),
                "changing byte {pos} to {replacement:#04x} must be rejected, got {result:?} (original {original:?})"
            );
            checked += 1;
        }
    }
    assert!(checked > bytes.len() * 2, "most alterations were presented");
    // Deleting or inserting a byte must not be accepted either.
    for pos in 0..bytes.len() {
        let mut shorter = bytes.to_vec();
        shorter.remove(pos);
        if let Ok(s) = String::from_utf8(shorter) {
            assert!(
                verifier.verify_checkpoint(&s).is_err(),
                "deleting byte {pos}"
            );
        }
    }
}

#[test]
fn same_name_other_key_is_rejected() {
    let forged = signer(2).sign_checkpoint(&checkpoint()).expect("valid");
    let err = signer(1).verifier().verify_checkpoint(&forged);
    assert!(
        matches!(err, Err(NoteError::NoSignatureFromKey { .. })),
        "a note from another key with our log's name must not verify: {err:?}"
    );
}

#[test]
fn right_key_id_with_bad_signature_is_an_error() {
    let note = signed();
    let (body, sigs) = note.split_once("\n\n").expect("signature block");
    let line = sigs.trim_end_matches('\n');
    let (prefix, b64) = line.rsplit_once(' ').expect("space");
    let mut blob = STANDARD.decode(b64).expect("base64");
    blob[10] ^= 1;
    // Our genuine signature after a corrupted one claiming the same key.
    let tampered = format!("{body}\n\n{prefix} {}\n{sigs}", STANDARD.encode(&blob));
    assert!(matches!(
        signer(1).verifier().verify_checkpoint(&tampered),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn unknown_signature_lines_are_ignored() {
    let note = signed();
    let (body, sigs) = note.split_once("\n\n").expect("signature block");
    let witness = format!(
        "\u{2014} witness.example/w1 {}\n",
        STANDARD.encode([7u8; 4 + 64])
    );
    let other_log = signer(3)
        .sign_checkpoint(&checkpoint())
        .expect("valid")
        .split_once("\n\n")
        .expect("block")
        .1
        .to_owned();
    for note in [
        format!("{body}\n\n{witness}{sigs}"),
        format!("{body}\n\n{sigs}{witness}"),
        format!("{body}\n\n{other_log}{sigs}"),
    ] {
        assert_eq!(
            signer(1).verifier().verify_checkpoint(&note),
            Ok(checkpoint()),
            "extra signatures from other keys must not matter: {note}"
        );
    }
}

#[test]
fn too_many_signatures_are_rejected() {
    let note = signed();
    let (body, sigs) = note.split_once("\n\n").expect("signature block");
    let filler = format!("\u{2014} w {}\n", STANDARD.encode([7u8; 68])).repeat(100);
    assert!(matches!(
        signer(1)
            .verifier()
            .verify_checkpoint(&format!("{body}\n\n{filler}{sigs}")),
        Err(NoteError::TooManySignatures { max: 100 })
    ));
    let fine = format!("\u{2014} w {}\n", STANDARD.encode([7u8; 68])).repeat(99);
    assert!(signer(1)
        .verifier()
        .verify_checkpoint(&format!("{body}\n\n{fine}{sigs}"))
        .is_ok());
}

/// Signs an arbitrary body with the test key, bypassing `Checkpoint`, so that
/// malformed bodies are rejected by parsing rather than by the signature.
fn sign_raw(body: &str) -> String {
    let key = SigningKey::from_bytes(&[1; 32]);
    let id = signer(1).verifier().key_id();
    let blob = [&id[..], &key.sign(body.as_bytes()).to_bytes()[..]].concat();
    format!("{body}\n\u{2014} {ORIGIN} {}\n", STANDARD.encode(blob))
}

#[test]
fn malformed_notes_are_rejected() {
    let v = signer(1).verifier();
    let good = signed();
    let root = STANDARD.encode(leaf_hash(b"root"));
    assert!(v
        .verify_checkpoint(&sign_raw(&checkpoint().to_body()))
        .is_ok());

    let cases: Vec<(&str, String)> = vec![
        ("missing blank line", good.replacen("\n\n", "\n", 1)),
        ("no signatures", checkpoint().to_body() + "\n"),
        ("no final newline", good.trim_end_matches('\n').to_owned()),
        ("CRLF", good.replace('\n', "\r\n")),
        ("tab", good.replacen("Timestamp: ", "Timestamp:\t", 1)),
        ("hyphen for em dash", good.replace('\u{2014}', "-")),
        ("two spaces", good.replace("\u{2014} ", "\u{2014}  ")),
        ("unpadded base64", {
            let (head, tail) = good.trim_end_matches('\n').rsplit_once(' ').expect("sig");
            format!("{head} {}\n", tail.trim_end_matches('='))
        }),
        ("bad base64", good.replace('=', "!")),
        ("blank line in signatures", good.clone() + "\n"),
        ("empty", String::new()),
        // Bodies signed correctly but not canonical checkpoints.
        (
            "size with leading zeros",
            sign_raw(&format!("{ORIGIN}\n007\n{root}\n")),
        ),
        (
            "size with plus",
            sign_raw(&format!("{ORIGIN}\n+7\n{root}\n")),
        ),
        (
            "negative size",
            sign_raw(&format!("{ORIGIN}\n-7\n{root}\n")),
        ),
        ("hex size", sign_raw(&format!("{ORIGIN}\n0x7\n{root}\n"))),
        (
            "size overflow",
            sign_raw(&format!("{ORIGIN}\n18446744073709551616\n{root}\n")),
        ),
        (
            "short root",
            sign_raw(&format!("{ORIGIN}\n7\n{}\n", STANDARD.encode([1u8; 31]))),
        ),
        (
            "long root",
            sign_raw(&format!("{ORIGIN}\n7\n{}\n", STANDARD.encode([1u8; 33]))),
        ),
        (
            "root not canonical",
            sign_raw(&format!("{ORIGIN}\n7\n{}\n", root.replace('=', ""))),
        ),
        ("missing root", sign_raw(&format!("{ORIGIN}\n7\n"))),
        (
            "empty extension",
            sign_raw(&format!("{ORIGIN}\n7\n{root}\n\nx\n")),
        ),
        (
            "origin with space",
            sign_raw(&format!("{ORIGIN} \n7\n{root}\n")),
        ),
        (
            "other origin",
            sign_raw(&format!("other.example/log\n7\n{root}\n")),
        ),
    ];
    for (what, note) in cases {
        let result = v.verify_checkpoint(&note);
        assert!(result.is_err(), "{what}: must be rejected, got {result:?}");
    }
}

#[test]
fn rejections_name_the_cause() {
    let v = signer(1).verifier();
    let root = STANDARD.encode(leaf_hash(b"root"));
    assert!(matches!(
        v.verify_checkpoint(&sign_raw(&format!("{ORIGIN}\n007\n{root}\n"))),
        Err(NoteError::InvalidSize { text }) if text == "007"
    ));
    assert!(matches!(
        v.verify_checkpoint(&sign_raw(&format!(
            "{ORIGIN}\n7\n{}\n",
            STANDARD.encode([1u8; 31])
        ))),
        Err(NoteError::RootLength { len: 31 })
    ));
    assert!(matches!(
        v.verify_checkpoint(&signed().replace('\n', "\r\n")),
        Err(NoteError::ForbiddenCharacter {
            character: '\r',
            ..
        })
    ));
    assert!(matches!(
        v.verify_checkpoint(&sign_raw(&format!("other.example/log\n7\n{root}\n"))),
        Err(NoteError::OriginMismatch { .. })
    ));
}

#[test]
fn malformed_vkeys_are_rejected() {
    let vkey = signer(1).verifier().vkey();
    let (name, rest) = vkey.split_once('+').expect("name");
    let (id, key) = rest.split_once('+').expect("id");
    let cases = [
        format!("{name}+{}+{key}", id.to_uppercase()),
        format!("{name}+{id}0+{key}"),
        format!("{name}+{id}+{key}="),
        format!("{name}+{id}+{}", &key[..key.len() - 1]),
        format!("{name}+{id}"),
        format!("{name}+{id}+{key}+extra"),
        format!("other+{id}+{key}"),
        format!(
            "{name}+{id}+{}",
            STANDARD.encode([&[0x02][..], &[1u8; 32]].concat())
        ),
        format!("{name}+{id}+{}", STANDARD.encode([0x01u8; 32])),
        format!("+{id}+{key}"),
    ];
    for bad in cases {
        assert!(
            NoteVerifier::from_vkey(&bad).is_err(),
            "{bad} must be rejected"
        );
    }
}

#[test]
fn invalid_names_and_checkpoints_are_not_signed() {
    for name in ["", "has space", "a+b", "tab\there"] {
        assert!(
            NoteSigner::new(name, SigningKey::from_bytes(&[1; 32])).is_err(),
            "{name:?} is not a valid key name"
        );
    }
    let s = signer(1);
    let bad = [
        Checkpoint {
            origin: format!("{ORIGIN}\n7"),
            ..checkpoint()
        },
        Checkpoint {
            extensions: vec![String::new()],
            ..checkpoint()
        },
        Checkpoint {
            extensions: vec!["a\nb".into()],
            ..checkpoint()
        },
        Checkpoint {
            origin: "other.example/log".into(),
            ..checkpoint()
        },
    ];
    for cp in bad {
        assert!(s.sign_checkpoint(&cp).is_err(), "{cp:?} must not be signed");
    }
}

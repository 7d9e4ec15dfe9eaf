//! The desktop app's deep-link reader (`breakglass://request/ID`): whatever a link holds, it
//! yields a well-formed request id that round-trips, or a refusal.
#![no_main]
#![forbid(unsafe_code)]

use breakglass_core::{RequestId, REQUEST_LINK_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = RequestId::from_link(text) {
            let canonical = format!("{REQUEST_LINK_PREFIX}{id}");
            assert!(text == canonical || text == format!("{canonical}/"));
            assert_eq!(RequestId::from_link(&canonical), Ok(id));
        }
    }
});

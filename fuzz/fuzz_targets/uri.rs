//! The URI rules shared by `htu` and routing: RFC 3986 §6.2.2 normalisation of a proof's `htu`
//! and of a request path. Properties: normalising twice changes nothing, and a normalised
//! path never carries a dot segment.

#![no_main]

use dpop_gateway::dpop::htu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = htu::normalize(text) {
        assert_eq!(
            htu::normalize(&n).as_deref(),
            Ok(n.as_str()),
            "htu: {text:?}"
        );
    }
    for keep in [false, true] {
        if let Ok(p) = dpop_gateway::fuzzing::canonical_path(text, keep) {
            assert_eq!(
                dpop_gateway::fuzzing::canonical_path(&p, keep).as_deref(),
                Ok(p.as_str()),
                "path: {text:?}"
            );
            assert!(
                !p.split('/').any(|s| s == "." || s == ".."),
                "dot segment survived: {text:?} -> {p:?}"
            );
        }
    }
});

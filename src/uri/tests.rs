//! Unit tests of `uri`: the canonical request path.

use super::*;
use crate::dpop::htu;

#[test]
fn the_fast_path_passes_only_what_the_full_check_passes() {
    // Paths built from the characters that matter, by a fixed xorshift sequence.
    const ALPHABET: &[&str] = &[
        "/", "a", "B", ".", "..", "%", "%2e", "%2F", "%41", ";", "\\", "~", "-", "_", ":", "@",
        "!", "$", "'", "(", "*", "+", ",", "=", "&", " ", "\"", "é", "%zz", "/.;",
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut fast = 0;
    for _ in 0..200_000 {
        let mut path = String::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + (x % 9) as usize;
        for k in 0..len {
            let r = (x >> (k * 6)) as usize;
            path.push_str(ALPHABET[r % ALPHABET.len()]);
        }
        for slashes in [EncodedSlashes::Reject, EncodedSlashes::Keep] {
            if is_plainly_canonical(&path) {
                fast += 1;
                assert_eq!(
                    canonical_path_fully(&path, slashes),
                    Ok(Cow::Borrowed(path.as_str())),
                    "{path:?}"
                );
            }
            let full = canonical_path_fully(&path, slashes);
            assert_eq!(canonical_path(&path, slashes), full, "{path:?}");
            // Normalising twice changes nothing, and the result is what htu makes of it.
            if let Ok(normal) = full {
                assert_eq!(
                    canonical_path(&normal, slashes).as_deref(),
                    Ok(normal.as_ref()),
                    "{path:?}"
                );
                let url = |p: &str| htu::normalize(&format!("http://h{p}"));
                assert_eq!(url(&normal), url(&path), "{path:?}");
            }
        }
    }
    assert!(fast > 1000, "the fast path was taken {fast} times");
}

#[test]
fn equivalent_paths_are_normalised() {
    for slashes in [EncodedSlashes::Reject, EncodedSlashes::Keep] {
        for (path, normal) in [
            ("/", "/"),
            ("/api/x", "/api/x"),
            ("/a%20b", "/a%20b"),
            ("/a%2Ab", "/a%2Ab"),
            ("/a%2ab", "/a%2Ab"),
            ("/%61pi/x", "/api/x"),
            ("/%7Euser", "/~user"),
            ("/%41%5a%30%2D%2e%5F%7e", "/AZ0-._~"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/x.y/..z/.a/a..", "/x.y/..z/.a/a.."),
            ("*", "*"),
        ] {
            assert_eq!(
                canonical_path(path, slashes).as_deref(),
                Ok(normal),
                "{slashes:?}: {path}"
            );
        }
    }
}

#[test]
fn paths_a_server_could_read_otherwise_are_refused() {
    for slashes in [EncodedSlashes::Reject, EncodedSlashes::Keep] {
        for bad in [
            "/healthz/../resource",
            "/open/%2e%2e/admin",
            "/open/%2E./admin",
            "/healthz/..;/admin",
            "/healthz/%2e%2e;/admin",
            "/healthz/..%3b/admin",
            "/.;/admin",
            "//api/x",
            "/a//b",
            "/./api/x",
            "/a/.",
            "/a/%2e",
            "/a%zz",
            "/a%2",
            "/a\\b",
            "/a/x%2F..%2Fadmin",
            "/a%5C..%5Cadmin",
            "/a%2f%2e%2e",
        ] {
            assert!(canonical_path(bad, slashes).is_err(), "{slashes:?}: {bad}");
        }
    }
    for slashed in ["/api%2fx", "/api%5Cx", "/a%2F"] {
        assert!(
            canonical_path(slashed, EncodedSlashes::Reject).is_err(),
            "{slashed}"
        );
    }
    assert_eq!(
        canonical_path("/api%2fx%5cy", EncodedSlashes::Keep).as_deref(),
        Ok("/api%2Fx%5Cy")
    );
}

//! Route matching: the first `routes[]` entry whose `path_prefix` matches the request path.
//! A prefix matches at a segment boundary: `/api` matches `/api`, `/api/x` and `/api?q`, not
//! `/apix` (a prefix ending in `/` matches anything below it). Routes match the path
//! [`canonical_path`] made.

use crate::config::{AuthMode, RouteConfig};
pub(crate) use crate::uri::canonical_path;

/// The routes, in configuration order, with their resolved nonce policy.
#[derive(Clone, Debug)]
pub(crate) struct Router {
    routes: Vec<Route>,
    /// What a path no route matches gets: `auth: dpop`, `dpop.nonce.enabled`.
    fallback: Route,
}

/// The `route` label of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// One matched route.
#[derive(Clone, Debug)]
pub struct Route {
    /// The configured prefix (also the bounded `route` metric label).
    pub prefix: String,
    /// What the route requires.
    pub auth: AuthMode,
    /// Whether proofs on this route must carry a server nonce.
    pub nonce: bool,
}

// === impl Router ===

impl Router {
    /// Builds the table; `nonce_default` is `dpop.nonce.enabled`.
    pub(crate) fn new(routes: &[RouteConfig], nonce_default: bool) -> Self {
        let routes = routes
            .iter()
            .map(|r| Route {
                prefix: r.path_prefix.clone(),
                auth: r.auth,
                nonce: r.nonce.unwrap_or(nonce_default),
            })
            .collect();
        Self {
            routes,
            fallback: Route {
                prefix: UNMATCHED.to_owned(),
                auth: AuthMode::Dpop,
                nonce: nonce_default,
            },
        }
    }

    /// The route for `path`: the first whose prefix matches; and when an ASCII case-insensitive
    /// match (what a case-insensitive upstream would see) finds a stricter route, that one, so
    /// `/API/x` cannot slip past a protected `/api` through a more open `/` route. When nothing
    /// matches, the fallback (`auth: dpop`, labelled `unmatched`).
    ///
    /// An encoded slash (`%2F`, `%5C`: `paths.encoded_slashes: keep`) is part of its segment,
    /// so `/api%2Fx` is not under `/api`; but an upstream that decodes it sees `/api/x`, so when
    /// that path gets a stricter route, that one.
    pub(crate) fn find(&self, path: &str) -> &Route {
        let route = self.find_spelled(path);
        if !has_encoded_slash(path) {
            return route;
        }
        let decoded = path
            .replace("%2F", "/")
            .replace("%2f", "/")
            .replace("%5C", "/")
            .replace("%5c", "/");
        let other = self.find_spelled(&decoded);
        if strictness(other.auth) > strictness(route.auth) {
            other
        } else {
            route
        }
    }

    /// [`Router::find`] for `path` as it is spelled (encoded slashes inside their segment).
    fn find_spelled(&self, path: &str) -> &Route {
        let exact = self.routes.iter().find(|r| prefix_matches(&r.prefix, path));
        let folded = self
            .routes
            .iter()
            .find(|r| prefix_matches_ignore_case(&r.prefix, path));
        match (exact, folded) {
            (Some(e), Some(f)) if strictness(f.auth) > strictness(e.auth) => f,
            (Some(e), _) => e,
            (None, Some(f)) => f,
            (None, None) => &self.fallback,
        }
    }

    /// Whether any route, the fallback included, requires nonces.
    pub(crate) fn needs_nonces(&self) -> bool {
        self.fallback.nonce
            || self
                .routes
                .iter()
                .any(|r| r.nonce && r.auth != AuthMode::None)
    }
}

// === impl Route ===

impl Route {
    /// The bounded `route` label: the configured prefix, or `unmatched`.
    pub fn label(&self) -> &str {
        &self.prefix
    }
}

/// Whether `path` has a `%2F` or `%5C`, in either hex case.
fn has_encoded_slash(path: &str) -> bool {
    path.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && (w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f')
                || w[1] == b'5' && w[2].eq_ignore_ascii_case(&b'c'))
    })
}

/// How much a route checks: a request matching several ways gets the strictest.
fn strictness(auth: AuthMode) -> u8 {
    match auth {
        AuthMode::None => 0,
        AuthMode::DpopOrBearer => 1,
        AuthMode::Dpop => 2,
    }
}

fn prefix_matches_ignore_case(prefix: &str, path: &str) -> bool {
    match path.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => {
            let rest = &path[prefix.len()..];
            prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
        }
        _ => false,
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    use crate::config::EncodedSlashes;
    use crate::dpop::htu;
    use crate::uri::{canonical_path_fully, is_plainly_canonical};

    fn router() -> Router {
        let r = |p: &str, auth| RouteConfig {
            path_prefix: p.into(),
            auth,
            nonce: None,
        };
        Router::new(
            &[
                r("/healthz", AuthMode::None),
                r("/public/", AuthMode::DpopOrBearer),
                r("/", AuthMode::Dpop),
            ],
            false,
        )
    }

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
    fn first_match_wins_at_segment_boundaries() {
        let rt = router();
        assert_eq!(rt.find("/healthz").auth, AuthMode::None);
        assert_eq!(rt.find("/healthz/deep").auth, AuthMode::None);
        assert_eq!(rt.find("/healthzx").auth, AuthMode::Dpop);
        assert_eq!(rt.find("/public/a").auth, AuthMode::DpopOrBearer);
        assert_eq!(rt.find("/public").auth, AuthMode::Dpop);
        assert_eq!(rt.find("/anything").auth, AuthMode::Dpop);
    }

    #[test]
    fn a_case_variant_gets_the_stricter_route() {
        let rt = Router::new(
            &[
                RouteConfig {
                    path_prefix: "/api".into(),
                    auth: AuthMode::Dpop,
                    nonce: None,
                },
                RouteConfig {
                    path_prefix: "/".into(),
                    auth: AuthMode::None,
                    nonce: None,
                },
            ],
            false,
        );
        assert_eq!(rt.find("/API/x").auth, AuthMode::Dpop);
        assert_eq!(rt.find("/Api").auth, AuthMode::Dpop);
        assert_eq!(rt.find("/other").auth, AuthMode::None);
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

    #[test]
    fn an_encoded_slash_is_in_its_segment_unless_decoding_it_reaches_a_stricter_route() {
        let rt = Router::new(
            &[
                RouteConfig {
                    path_prefix: "/files".into(),
                    auth: AuthMode::None,
                    nonce: None,
                },
                RouteConfig {
                    path_prefix: "/api".into(),
                    auth: AuthMode::Dpop,
                    nonce: None,
                },
                RouteConfig {
                    path_prefix: "/".into(),
                    auth: AuthMode::None,
                    nonce: None,
                },
            ],
            false,
        );
        assert_eq!(rt.find("/files/a%2Fb").label(), "/files");
        assert_eq!(rt.find("/api%2Fx").label(), "/api");
        assert_eq!(rt.find("/API%5cx").label(), "/api");
        assert_eq!(rt.find("/files%2Fx").label(), "/");
        assert_eq!(rt.find("/api/a%2Fb").label(), "/api");
    }

    #[test]
    fn unmatched_path_gets_the_dpop_fallback() {
        let rt = Router::new(
            &[RouteConfig {
                path_prefix: "/api".into(),
                auth: AuthMode::None,
                nonce: None,
            }],
            true,
        );
        let r = rt.find("/other");
        assert_eq!(
            (r.label(), r.auth, r.nonce),
            ("unmatched", AuthMode::Dpop, true)
        );
        assert!(rt.needs_nonces());
    }
}

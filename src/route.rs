//! Route matching: the first `routes[]` entry whose `path_prefix` matches the request path.
//! A prefix matches at a segment boundary: `/api` matches `/api`, `/api/x` and `/api?q`, not
//! `/apix` (a prefix ending in `/` matches anything below it).

use crate::config::{AuthMode, RouteConfig};

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
    pub(crate) fn find(&self, path: &str) -> &Route {
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

/// Why a request path is refused before routing: anything a server behind us could read as
/// another path than the one we match routes on. Route matching is literal, so the path must
/// already be canonical (RFC 3986 §6.2.2: no dot segments, no percent-encoded unreserved
/// characters), with no empty segments, no encoded `/` or `\`, and no `;` parameters on dot
/// segments (`..;/`, which some servlet containers treat as `..`).
pub(crate) fn check_path(path: &str) -> Result<(), &'static str> {
    if is_plainly_canonical(path) {
        return Ok(());
    }
    check_path_fully(path)
}

/// [`check_path`] without its fast path.
fn check_path_fully(path: &str) -> Result<(), &'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || path.contains('\\') {
        return Err("the request path contains an encoded slash or a backslash");
    }
    if path.contains("//") {
        return Err("the request path contains an empty segment");
    }
    if path
        .split('/')
        .any(|seg| seg.starts_with(".;") || seg.starts_with("..;"))
    {
        return Err("the request path contains a dot segment with parameters");
    }
    match crate::dpop::htu::normalize_path(path) {
        Ok(canonical) if canonical.eq_ignore_ascii_case(path) => Ok(()),
        Ok(_) => Err("the request path is not canonical (dot segments or percent-encoded unreserved characters)"),
        Err(_) => Err("the request path is malformed"),
    }
}

/// Most paths need none of [`check_path`]'s work: without `%` there is nothing to decode,
/// without a segment starting with `.` there are no dot segments or `..;`, and with only path
/// characters and no `//` nothing else can be refused. (A property test holds this against the
/// full check.)
fn is_plainly_canonical(path: &str) -> bool {
    path.starts_with('/')
        && path
            .bytes()
            .all(|b| b != b'%' && crate::dpop::htu::is_path_char(b))
        && !path.contains("//")
        && !path.contains("/.")
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
            if is_plainly_canonical(&path) {
                fast += 1;
                assert_eq!(check_path_fully(&path), Ok(()), "{path:?}");
            }
            assert_eq!(
                check_path(&path).is_ok(),
                check_path_fully(&path).is_ok(),
                "{path:?}"
            );
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
    fn non_canonical_paths_are_refused() {
        for ok in ["/", "/api/x", "/a%20b", "/a%2Ab", "/a%2ab", "/x.y/..z/.a"] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/healthz/../resource",
            "/open/%2e%2e/admin",
            "/healthz/..;/admin",
            "/.;/admin",
            "//api/x",
            "/%61pi/x",
            "/./api/x",
            "/api%2fx",
            "/api%5Cx",
            "/a/.",
            "/a%zz",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
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

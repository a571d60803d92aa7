//! Route matching: the first `routes[]` entry whose `path_prefix` matches the request path.
//! A prefix matches at a segment boundary: `/api` matches `/api`, `/api/x` and `/api?q`, not
//! `/apix` (a prefix ending in `/` matches anything below it). Routes match the path
//! [`crate::uri::canonical_path`] made.

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

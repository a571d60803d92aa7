//! Route matching: the first `routes[]` entry whose `path_prefix` matches the request path.
//! A prefix matches at a segment boundary: `/api` matches `/api`, `/api/x` and `/api?q`, not
//! `/apix` (a prefix ending in `/` matches anything below it).

use crate::config::{AuthMode, RouteConfig};

/// The routes, in configuration order, with their resolved nonce policy.
#[derive(Clone, Debug)]
pub struct Router {
    routes: Vec<Route>,
}

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
    pub fn new(routes: &[RouteConfig], nonce_default: bool) -> Self {
        let routes = routes
            .iter()
            .map(|r| Route {
                prefix: r.path_prefix.clone(),
                auth: r.auth,
                nonce: r.nonce.unwrap_or(nonce_default),
            })
            .collect();
        Self { routes }
    }

    /// The first route matching `path`; `None` when nothing matches (refused as if protected).
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| prefix_matches(&r.prefix, path))
    }

    /// Every route (for metric pre-registration and the resource metadata).
    pub fn routes(&self) -> &[Route] {
        &self.routes
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
        assert_eq!(rt.find("/healthz").unwrap().auth, AuthMode::None);
        assert_eq!(rt.find("/healthz/deep").unwrap().auth, AuthMode::None);
        assert_eq!(rt.find("/healthzx").unwrap().auth, AuthMode::Dpop);
        assert_eq!(rt.find("/public/a").unwrap().auth, AuthMode::DpopOrBearer);
        assert_eq!(rt.find("/public").unwrap().auth, AuthMode::Dpop);
        assert_eq!(rt.find("/anything").unwrap().auth, AuthMode::Dpop);
    }

    #[test]
    fn unmatched_path_has_no_route() {
        let rt = Router::new(
            &[RouteConfig {
                path_prefix: "/api".into(),
                auth: AuthMode::None,
                nonce: None,
            }],
            false,
        );
        assert!(rt.find("/other").is_none());
    }
}

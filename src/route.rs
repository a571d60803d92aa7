//! Route matching: the first `routes[]` entry whose `path_prefix` matches the request path.
//! A prefix matches at a segment boundary: `/api` matches `/api`, `/api/x` and `/api?q`, not
//! `/apix` (a prefix ending in `/` matches anything below it). Routes match the path
//! [`crate::uri::canonical_path`] made.
//!
//! Methods: the first matching prefix decides the group of routes that may answer (it and
//! every later route with the same prefix); the first of them whose `methods` has the request's
//! method (or that lists none) is the route. When none does, the request is 405 with their
//! methods in `Allow`: never a fall-through to a shorter prefix, which could be more open.

use http::Method;

use crate::config::{AuthMode, Require, RouteConfig};

/// The routes, in configuration order, with their resolved nonce policy.
#[derive(Clone, Debug)]
pub(crate) struct Router {
    routes: Vec<Route>,
    /// What a path no route matches gets: `auth: dpop`, `dpop.nonce.enabled`.
    fallback: Route,
}

/// The `route` label of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// What a CORS preflight answer allows on a route that takes every method: the methods
/// browsers send from `fetch` (CONNECT, TRACE and OPTIONS itself are not among them).
pub(crate) const CORS_DEFAULT_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";

/// One matched route.
#[derive(Clone, Debug)]
pub struct Route {
    /// The configured prefix (also the bounded `route` metric label).
    pub prefix: String,
    /// The methods the route takes (`None`: every method).
    pub methods: Option<Vec<Method>>,
    /// What the route requires.
    pub auth: AuthMode,
    /// Whether proofs on this route must carry a server nonce.
    pub nonce: bool,
    /// The upstream it forwards to: 0 for `upstream`, `i + 1` for `upstreams[i]`.
    pub upstream: usize,
    /// `strip_prefix`: the prefix is taken off the path before forwarding.
    pub strip_prefix: bool,
    /// The issuers whose tokens are accepted here (`None`: every configured one).
    pub issuers: Option<Vec<String>>,
    /// What the token must say (scopes, claims).
    pub require: Require,
    /// The largest request body forwarded (`max_body_bytes`, else `limits.max_body_bytes`;
    /// `None`: no limit).
    pub max_body_bytes: Option<u64>,
}

/// What [`Router::find_for`] found for a path and method.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Found<'r> {
    /// The route that takes the request.
    Route(&'r Route),
    /// Routes match the path, none the method: 405. `first` labels the refusal.
    MethodNotAllowed {
        /// The first route of the group (the metric label).
        first: &'r Route,
        /// The group, for `Allow`.
        group: Group<'r>,
    },
}

/// The routes sharing the first matching prefix, from the first one on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Group<'r> {
    routes: &'r [Route],
    prefix: &'r str,
}

// === impl Router ===

impl Router {
    /// Builds the table; `nonce_default` is `dpop.nonce.enabled`.
    pub(crate) fn new(routes: &[RouteConfig], nonce_default: bool) -> Self {
        let routes = routes
            .iter()
            .map(|r| Route {
                prefix: r.path_prefix.clone(),
                methods: r.methods.clone(),
                auth: r.auth,
                nonce: r.nonce.unwrap_or(nonce_default),
                upstream: r.upstream.map_or(0, |i| i + 1),
                strip_prefix: r.strip_prefix,
                issuers: r.issuers.clone(),
                require: r.require.clone(),
                max_body_bytes: r.max_body_bytes,
            })
            .collect();
        Self {
            routes,
            fallback: Route {
                prefix: UNMATCHED.to_owned(),
                methods: None,
                auth: AuthMode::Dpop,
                nonce: nonce_default,
                upstream: 0,
                strip_prefix: false,
                issuers: None,
                require: Require::default(),
                max_body_bytes: None,
            },
        }
    }

    /// Gives every route without its own `max_body_bytes`, and the fallback, `default`
    /// (`limits.max_body_bytes`).
    pub(crate) fn with_body_limit(mut self, default: Option<u64>) -> Self {
        for r in self
            .routes
            .iter_mut()
            .chain(std::iter::once(&mut self.fallback))
        {
            r.max_body_bytes = r.max_body_bytes.or(default);
        }
        self
    }

    /// The routes sharing `route`'s prefix (its group when `route` is the first of it, as
    /// [`Router::find`] returns); none for the fallback.
    fn members_of<'r>(&'r self, route: &'r Route) -> impl Iterator<Item = &'r Route> {
        self.routes.iter().filter(move |r| r.prefix == route.prefix)
    }

    /// The issuers accepted on `route`'s prefix, in configuration order, when every route of
    /// it names `issuers`; `None` when one of them (or the fallback) takes any issuer.
    pub(crate) fn accepted_issuers<'r>(&'r self, route: &'r Route) -> Option<Vec<&'r str>> {
        let mut out: Vec<&str> = Vec::new();
        let mut any = false;
        for r in self.members_of(route) {
            any = true;
            for i in r.issuers.as_ref()? {
                if !out.contains(&i.as_str()) {
                    out.push(i);
                }
            }
        }
        any.then_some(out)
    }

    /// The route whose RFC 9728 document `path` (the resource's path, `""` for the root) asks
    /// for: the first route whose prefix, less a trailing `/`, is `path` (what 401s point at),
    /// else the route `path` matches.
    pub(crate) fn for_resource(&self, path: &str) -> &Route {
        match self
            .routes
            .iter()
            .find(|r| r.prefix.trim_end_matches('/') == path)
        {
            Some(r) => r,
            None => self.find(if path.is_empty() { "/" } else { path }),
        }
    }

    /// The methods a CORS preflight answer allows on `route`'s prefix: the `methods` of its
    /// routes, each once, or [`CORS_DEFAULT_METHODS`] when one of them (or the fallback) takes
    /// every method.
    pub(crate) fn cors_methods(&self, route: &Route) -> String {
        let mut seen: Vec<&Method> = Vec::new();
        let mut any = false;
        for r in self.members_of(route) {
            any = true;
            let Some(methods) = &r.methods else {
                return CORS_DEFAULT_METHODS.to_owned();
            };
            for m in methods {
                if !seen.contains(&m) {
                    seen.push(m);
                }
            }
        }
        if !any {
            return CORS_DEFAULT_METHODS.to_owned();
        }
        join_methods(&seen)
    }

    /// The route for `path` whatever the method: the first of [`Router::find_for`]'s group.
    pub(crate) fn find(&self, path: &str) -> &Route {
        match self.find_for(path, None) {
            Found::Route(r) | Found::MethodNotAllowed { first: r, .. } => r,
        }
    }

    /// The route for `path` and `method` (`None`: any method): the first whose prefix
    /// matches, then the first of its group that takes the method; and when an ASCII
    /// case-insensitive match (what a case-insensitive upstream would see) finds a stricter
    /// answer, that one, so `/API/x` cannot slip past a protected `/api` through a more open
    /// `/` route. When nothing matches, the fallback (`auth: dpop`, labelled `unmatched`).
    ///
    /// An encoded slash (`%2F`, `%5C`: `paths.encoded_slashes: keep`) is part of its segment,
    /// so `/api%2Fx` is not under `/api`; but an upstream that decodes it sees `/api/x`, so when
    /// that path gets a stricter answer, that one.
    pub(crate) fn find_for(&self, path: &str, method: Option<&Method>) -> Found<'_> {
        let found = self.find_spelled(path, method);
        if !has_encoded_slash(path) {
            return found;
        }
        let decoded = path
            .replace("%2F", "/")
            .replace("%2f", "/")
            .replace("%5C", "/")
            .replace("%5c", "/");
        let other = self.find_spelled(&decoded, method);
        if strictness(&other) > strictness(&found) {
            other
        } else {
            found
        }
    }

    /// [`Router::find_for`] for `path` as it is spelled (encoded slashes inside their segment).
    fn find_spelled(&self, path: &str, method: Option<&Method>) -> Found<'_> {
        let exact = self
            .routes
            .iter()
            .position(|r| prefix_matches(&r.prefix, path))
            .map(|i| self.pick(i, method));
        let folded = self
            .routes
            .iter()
            .position(|r| prefix_matches_ignore_case(&r.prefix, path))
            .map(|i| self.pick(i, method));
        match (exact, folded) {
            (Some(e), Some(f)) if strictness(&f) > strictness(&e) => f,
            (Some(e), _) => e,
            (None, Some(f)) => f,
            (None, None) => Found::Route(&self.fallback),
        }
    }

    /// In the group starting at `routes[first]`, the route taking `method`.
    fn pick(&self, first: usize, method: Option<&Method>) -> Found<'_> {
        let routes = &self.routes[first..];
        let group = Group {
            routes,
            prefix: &routes[0].prefix,
        };
        let Some(method) = method else {
            return Found::Route(&routes[0]);
        };
        match group.members().find(|r| r.takes(method)) {
            Some(r) => Found::Route(r),
            None => Found::MethodNotAllowed {
                first: &routes[0],
                group,
            },
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

// === impl Group ===

impl<'r> Group<'r> {
    fn members(self) -> impl Iterator<Item = &'r Route> {
        self.routes.iter().filter(move |r| r.prefix == self.prefix)
    }

    /// The `Allow` value: the group's methods, each once, in configuration order.
    pub(crate) fn allow(self) -> String {
        let mut seen: Vec<&Method> = Vec::new();
        for r in self.members() {
            for m in r.methods.iter().flatten() {
                if !seen.contains(&m) {
                    seen.push(m);
                }
            }
        }
        join_methods(&seen)
    }
}

/// `GET, POST` from the methods.
fn join_methods(methods: &[&Method]) -> String {
    methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

// === impl Route ===

impl Route {
    /// The bounded `route` label: the configured prefix, or `unmatched`.
    pub fn label(&self) -> &str {
        &self.prefix
    }

    /// What `strip_prefix` takes off the path (the prefix without its trailing `/`), if set.
    pub(crate) fn strip(&self) -> Option<&str> {
        self.strip_prefix.then(|| self.prefix.trim_end_matches('/'))
    }

    /// Whether the route takes `method` (`HEAD` only when listed).
    fn takes(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|ms| ms.contains(method))
    }

    /// Whether the route checks more than its `auth` mode: a policy or an issuer limit.
    fn has_policy(&self) -> bool {
        !self.require.scopes.is_empty() || !self.require.claims.is_empty() || self.issuers.is_some()
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

/// How much an answer checks: a request matching several ways gets the strictest. A 405 is
/// the strictest; between routes, the auth mode, then whether a policy applies.
fn strictness(found: &Found<'_>) -> u8 {
    let route = match found {
        Found::MethodNotAllowed { .. } => return u8::MAX,
        Found::Route(r) => r,
    };
    let auth = match route.auth {
        AuthMode::None => 0,
        AuthMode::DpopOrBearer => 1,
        AuthMode::Dpop => 2,
    };
    auth * 2 + u8::from(route.has_policy())
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
            ..RouteConfig::default()
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
                    ..RouteConfig::default()
                },
                RouteConfig {
                    path_prefix: "/".into(),
                    auth: AuthMode::None,
                    ..RouteConfig::default()
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
                    ..RouteConfig::default()
                },
                RouteConfig {
                    path_prefix: "/api".into(),
                    auth: AuthMode::Dpop,
                    ..RouteConfig::default()
                },
                RouteConfig {
                    path_prefix: "/".into(),
                    auth: AuthMode::None,
                    ..RouteConfig::default()
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
                ..RouteConfig::default()
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

#[cfg(test)]
mod method_tests {
    use super::*;

    fn r(prefix: &str, methods: Option<&[Method]>, auth: AuthMode) -> RouteConfig {
        RouteConfig {
            path_prefix: prefix.into(),
            methods: methods.map(<[Method]>::to_vec),
            auth,
            ..RouteConfig::default()
        }
    }

    fn label_of(f: Found<'_>) -> Result<(String, AuthMode), String> {
        match f {
            Found::Route(r) => Ok((r.label().to_owned(), r.auth)),
            Found::MethodNotAllowed { group, .. } => Err(group.allow()),
        }
    }

    #[test]
    fn routes_sharing_a_prefix_split_by_method_and_never_fall_through() {
        let rt = Router::new(
            &[
                r("/api/open", None, AuthMode::None),
                r("/api", Some(&[Method::GET, Method::HEAD]), AuthMode::Dpop),
                r(
                    "/api",
                    Some(&[Method::POST, Method::GET]),
                    AuthMode::DpopOrBearer,
                ),
                r("/", None, AuthMode::None),
            ],
            false,
        );
        let find = |p, m: Method| label_of(rt.find_for(p, Some(&m)));
        assert_eq!(
            find("/api/x", Method::GET),
            Ok(("/api".into(), AuthMode::Dpop))
        );
        assert_eq!(
            find("/api/x", Method::POST),
            Ok(("/api".into(), AuthMode::DpopOrBearer))
        );
        assert_eq!(find("/api", Method::DELETE), Err("GET, HEAD, POST".into()));
        assert_eq!(
            find("/api/open", Method::DELETE),
            Ok(("/api/open".into(), AuthMode::None))
        );
        assert_eq!(
            find("/other", Method::DELETE),
            Ok(("/".into(), AuthMode::None))
        );
        // Any method (a preflight): the first route of the group.
        assert_eq!(rt.find("/api/x").auth, AuthMode::Dpop);
    }

    #[test]
    fn a_preflight_answer_lists_the_prefixs_methods_and_its_issuers_need_every_route() {
        let mut get = r("/api", Some(&[Method::GET, Method::HEAD]), AuthMode::Dpop);
        get.issuers = Some(vec!["https://a".into()]);
        let mut post = r("/api", Some(&[Method::POST, Method::GET]), AuthMode::Dpop);
        post.issuers = Some(vec!["https://b".into(), "https://a".into()]);
        let rt = Router::new(
            &[
                get,
                post,
                r("/open", None, AuthMode::None),
                r("/", None, AuthMode::Dpop),
            ],
            false,
        );
        let api = rt.find("/api/x");
        assert_eq!(rt.cors_methods(api), "GET, HEAD, POST");
        assert_eq!(
            rt.accepted_issuers(api),
            Some(vec!["https://a", "https://b"])
        );
        let open = rt.find("/open");
        assert_eq!(rt.cors_methods(open), CORS_DEFAULT_METHODS);
        assert_eq!(rt.accepted_issuers(open), None);
        assert_eq!(rt.for_resource("/api").label(), "/api");
        assert_eq!(rt.for_resource("").label(), "/");
        assert_eq!(rt.for_resource("/api/deeper").label(), "/api");
        let fallback = Router::new(&[r("/a", None, AuthMode::Dpop)], false);
        assert_eq!(
            fallback.cors_methods(fallback.find("/b")),
            CORS_DEFAULT_METHODS
        );
        assert_eq!(fallback.accepted_issuers(fallback.find("/b")), None);
    }

    #[test]
    fn head_is_taken_only_where_listed() {
        let rt = Router::new(&[r("/a", Some(&[Method::GET]), AuthMode::Dpop)], false);
        assert_eq!(
            label_of(rt.find_for("/a", Some(&Method::HEAD))),
            Err("GET".into())
        );
    }

    #[test]
    fn a_case_variant_cannot_escape_a_method_limit_or_a_policy() {
        let mut scoped = r("/api", None, AuthMode::Dpop);
        scoped.require.scopes = vec!["read".into()];
        let rt = Router::new(
            &[
                r("/admin", Some(&[Method::GET]), AuthMode::Dpop),
                scoped,
                r("/", None, AuthMode::Dpop),
            ],
            false,
        );
        assert_eq!(
            label_of(rt.find_for("/ADMIN", Some(&Method::POST))),
            Err("GET".into())
        );
        match rt.find_for("/API/x", Some(&Method::GET)) {
            Found::Route(route) => assert_eq!(route.require.scopes, ["read"]),
            Found::MethodNotAllowed { .. } => panic!("405"),
        }
    }
}

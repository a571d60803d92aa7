//! CORS answered by the gateway (`cors.preflight: answer`): the answer to a preflight, which
//! never reaches the upstream, and `Access-Control-Allow-Origin` on forwarded responses that the
//! upstream (a legacy API that knows nothing of CORS) sent without one. With `forward`, the
//! default, nothing here runs: preflights go to the upstream, which owns its policy.
//!
//! The answer for an origin in `cors.allow_origins`: 204 with
//! - `Access-Control-Allow-Origin`: the origin, and `Vary: Origin` (`*` when `*` is configured);
//! - `Access-Control-Allow-Methods`: the `methods` of the routes of the path's prefix (a method
//!   they do not take is left out, so the browser refuses it; never a 405);
//! - `Access-Control-Allow-Headers`: `authorization, dpop` and `cors.allow_headers` (a fixed
//!   list, not an echo of what was asked);
//! - `Access-Control-Max-Age`: `cors.max_age` in seconds.
//!
//! No `Access-Control-Allow-Credentials`: DPoP travels in the `Authorization` and `DPoP`
//! headers, which a page's `fetch` sets itself; cookies are no part of it. An origin not in the
//! list gets a bare 204 (with `Vary: Origin`), which the browser reads as a refusal. Pure: no I/O.

use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use http::{Response, StatusCode};

use crate::body::{self, GatewayBody};
use crate::config::{Config, CorsPreflight};
use crate::route::Route;
use crate::state::State;

/// What the gateway's preflight answers say, built once from the config (`Some` only with
/// `cors.preflight: answer`).
#[derive(Clone, Debug)]
pub(crate) struct Preflights {
    /// `cors.allow_origins` has `*`: `Access-Control-Allow-Origin: *`, no `Vary`.
    any_origin: bool,
    /// `authorization, dpop, <cors.allow_headers>`.
    allow_headers: HeaderValue,
    /// `cors.max_age` in whole seconds.
    max_age: HeaderValue,
}

// === impl Preflights ===

impl Preflights {
    /// `Some` when `cors.preflight` is `answer`.
    pub(crate) fn from_config(config: &Config) -> Option<Preflights> {
        if config.cors.preflight != CorsPreflight::Answer {
            return None;
        }
        let mut names = vec!["authorization", "dpop"];
        for h in &config.cors.allow_headers {
            if !names.contains(&h.as_str()) {
                names.push(h.as_str());
            }
        }
        // Header names are visible ASCII: the joined list is a valid value.
        let allow_headers = HeaderValue::from_str(&names.join(", "))
            .unwrap_or(HeaderValue::from_static("authorization, dpop"));
        Some(Preflights {
            any_origin: config.cors_allow_origins.iter().any(|o| o == "*"),
            allow_headers,
            max_age: HeaderValue::from(config.cors.max_age.as_secs()),
        })
    }

    /// The answer to a preflight on `route` (the first route of its path's prefix) from
    /// `origin`: see the module documentation.
    pub(crate) fn answer(
        &self,
        state: &State,
        route: &Route,
        origin: Option<&HeaderValue>,
    ) -> Response<GatewayBody> {
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let Some(allowed) = origin.and_then(|o| self.allow_origin(state, o)) else {
            if !self.any_origin {
                resp.headers_mut()
                    .insert(VARY, HeaderValue::from_static("origin"));
            }
            return resp;
        };
        let h = resp.headers_mut();
        self.put_allow_origin(h, allowed);
        if let Ok(methods) = HeaderValue::from_str(&state.router.cors_methods(route)) {
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
        }
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, self.allow_headers.clone());
        h.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        resp
    }

    /// A forwarded response to a request from `origin`: `Access-Control-Allow-Origin` (and
    /// `Vary: Origin`) for an allowed origin when the upstream sent none; what the upstream
    /// sent is kept as it is.
    pub(crate) fn on_forwarded(
        &self,
        state: &State,
        resp: &mut Response<GatewayBody>,
        origin: &HeaderValue,
    ) {
        if resp.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
            return;
        }
        if let Some(allowed) = self.allow_origin(state, origin) {
            self.put_allow_origin(resp.headers_mut(), allowed);
        }
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, when it is allowed.
    fn allow_origin(&self, state: &State, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any_origin {
            return Some(HeaderValue::from_static("*"));
        }
        state.origin_allowed(origin).then(|| origin.clone())
    }

    fn put_allow_origin(&self, h: &mut http::HeaderMap, allowed: HeaderValue) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        if !self.any_origin {
            // The answer depends on the request's Origin: caches must keep one per origin.
            h.append(VARY, HeaderValue::from_static("origin"));
        }
    }
}

/// The request's `Origin`, for a preflight answer.
pub(crate) fn origin_of(head: &http::request::Parts) -> Option<&HeaderValue> {
    head.headers.get(ORIGIN)
}

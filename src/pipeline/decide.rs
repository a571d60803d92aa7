//! The decision listener's path (`forward_auth.listen`): the request an ingress asks about is
//! rebuilt from the decision request ([`describe`]), then [`authorize`] decides on it exactly as
//! for the proxy, and the answer is 200 with what the ingress copies upstream, or the refusal a
//! client of the proxy would get (made in `refusal.rs`, as every refusal). Nothing is forwarded.
//!
//! The described request: `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host` and
//! `X-Forwarded-Proto` (Traefik `forwardAuth`, Caddy `forward_auth`, the shipped nginx
//! `auth_request` config); without the first two, the decision request itself (Envoy
//! `ext_authz`: original method, path behind `forward_auth.path_prefix`, Host; scheme from
//! `X-Forwarded-Proto`, else `http`). `Forwarded` is never read. These headers are trusted: the
//! listener must be reachable by the ingress only (`config::validate` refuses a non-loopback
//! address without `forward_auth.allow_non_loopback`).

use std::convert::Infallible;

use http::header::{HeaderName, CACHE_CONTROL, CONTENT_TYPE, FORWARDED, HOST};
use http::StatusCode;

use super::*;
use crate::metrics::Listener;

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// The headers that describe the request, removed once read: one pass over the headers
/// present instead of a hashed `remove` per name.
const DESCRIBING: [HeaderName; 6] = [
    X_FORWARDED_METHOD,
    X_FORWARDED_URI,
    fwd_headers::X_FORWARDED_PROTO,
    fwd_headers::X_FORWARDED_HOST,
    X_FORWARDED_PORT,
    FORWARDED,
];

/// Answers one decision request: `describe`, [`authorize`], then 200 (identity headers,
/// `Authorization: Bearer …` with `forward.authorization: bearer`, `DPoP-Nonce` when due) or
/// the refusal; one metrics record and one access-log line (`listener` `forward_auth`). The
/// decision request's body is never read.
pub async fn decide<B>(
    state: Arc<State>,
    req: Request<B>,
    conn: ConnMeta,
) -> Result<Response<GatewayBody>, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let start = clock::monotonic();
    let _in_flight = metrics::GaugeGuard::new(state.metrics.in_flight.clone());
    let (mut head, body) = req.into_parts();
    let request_id = telemetry::request_id(&mut head.headers);
    let known = BodyKnown::of(&body);
    drop(body);
    let described = describe(&state, &mut head, conn);
    let origin = head.headers.get(ORIGIN).cloned();
    let method = head.method.clone();
    let log = telemetry::access_enabled()
        .then(|| AccessRecord::new(&head, conn.remote, start).on(Listener::ForwardAuth));

    let (route, signed_by, result, conn) = match described {
        Ok(described_conn) => {
            let d = authorize(&state, &mut head, known, described_conn).await;
            (d.route, d.signed_by, d.result, described_conn)
        }
        Err(refusal) => (state.router.find(head.uri.path()), None, Err(refusal), conn),
    };
    let jkt = signed_by.map(|s| s.jkt());
    let (resp, outcome) = match result {
        Ok(access) => allowed(&state, access),
        Err(refusal) => {
            let answering = Answering {
                state: &state,
                conn,
                head: Some(&head),
                route,
                origin: origin.as_ref(),
            };
            refused(&state, route, &refusal, &answering)
        }
    };
    let resp = answer(
        &state,
        resp,
        Answered {
            listener: Listener::ForwardAuth,
            route,
            method: &method,
            origin: origin.as_ref(),
            request_id,
            labels: outcome.labels(),
            start,
            log,
            jkt,
            upstream: None,
        },
    );
    Ok(resp)
}

/// Turns the decision request's head into the head of the request it describes (method,
/// origin-form target, `Host`) and returns the connection as the client's (its scheme). The
/// describing headers and `Forwarded` are removed, so nothing else reads them. Refused (400):
/// a described request without method, target or host, a describing header repeated or not a
/// single value, a scheme other than http(s), a path outside `forward_auth.path_prefix`, and
/// a request that carries one of the identity headers (the ingress would pass the client's
/// copy upstream beside, or instead of, the gateway's).
fn describe(state: &State, head: &mut Parts, conn: ConnMeta) -> Result<ConnMeta, Refusal> {
    let scheme = match single(&head.headers, &fwd_headers::X_FORWARDED_PROTO, true)? {
        None => "http",
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(p) if p.eq_ignore_ascii_case("http") => "http",
        Some(_) => {
            return Err(Refusal::InvalidRequest(
                "X-Forwarded-Proto is not http or https",
            ))
        }
    };
    let method = single(&head.headers, &X_FORWARDED_METHOD, true)?;
    let target = single(&head.headers, &X_FORWARDED_URI, false)?;
    match (method, target) {
        (None, None) => {
            // Envoy ext_authz: the decision request is the original, behind the path prefix.
            if let Some(prefix) = &state.decision_path_prefix {
                let path = head.uri.path();
                let rest = match path.strip_prefix(prefix.as_str()) {
                    Some("") => "/",
                    Some(rest) if rest.starts_with('/') => rest,
                    _ => {
                        return Err(Refusal::InvalidRequest(
                            "the decision path is outside forward_auth.path_prefix",
                        ))
                    }
                };
                let rest = rest.to_owned();
                head.uri = with_path(&head.uri, &rest)
                    .ok_or(Refusal::InvalidRequest("the request path is malformed"))?;
            }
        }
        (Some(method), Some(target)) => {
            let method = Method::from_bytes(method.as_bytes())
                .map_err(|_| Refusal::InvalidRequest("X-Forwarded-Method is not a method"))?;
            let host = single(&head.headers, &fwd_headers::X_FORWARDED_HOST, true)?
                .ok_or(Refusal::InvalidRequest("X-Forwarded-Host is missing"))?;
            let host = HeaderValue::from_str(host)
                .map_err(|_| Refusal::InvalidRequest("X-Forwarded-Host is malformed"))?;
            if !target.starts_with('/') {
                return Err(Refusal::InvalidRequest(
                    "X-Forwarded-Uri is not a path (origin-form)",
                ));
            }
            let uri = target
                .parse::<http::Uri>()
                .map_err(|_| Refusal::InvalidRequest("X-Forwarded-Uri is malformed"))?;
            head.method = method;
            head.uri = uri;
            head.headers.insert(HOST, host);
        }
        _ => {
            return Err(Refusal::InvalidRequest(
                "X-Forwarded-Method and X-Forwarded-Uri go together",
            ))
        }
    }
    fwd_headers::remove_where(&mut head.headers, |name| DESCRIBING.contains(name));
    // Last, so that the refusal is logged and counted with the described path.
    let names = &state.forward.identity_headers;
    if head
        .headers
        .keys()
        .any(|n| fwd_headers::names_identity(n, names))
    {
        return Err(Refusal::InvalidRequest(
            "the request carries an identity header the gateway sets",
        ));
    }
    Ok(ConnMeta {
        remote: conn.remote,
        scheme,
    })
}

/// The one value of `name`, if sent: refused when repeated, not visible ASCII, or (for a
/// `token` field: a method, a scheme, a host) a comma-separated list.
fn single<'h>(
    headers: &'h http::HeaderMap,
    name: &HeaderName,
    token: bool,
) -> Result<Option<&'h str>, Refusal> {
    // One lookup: absent (the Envoy convention) costs no second hash.
    let mut values = headers.get_all(name).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(Refusal::InvalidRequest(
                "a request-describing X-Forwarded header is repeated",
            ))
        }
        (Some(value), None) => value,
    };
    let text = value.to_str().map_err(|_| {
        Refusal::InvalidRequest("a request-describing X-Forwarded header is not ASCII")
    })?;
    if text.is_empty() || (token && (text.contains(',') || text.contains(' '))) {
        return Err(Refusal::InvalidRequest(
            "a request-describing X-Forwarded header is not a single value",
        ));
    }
    Ok(Some(text))
}

/// The 200 answer (or, for a document only the proxy listener serves, 404) and its outcome.
fn allowed(state: &State, access: Access) -> (Response<GatewayBody>, Outcome) {
    let mut resp = Response::new(body::empty());
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match access {
        // A preflight the proxy would answer: the ingress forwards it, or answers it itself
        // (a decision cannot carry a response to the client).
        Access::Open | Access::Preflight(_) => (resp, Outcome::Forwarded),
        Access::Local(_) => {
            // The RFC 9728 document: a 2xx decision would send the request upstream instead.
            *resp.body_mut() = body::full(
                r#"{"error":"not_found","error_description":"the protected resource metadata is served by the gateway's main listener"}"#.to_owned(),
            );
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            (resp, Outcome::Local)
        }
        Access::Authorized(Authorized(v)) => {
            let names = &state.forward.identity_headers;
            let h = resp.headers_mut();
            for (name, value) in v.identity.headers(names) {
                h.insert(name.clone(), value.clone());
            }
            if state.forward.authorization == crate::config::ForwardAuthorization::Bearer {
                if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", v.token)) {
                    value.set_sensitive(true);
                    h.insert(http::header::AUTHORIZATION, value);
                }
            }
            if let (true, Some(keys)) = (v.renew_nonce, &state.nonces) {
                if let Ok(value) = HeaderValue::from_str(&keys.issue(state.clock.now())) {
                    h.insert("dpop-nonce", value);
                }
            }
            (resp, Outcome::Forwarded)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
mod tests {
    use super::*;

    fn head(uri: &str, headers: &[(&'static str, &str)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn single_of(headers: &[(&'static str, &str)]) -> Result<Option<String>, &'static str> {
        let h = head("/", headers);
        single(&h.headers, &X_FORWARDED_METHOD, true)
            .map(|v| v.map(str::to_owned))
            .map_err(|r| match r {
                Refusal::InvalidRequest(w) => w,
                _ => "other",
            })
    }

    #[test]
    fn a_describing_header_is_one_value() {
        assert_eq!(single_of(&[]), Ok(None));
        assert_eq!(
            single_of(&[("x-forwarded-method", "POST")]),
            Ok(Some("POST".into()))
        );
        for bad in [
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-method", "POST"),
            ][..],
            &[("x-forwarded-method", "GET, POST")][..],
            &[("x-forwarded-method", "")][..],
        ] {
            assert!(single_of(bad).is_err(), "{bad:?}");
        }
    }
}

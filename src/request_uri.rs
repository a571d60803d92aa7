//! The URI the client addressed, which a proof's `htu` must match (RFC 9449 §4.3 point 9).
//!
//! In order of precedence: `public_url` (scheme and authority configured by the operator);
//! with `trust_forwarded_headers`, the last element of `Forwarded` (RFC 7239) or else
//! `X-Forwarded-Proto` / `-Host` / `-Port`; otherwise the listener's scheme and the request's
//! `Host` (HTTP/1.1) or `:authority` (HTTP/2). The path is the request's, without the query.
//! Normalisation (case, default port, percent-encoding) is `dpop::htu`'s job.

use http::{HeaderMap, Uri};

use crate::config::PublicUrl;

/// How the gateway decides the client-facing scheme and authority.
#[derive(Clone, Debug)]
pub(crate) struct UriPolicy {
    /// `public_url`.
    pub public_url: Option<PublicUrl>,
    /// `trust_forwarded_headers`.
    pub trust_forwarded: bool,
}

/// Builds `scheme://authority/path` for `htu`; `None` when the request names no authority.
pub(crate) fn request_uri(
    policy: &UriPolicy,
    listener_scheme: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<String> {
    let path = uri.path();
    if let Some(p) = &policy.public_url {
        return Some(format!("{}://{}{}", p.scheme, p.authority, path));
    }
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| header(headers, "host"))?;
    let mut scheme = listener_scheme;
    let mut authority = host.to_owned();
    if policy.trust_forwarded {
        if let Some(fwd) = header(headers, "forwarded").and_then(last_forwarded) {
            if let Some(p) = fwd.proto {
                scheme = p;
            }
            if let Some(h) = fwd.host {
                authority = h.to_owned();
            }
        } else {
            if let Some(p) = header(headers, "x-forwarded-proto").and_then(first_token) {
                scheme = p;
            }
            if let Some(h) = header(headers, "x-forwarded-host").and_then(first_token) {
                authority = h.to_owned();
            }
            if let Some(port) = header(headers, "x-forwarded-port").and_then(first_token) {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    authority = format!("{}:{port}", strip_port(&authority));
                }
            }
        }
    }
    let scheme = if scheme.eq_ignore_ascii_case("https") {
        "https"
    } else if scheme.eq_ignore_ascii_case("http") {
        "http"
    } else {
        return None;
    };
    Some(format!("{scheme}://{authority}{path}"))
}

/// The `proto` and `host` of one `Forwarded` element (RFC 7239 §4).
#[derive(Debug, Default, PartialEq, Eq)]
struct ForwardedElement<'a> {
    proto: Option<&'a str>,
    host: Option<&'a str>,
}

/// The last element: the one the proxy nearest to us added.
fn last_forwarded(value: &str) -> Option<ForwardedElement<'_>> {
    let element = value.rsplit(',').next()?;
    let mut out = ForwardedElement::default();
    for pair in element.split(';') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "proto" => out.proto = Some(v),
            "host" => out.host = Some(v),
            _ => {}
        }
    }
    Some(out)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The first entry of a comma-separated list (the client-facing proxy's value).
fn first_token(v: &str) -> Option<&str> {
    v.split(',').next().map(str::trim).filter(|s| !s.is_empty())
}

fn strip_port(authority: &str) -> &str {
    match authority.rfind(':') {
        // Not the colon inside an IPv6 literal `[::1]`.
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    fn policy(public_url: Option<(&str, &str)>, trust: bool) -> UriPolicy {
        UriPolicy {
            public_url: public_url.map(|(s, a)| PublicUrl {
                scheme: s.into(),
                authority: a.into(),
            }),
            trust_forwarded: trust,
        }
    }

    #[test]
    fn host_header_and_listener_scheme() {
        let uri: Uri = "/a/b?q=1".parse().unwrap();
        let got = request_uri(
            &policy(None, false),
            "http",
            &uri,
            &h(&[("host", "api:8080")]),
        );
        assert_eq!(got.as_deref(), Some("http://api:8080/a/b"));
    }

    #[test]
    fn h2_authority_wins_over_nothing() {
        let uri: Uri = "https://api.example.com/x".parse().unwrap();
        let got = request_uri(&policy(None, false), "https", &uri, &HeaderMap::new());
        assert_eq!(got.as_deref(), Some("https://api.example.com/x"));
    }

    #[test]
    fn public_url_wins_over_everything() {
        let uri: Uri = "/x".parse().unwrap();
        let headers = h(&[("host", "internal:8443"), ("x-forwarded-host", "evil")]);
        let got = request_uri(
            &policy(Some(("https", "api.example.com")), true),
            "http",
            &uri,
            &headers,
        );
        assert_eq!(got.as_deref(), Some("https://api.example.com/x"));
    }

    #[test]
    fn forwarded_headers_are_ignored_unless_trusted() {
        let uri: Uri = "/x".parse().unwrap();
        let headers = h(&[("host", "internal:8443"), ("x-forwarded-proto", "https")]);
        let got = request_uri(&policy(None, false), "http", &uri, &headers);
        assert_eq!(got.as_deref(), Some("http://internal:8443/x"));
    }

    #[test]
    fn forwarded_last_element_is_used() {
        let uri: Uri = "/x".parse().unwrap();
        let headers = h(&[
            ("host", "internal:8443"),
            (
                "forwarded",
                "proto=http;host=evil, for=1.2.3.4;proto=https;host=\"api.example.com\"",
            ),
            ("x-forwarded-host", "ignored"),
        ]);
        let got = request_uri(&policy(None, true), "http", &uri, &headers);
        assert_eq!(got.as_deref(), Some("https://api.example.com/x"));
    }

    #[test]
    fn x_forwarded_port_replaces_host_port() {
        let uri: Uri = "/x".parse().unwrap();
        let headers = h(&[
            ("host", "internal:8443"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-port", "443"),
        ]);
        let got = request_uri(&policy(None, true), "http", &uri, &headers);
        assert_eq!(got.as_deref(), Some("https://internal:443/x"));
        let headers = h(&[("host", "[::1]"), ("x-forwarded-port", "9443")]);
        let got = request_uri(&policy(None, true), "http", &uri, &headers);
        assert_eq!(got.as_deref(), Some("http://[::1]:9443/x"));
    }

    #[test]
    fn no_authority_is_none() {
        let uri: Uri = "/x".parse().unwrap();
        assert_eq!(
            request_uri(&policy(None, false), "http", &uri, &HeaderMap::new()),
            None
        );
    }
}

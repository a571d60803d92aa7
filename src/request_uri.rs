//! The URI the client addressed, which a proof's `htu` must match (RFC 9449 §4.3 point 9).
//!
//! In order of precedence: `public_url` (scheme and authority configured by the operator);
//! with `trust_forwarded_headers`, the last element of `Forwarded` (RFC 7239) or else
//! `X-Forwarded-Proto` / `-Host` / `-Port`; otherwise the listener's scheme and the request's
//! `Host` (HTTP/1.1) or `:authority` (HTTP/2). The path is the request's, without the query.
//! Normalisation (case, default port, percent-encoding) is `dpop::htu`'s job.
//!
//! Which authority a request names, and whether it may name it that way, is [`authority`]: the
//! one Host rule, applied by the pipeline before routing, by `htu` here and by the `Host` the
//! upstream gets.

use http::header::HOST;
use http::request::Parts;
use http::{HeaderMap, Uri, Version};

use crate::config::PublicUrl;
use crate::uri::{self, UriError};

/// How the gateway decides the client-facing scheme and authority.
#[derive(Clone, Debug)]
pub(crate) struct UriPolicy {
    /// `public_url`.
    pub public_url: Option<PublicUrl>,
    /// `trust_forwarded_headers`.
    pub trust_forwarded: bool,
}

/// Why the host a request names is refused (RFC 9112 §3.2: a server MUST answer 400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// An HTTP/1.1 request without a `Host` field.
    Missing,
    /// More than one `Host` field line.
    Repeated,
    /// The `Host` value is not `host[:port]`.
    Host(UriError),
    /// The target's authority (absolute-form, HTTP/2 `:authority`) is not `host[:port]`:
    /// userinfo above all (RFC 9110 §4.2.4, RFC 9113 §8.3.1).
    Authority(UriError),
}

/// THE Host rule. The authority a request names: its target's (absolute-form, RFC 9112
/// §3.2.2, or HTTP/2's `:authority`), else its `Host`; `None` when it names none (HTTP/1.0
/// without `Host`, HTTP/2 without `:authority`). Refused: an HTTP/1.1 request without `Host`,
/// two `Host` fields, and a `Host` or target authority that is not exactly `host[:port]`
/// ([`crate::uri::check_authority`]: no userinfo, path, list, whitespace or empty value), whichever
/// of them is used.
pub(crate) fn authority<'a>(
    version: Version,
    uri: &'a Uri,
    headers: &'a HeaderMap,
) -> Result<Option<&'a str>, HostError> {
    let mut fields = headers.get_all(HOST).iter();
    let host = match (fields.next(), fields.next()) {
        (Some(_), Some(_)) => return Err(HostError::Repeated),
        (None, _) if version == Version::HTTP_11 => return Err(HostError::Missing),
        (None, _) => None,
        (Some(value), None) => {
            // Header values may hold obs-text; an authority is ASCII.
            let text = std::str::from_utf8(value.as_bytes())
                .map_err(|_| HostError::Host(UriError::InvalidChar('\u{fffd}')))?;
            uri::check_authority(text).map_err(HostError::Host)?;
            Some(text)
        }
    };
    match uri.authority() {
        Some(target) => {
            uri::check_authority(target.as_str()).map_err(HostError::Authority)?;
            Ok(Some(target.as_str()))
        }
        None => Ok(host),
    }
}

/// Builds `scheme://authority/path` for `htu`; `None` when the request names no authority
/// (or names it in a way [`authority`] refuses).
pub(crate) fn request_uri(
    policy: &UriPolicy,
    listener_scheme: &str,
    head: &Parts,
) -> Option<String> {
    let (uri, headers) = (&head.uri, &head.headers);
    let path = uri.path();
    if let Some(p) = &policy.public_url {
        return Some(format!("{}://{}{}", p.scheme, p.authority, path));
    }
    let host = authority(head.version, uri, headers).ok().flatten()?;
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

    /// `request_uri` of a request head: HTTP/1.1 when a Host is given, else HTTP/2.
    fn uri_of(policy: &UriPolicy, scheme: &str, uri: &Uri, headers: &HeaderMap) -> Option<String> {
        let mut head = http::Request::new(()).into_parts().0;
        head.uri = uri.clone();
        head.headers = headers.clone();
        head.version = if headers.contains_key(HOST) {
            Version::HTTP_11
        } else {
            Version::HTTP_2
        };
        request_uri(policy, scheme, &head)
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
        let got = uri_of(
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
        let got = uri_of(&policy(None, false), "https", &uri, &HeaderMap::new());
        assert_eq!(got.as_deref(), Some("https://api.example.com/x"));
    }

    #[test]
    fn public_url_wins_over_everything() {
        let uri: Uri = "/x".parse().unwrap();
        let headers = h(&[("host", "internal:8443"), ("x-forwarded-host", "evil")]);
        let got = uri_of(
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
        let got = uri_of(&policy(None, false), "http", &uri, &headers);
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
        let got = uri_of(&policy(None, true), "http", &uri, &headers);
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
        let got = uri_of(&policy(None, true), "http", &uri, &headers);
        assert_eq!(got.as_deref(), Some("https://internal:443/x"));
        let headers = h(&[("host", "[::1]"), ("x-forwarded-port", "9443")]);
        let got = uri_of(&policy(None, true), "http", &uri, &headers);
        assert_eq!(got.as_deref(), Some("http://[::1]:9443/x"));
    }

    #[test]
    fn no_authority_is_none() {
        let uri: Uri = "/x".parse().unwrap();
        assert_eq!(
            uri_of(&policy(None, false), "http", &uri, &HeaderMap::new()),
            None
        );
    }
}

#[cfg(test)]
mod host_rule {
    use super::*;

    fn headers(hosts: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for h in hosts {
            map.append(HOST, http::HeaderValue::from_static(h));
        }
        map
    }

    #[test]
    fn the_target_authority_wins_and_a_plain_host_is_used_otherwise() {
        let origin: Uri = "/x".parse().unwrap();
        let absolute: Uri = "http://api.example.com/x".parse().unwrap();
        let h = headers(&["internal:8443"]);
        assert_eq!(
            authority(Version::HTTP_11, &origin, &h),
            Ok(Some("internal:8443"))
        );
        assert_eq!(
            authority(Version::HTTP_11, &absolute, &h),
            Ok(Some("api.example.com"))
        );
        assert_eq!(
            authority(Version::HTTP_2, &absolute, &HeaderMap::new()),
            Ok(Some("api.example.com"))
        );
        assert_eq!(
            authority(Version::HTTP_10, &origin, &HeaderMap::new()),
            Ok(None)
        );
        assert_eq!(
            authority(Version::HTTP_2, &origin, &HeaderMap::new()),
            Ok(None)
        );
    }

    #[test]
    fn missing_repeated_and_malformed_hosts_are_refused() {
        let origin: Uri = "/x".parse().unwrap();
        assert_eq!(
            authority(Version::HTTP_11, &origin, &HeaderMap::new()),
            Err(HostError::Missing)
        );
        assert_eq!(
            authority(Version::HTTP_11, &origin, &headers(&["a", "a"])),
            Err(HostError::Repeated)
        );
        assert_eq!(
            authority(Version::HTTP_10, &origin, &headers(&["a", "b"])),
            Err(HostError::Repeated)
        );
        for bad in ["", "a, b", "u@a", "a/b", "a b"] {
            assert!(
                matches!(
                    authority(Version::HTTP_11, &origin, &headers(&[bad])),
                    Err(HostError::Host(_))
                ),
                "{bad:?}"
            );
        }
        let userinfo: Uri = "http://u:p@api.example.com/x".parse().unwrap();
        assert_eq!(
            authority(Version::HTTP_11, &userinfo, &headers(&["api.example.com"])),
            Err(HostError::Authority(UriError::Userinfo))
        );
        // A bad Host is refused even where the target's authority is used.
        let absolute: Uri = "http://api.example.com/x".parse().unwrap();
        assert!(authority(Version::HTTP_11, &absolute, &headers(&["a b"])).is_err());
    }
}

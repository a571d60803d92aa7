//! What the upstream sees of a request's headers: the DPoP proof, hop-by-hop headers and
//! client-sent identity headers removed; identity, `Authorization` and `X-Forwarded-*` set.
//! Pure: no I/O.
//!
//! Order matters in [`prepare_request`]: client-controlled headers are removed first and the
//! gateway's own values are set last, so nothing a client sends can pass for what the gateway
//! vouches for.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::{ForwardAuthorization, ForwardConfig, IdentityHeaders};
use crate::jose::Thumbprint;
use crate::token::TokenInfo;

/// The DPoP proof header (RFC 9449 §4.1); never forwarded.
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");
/// `X-Forwarded-For`: the chain of client addresses, ours appended.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the Host (or `:authority`) the client used.
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The hop-by-hop headers of RFC 9110 §7.6.1 (plus the legacy `Keep-Alive` and
/// `Proxy-Connection`, and the proxy credentials of §11.7, which are for this hop only).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// `Bearer …` or `DPoP …` (case-insensitive scheme), the schemes this gateway answers for.
fn is_token_scheme(value: &[u8]) -> bool {
    let scheme = value.split(|b| *b == b' ').next().unwrap_or_default();
    scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"dpop")
}

/// Headers a `Connection` header may not remove: they route and frame the request.
const NOT_NOMINABLE: [HeaderName; 2] = [header::HOST, header::CONTENT_LENGTH];

/// Where a request came from, as a client (or an earlier proxy) claims it: dropped unless
/// `trust_forwarded`, since only our own `X-Forwarded-*` values can be vouched for.
const CLIENT_FORWARDING: [HeaderName; 4] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-real-ip"),
    X_FORWARDED_FOR,
];

/// Headers the gateway sets, strips or frames the request with, besides the configured identity
/// headers: a client field whose name contains `_` and reads as one of these with `_` as `-`
/// is dropped ([`is_underscore_alias`]).
const ALIASED: [HeaderName; 8] = [
    DPOP,
    header::AUTHORIZATION,
    header::HOST,
    header::CONTENT_LENGTH,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    HeaderName::from_static("x-request-id"),
    header::EXPECT,
];

/// What [`prepare_request`] needs to know about the request and its caller.
pub(crate) struct ForwardContext<'a> {
    /// `forward`: the authorization mode and the identity header names.
    pub config: &'a ForwardConfig,
    /// The verified caller; `None` on `auth: none` routes.
    pub identity: Option<Identity<'a>>,
    /// The client's address (the TCP peer).
    pub client_addr: IpAddr,
    /// `"http"` or `"https"`, as the client used.
    pub proto: &'static str,
    /// `trust_forwarded_headers`: when false, the client's own `X-Forwarded-For` chain,
    /// `Forwarded`, `X-Forwarded-Port` and `X-Real-IP` are not passed on (they could be forged).
    pub trust_forwarded: bool,
    /// The Host (or `:authority`) the client used.
    pub host: Option<&'a HeaderValue>,
}

/// The caller of a request that passed the DPoP and token checks.
pub(crate) struct Identity<'a> {
    /// The access token as presented.
    pub token: &'a str,
    /// The identity header values made from it ([`identity_values`]).
    pub values: &'a IdentityValues,
}

/// The identity headers' values for one caller, each set only when its header is configured
/// and the token has the claim: made by [`identity_values`], which refuses what would not
/// arrive as it was issued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IdentityValues {
    /// `forward.identity_headers.subject`: `sub`.
    pub subject: Option<HeaderValue>,
    /// `forward.identity_headers.client_id`: `client_id`.
    pub client_id: Option<HeaderValue>,
    /// `forward.identity_headers.scope`: `scope`.
    pub scope: Option<HeaderValue>,
    /// `forward.identity_headers.jkt`: the proof key's thumbprint.
    pub jkt: Option<HeaderValue>,
    /// `forward.identity_headers.issuer`: the issuer whose entry validated the token.
    pub issuer: Option<HeaderValue>,
}

impl IdentityValues {
    /// Each configured identity header that has a value for this caller, with that value.
    pub(crate) fn headers<'a>(
        &'a self,
        names: &'a IdentityHeaders,
    ) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> {
        [
            (&names.subject, &self.subject),
            (&names.client_id, &self.client_id),
            (&names.scope, &self.scope),
            (&names.jkt, &self.jkt),
            (&names.issuer, &self.issuer),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.as_ref()?, value.as_ref()?)))
    }
}

/// Every identity header name, configured or not (`null` disables one).
fn identity_names(names: &IdentityHeaders) -> [&Option<HeaderName>; 5] {
    [
        &names.subject,
        &names.client_id,
        &names.scope,
        &names.jkt,
        &names.issuer,
    ]
}

/// A claim that would not reach the upstream as the token has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityClaimError {
    /// The claim (`sub`, `client_id`, `scope`).
    pub claim: &'static str,
    /// What is wrong with its value.
    pub why: ClaimValueError,
}

/// Why a claim's value cannot be an identity header's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimValueError {
    /// Leading or trailing whitespace: every field parser strips it (RFC 9110 §5.5), so
    /// `" admin"` would reach the API as `admin`.
    Whitespace,
    /// A control character (CR, LF, NUL, DEL, C1): not part of a field value (RFC 9110 §5.5).
    Control,
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): `Connection` and every header it names,
/// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
/// `Proxy-Authorization` and `Proxy-Authenticate`. For requests and responses alike.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let nominated = nominated(headers);
    remove_where(headers, |name| is_hop_by_hop(name, &nominated));
}

/// The headers a `Connection` header names, besides the usual `keep-alive` (hop-by-hop
/// anyway) and `close` (an option, no header): nothing is allocated for those.
fn nominated(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .filter(|name| !NOT_NOMINABLE.contains(name))
        .collect()
}

fn is_hop_by_hop(name: &HeaderName, nominated: &[HeaderName]) -> bool {
    HOP_BY_HOP.contains(name) || nominated.contains(name)
}

/// Removes every header `doomed` picks, in one pass over the headers present: a request has
/// a handful, while the names to drop are a dozen or more, and a `remove` per name hashes it
/// whether it is there or not.
pub(crate) fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    let found: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
    for name in found {
        headers.remove(name);
    }
}

/// The identity header values for a caller with these claims and proof key, for the headers
/// `names` configures (a claim no header carries is not looked at). Each value is the claim as
/// it is, or refused ([`identity_value`]).
pub(crate) fn identity_values(
    names: &IdentityHeaders,
    info: &TokenInfo,
    jkt: Option<Thumbprint>,
) -> Result<IdentityValues, IdentityClaimError> {
    let value = |name: &Option<HeaderName>, claim: &'static str, v: Option<&str>| match (name, v) {
        (Some(_), Some(v)) => identity_value(v)
            .map(Some)
            .map_err(|why| IdentityClaimError { claim, why }),
        _ => Ok(None),
    };
    Ok(IdentityValues {
        subject: value(&names.subject, "sub", info.sub.as_deref())?,
        client_id: value(&names.client_id, "client_id", info.client_id.as_deref())?,
        scope: value(&names.scope, "scope", info.scope.as_deref())?,
        jkt: match (&names.jkt, jkt) {
            // base64url: always a clean value.
            (Some(_), Some(t)) => HeaderValue::from_str(&t.to_string()).ok(),
            _ => None,
        },
        // The configured issuer's name, not the token's text (they are equal once checked).
        issuer: value(&names.issuer, "iss", info.iss.as_deref())?,
    })
}

/// A claim as a header value, exactly: refused with leading or trailing whitespace (Unicode's
/// included) or any control character; otherwise `%` and every non-ASCII byte are
/// percent-encoded (UTF-8, upper-case hex, RFC 3986 §2.1), so no two claims give one value and
/// the value is plain visible ASCII and spaces.
pub(crate) fn identity_value(claim: &str) -> Result<HeaderValue, ClaimValueError> {
    if claim.starts_with(char::is_whitespace) || claim.ends_with(char::is_whitespace) {
        return Err(ClaimValueError::Whitespace);
    }
    if claim.chars().any(char::is_control) {
        return Err(ClaimValueError::Control);
    }
    let encode = |b: u8| b == b'%' || !b.is_ascii();
    if !claim.bytes().any(encode) {
        return HeaderValue::from_str(claim).map_err(|_| ClaimValueError::Control);
    }
    let mut out = String::with_capacity(claim.len() * 3);
    for b in claim.bytes() {
        if encode(b) {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
    HeaderValue::from_str(&out).map_err(|_| ClaimValueError::Control)
}

/// Rewrites a request's headers for the upstream: removes `DPoP`, hop-by-hop headers and
/// client-sent copies of every configured identity header (on every route, `auth: none` too);
/// sets `Authorization` per `forward.authorization` and the identity headers when the caller
/// is known; appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto`/`-Host`.
pub(crate) fn prepare_request(headers: &mut HeaderMap, ctx: &ForwardContext<'_>) {
    // 1. What the client sent that the upstream must not see or must not trust: the proof,
    // hop-by-hop headers, identity headers and (unless trusted) forwarding claims.
    let names = &ctx.config.identity_headers;
    let identity_names = identity_names(names);
    let nominated = nominated(headers);
    remove_where(headers, |name| {
        *name == DPOP
            || is_hop_by_hop(name, &nominated)
            || identity_names.iter().any(|n| n.as_ref() == Some(name))
            || (!ctx.trust_forwarded && CLIENT_FORWARDING.contains(name))
            || is_underscore_alias(name, &identity_names)
    });

    // 2. What the gateway vouches for. Without a verified caller (auth: none, a preflight),
    // a Bearer or DPoP token is removed unless `keep`: the upstream trusts Bearer tokens from
    // us, and an unchecked one could be a stolen DPoP-bound token. Other schemes pass.
    if ctx.identity.is_none()
        && ctx.config.authorization != ForwardAuthorization::Keep
        && headers
            .get(header::AUTHORIZATION)
            .is_some_and(|v| is_token_scheme(v.as_bytes()))
    {
        headers.remove(header::AUTHORIZATION);
    }
    if let Some(identity) = &ctx.identity {
        set_authorization(headers, ctx.config.authorization, identity.token);
        for (name, value) in identity.values.headers(names) {
            headers.insert(name.clone(), value.clone());
        }
    }
    if let Some(auth) = headers.get_mut(header::AUTHORIZATION) {
        auth.set_sensitive(true);
    }

    // 3. Where the request came from.
    append_forwarded_for(headers, ctx.client_addr);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(ctx.proto));
    match ctx.host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
}

/// Whether `name` contains `_` and, with `_` read as `-`, names a header the gateway sets,
/// strips or frames the request with (the identity headers included). CGI and the servers
/// modelled on it (RFC 3875 §4.1.18: WSGI, Rack, PHP) turn both `X-Auth-Subject` and
/// `X_Auth_Subject` into `HTTP_X_AUTH_SUBJECT`, so a client's `X_Auth_Subject: admin` would
/// pass for the gateway's own header (Puma CVE-2024-45614, httpoxy).
fn is_underscore_alias(name: &HeaderName, identity: &[&Option<HeaderName>]) -> bool {
    let name = name.as_str().as_bytes();
    let reads_as = |protected: &HeaderName| same_field(name, protected.as_str().as_bytes());
    // An identity header may itself be configured with `_`: its `-` spelling is an alias too.
    if identity.iter().filter_map(|n| n.as_ref()).any(reads_as) {
        return true;
    }
    memchr::memchr(b'_', name).is_some()
        && (ALIASED.iter().any(reads_as)
            || HOP_BY_HOP.iter().any(reads_as)
            || CLIENT_FORWARDING.iter().any(reads_as))
}

/// Whether `name` is one of the configured identity headers, or reads as one with every `_`
/// read as `-` (the decision listener refuses a request that carries one: the ingress, not the
/// gateway, builds the upstream's request there, and must not pass a client's copy on).
pub(crate) fn names_identity(name: &HeaderName, names: &IdentityHeaders) -> bool {
    identity_names(names)
        .into_iter()
        .flatten()
        .any(|n| same_field(name.as_str().as_bytes(), n.as_str().as_bytes()))
}

/// `a` and `b` (lower-case field names) are the same with every `_` read as `-`.
fn same_field(a: &[u8], b: &[u8]) -> bool {
    let fold = |c: u8| if c == b'_' { b'-' } else { c };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| fold(*x) == fold(*y))
}

/// Applies `forward.authorization` for a verified caller.
fn set_authorization(headers: &mut HeaderMap, mode: ForwardAuthorization, token: &str) {
    match mode {
        ForwardAuthorization::Bearer => match HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                headers.insert(header::AUTHORIZATION, value);
            }
            // Unreachable for a token read from a header; never forward a half-rewritten one.
            Err(_) => {
                headers.remove(header::AUTHORIZATION);
            }
        },
        ForwardAuthorization::Keep => {}
        ForwardAuthorization::Strip => {
            headers.remove(header::AUTHORIZATION);
        }
    }
}

/// `X-Forwarded-For: <existing>, <client>`: earlier hops are kept, in order, in one value.
fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let mut value: Vec<u8> = Vec::with_capacity(48);
    for existing in headers.get_all(&X_FORWARDED_FOR) {
        value.extend_from_slice(existing.as_bytes());
        value.extend_from_slice(b", ");
    }
    push_ip(&mut value, client);
    // The buffer becomes the value without a copy; an address alone is always a valid value.
    let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).unwrap_or_else(|_| {
        let mut alone = Vec::new();
        push_ip(&mut alone, client);
        HeaderValue::from_bytes(&alone).unwrap_or(HeaderValue::from_static("unknown"))
    });
    headers.insert(X_FORWARDED_FOR, value);
}

/// `ip` as `Display` writes it; IPv4 by hand (every request formats the client's address).
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
mod tests {
    use std::net::Ipv4Addr;

    use crate::config::IdentityHeaders;

    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

    fn config(authorization: ForwardAuthorization) -> ForwardConfig {
        ForwardConfig {
            authorization,
            identity_headers: IdentityHeaders {
                subject: Some(HeaderName::from_static("x-auth-subject")),
                client_id: Some(HeaderName::from_static("x-auth-client-id")),
                scope: Some(HeaderName::from_static("x-auth-scope")),
                jkt: Some(HeaderName::from_static("x-dpop-jkt")),
                issuer: Some(HeaderName::from_static("x-auth-issuer")),
            },
        }
    }

    fn info() -> TokenInfo {
        TokenInfo {
            sub: Some("alice".into()),
            client_id: Some("app".into()),
            scope: Some("read write".into()),
            jkt: None,
            exp: None,
            ..TokenInfo::default()
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    fn ctx<'a>(config: &'a ForwardConfig, identity: Option<Identity<'a>>) -> ForwardContext<'a> {
        ForwardContext {
            config,
            identity,
            client_addr: CLIENT,
            proto: "https",
            trust_forwarded: true,
            host: None,
        }
    }

    #[test]
    fn client_addresses_are_written_as_display_writes_them() {
        let mut ips: Vec<IpAddr> = [0u8, 1, 9, 10, 42, 99, 100, 199, 200, 255]
            .iter()
            .flat_map(|&a| [0u8, 7, 10, 100, 255].map(|b| IpAddr::V4(Ipv4Addr::new(a, b, b, a))))
            .collect();
        ips.push("::1".parse().unwrap());
        ips.push("2001:db8::7:0:1".parse().unwrap());
        ips.push("::ffff:192.0.2.1".parse().unwrap());
        for ip in ips {
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn untrusted_forwarding_headers_from_the_client_are_replaced() {
        let cfg = config(ForwardAuthorization::Keep);
        let mut map = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-port", "443"),
            ("x-real-ip", "198.51.100.1"),
        ]);
        let mut c = ctx(&cfg, None);
        c.trust_forwarded = false;
        prepare_request(&mut map, &c);
        assert_eq!(get(&map, "x-forwarded-for"), Some("203.0.113.7"));
        for gone in ["forwarded", "x-forwarded-port", "x-real-ip"] {
            assert!(map.get(gone).is_none(), "{gone}");
        }
    }

    fn get<'m>(map: &'m HeaderMap, name: &str) -> Option<&'m str> {
        map.get(name).map(|v| v.to_str().unwrap())
    }

    // --- strip_hop_by_hop ---

    #[test]
    fn hop_by_hop_headers_are_removed_and_end_to_end_ones_kept() {
        let mut map = headers(&[
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("proxy-authenticate", "Basic"),
            ("content-type", "application/json"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut map);
        let mut left: Vec<_> = map.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "content-type"]);
    }

    #[test]
    fn connection_and_the_headers_it_names_are_removed() {
        let mut map = headers(&[
            ("connection", "close, X-Secret-Hop"),
            ("connection", " x-other "),
            ("x-secret-hop", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
        ]);
        strip_hop_by_hop(&mut map);
        assert!(map.get("connection").is_none());
        assert!(map.get("x-secret-hop").is_none());
        assert!(map.get("x-other").is_none());
        assert_eq!(get(&map, "x-kept"), Some("3"));
    }

    #[test]
    fn connection_cannot_remove_host_or_content_length() {
        let mut map = headers(&[
            ("connection", "host, content-length"),
            ("host", "api.example.com"),
            ("content-length", "3"),
        ]);
        strip_hop_by_hop(&mut map);
        assert_eq!(get(&map, "host"), Some("api.example.com"));
        assert_eq!(get(&map, "content-length"), Some("3"));
    }

    #[test]
    fn hop_by_hop_stripping_applies_to_responses() {
        let mut map = headers(&[
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut map);
        assert!(map.get("transfer-encoding").is_none());
        assert_eq!(get(&map, "content-type"), Some("text/plain"));
    }

    // --- prepare_request ---

    #[test]
    fn every_dpop_header_is_removed() {
        let cfg = config(ForwardAuthorization::Keep);
        let mut map = headers(&[("dpop", "proof1"), ("dpop", "proof2"), ("accept", "*/*")]);
        prepare_request(&mut map, &ctx(&cfg, None));
        assert!(map.get("dpop").is_none());
        assert_eq!(get(&map, "accept"), Some("*/*"));
    }

    #[test]
    fn hop_by_hop_headers_are_removed_from_requests() {
        let cfg = config(ForwardAuthorization::Keep);
        let mut map = headers(&[("connection", "x-hop"), ("x-hop", "1"), ("te", "trailers")]);
        prepare_request(&mut map, &ctx(&cfg, None));
        assert!(map.get("x-hop").is_none());
        assert!(map.get("te").is_none());
        assert!(map.get("connection").is_none());
    }

    #[test]
    fn client_sent_identity_headers_are_removed_on_auth_none_routes() {
        let cfg = config(ForwardAuthorization::Bearer);
        let mut map = headers(&[
            ("x-auth-subject", "admin"),
            ("x-auth-client-id", "evil"),
            ("x-auth-scope", "admin"),
            ("x-dpop-jkt", "forged"),
        ]);
        prepare_request(&mut map, &ctx(&cfg, None));
        for name in [
            "x-auth-subject",
            "x-auth-client-id",
            "x-auth-scope",
            "x-dpop-jkt",
        ] {
            assert!(map.get(name).is_none(), "{name} must not pass");
        }
    }

    #[test]
    fn underscore_aliases_of_gateway_headers_are_removed_and_other_underscores_kept() {
        let cfg = config(ForwardAuthorization::Bearer);
        let mut map = headers(&[
            ("x_auth_subject", "admin"),
            ("x-auth_client-id", "evil"),
            ("x_dpop_jkt", "forged"),
            ("x_forwarded_for", "10.0.0.1"),
            ("x_forwarded_host", "evil.example"),
            ("x_real_ip", "10.0.0.1"),
            ("content_length", "5"),
            ("transfer_encoding", "chunked"),
            ("proxy_authorization", "Basic x"),
            ("x_request_id", "forged"),
            ("x_tenant_id", "acme"),
            ("content-length", "3"),
        ]);
        prepare_request(&mut map, &ctx(&cfg, None));
        let mut left: Vec<_> = map.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "content-length",
                "x-forwarded-for",
                "x-forwarded-proto",
                "x_tenant_id"
            ]
        );
        assert_eq!(get(&map, "x-forwarded-for"), Some("203.0.113.7"));
    }

    #[test]
    fn an_identity_header_configured_with_underscores_is_protected_under_both_spellings() {
        let mut cfg = config(ForwardAuthorization::Bearer);
        cfg.identity_headers.subject = Some(HeaderName::from_static("x_user"));
        let mut map = headers(&[("x_user", "admin"), ("x-user", "admin")]);
        prepare_request(&mut map, &ctx(&cfg, None));
        assert!(map.get("x_user").is_none());
        assert!(map.get("x-user").is_none());
    }

    #[test]
    fn client_sent_identity_headers_are_replaced_by_the_tokens() {
        let cfg = config(ForwardAuthorization::Bearer);
        let info = info();
        let values = identity_values(&cfg.identity_headers, &info, None).unwrap();
        let identity = Identity {
            token: "tok",
            values: &values,
        };
        let mut map = headers(&[("x-auth-subject", "admin"), ("x-auth-subject", "root")]);
        prepare_request(&mut map, &ctx(&cfg, Some(identity)));
        let subjects: Vec<_> = map.get_all("x-auth-subject").iter().collect();
        assert_eq!(subjects, ["alice"]);
        assert_eq!(get(&map, "x-auth-client-id"), Some("app"));
        assert_eq!(get(&map, "x-auth-scope"), Some("read write"));
        assert!(map.get("x-dpop-jkt").is_none(), "no jkt given");
    }

    #[test]
    fn jkt_header_is_set_when_the_proof_key_is_known() {
        let cfg = config(ForwardAuthorization::Bearer);
        let info = info();
        let jkt = Thumbprint::from_bytes([7; 32]);
        let values = identity_values(&cfg.identity_headers, &info, Some(jkt)).unwrap();
        let identity = Identity {
            token: "tok",
            values: &values,
        };
        let mut map = HeaderMap::new();
        prepare_request(&mut map, &ctx(&cfg, Some(identity)));
        assert_eq!(get(&map, "x-dpop-jkt"), Some(jkt.to_string().as_str()));
    }

    #[test]
    fn unconfigured_identity_headers_are_neither_set_nor_removed() {
        let mut cfg = config(ForwardAuthorization::Bearer);
        cfg.identity_headers.scope = None;
        let info = info();
        let values = identity_values(&cfg.identity_headers, &info, None).unwrap();
        let identity = Identity {
            token: "tok",
            values: &values,
        };
        let mut map = headers(&[("x-auth-scope", "client-said")]);
        prepare_request(&mut map, &ctx(&cfg, Some(identity)));
        assert_eq!(get(&map, "x-auth-scope"), Some("client-said"));
        assert_eq!(get(&map, "x-auth-subject"), Some("alice"));
    }

    #[test]
    fn a_claim_that_is_not_a_clean_header_value_is_refused_not_left_out() {
        let cfg = config(ForwardAuthorization::Bearer);
        for (claim, value, why) in [
            ("sub", " admin", ClaimValueError::Whitespace),
            ("sub", "admin\t", ClaimValueError::Whitespace),
            ("sub", "\u{3000}admin", ClaimValueError::Whitespace),
            ("sub", "line\nbreak", ClaimValueError::Control),
            ("sub", "a\r\nx-admin: 1", ClaimValueError::Control),
            ("sub", "nul\0", ClaimValueError::Control),
            ("sub", "del\u{7f}", ClaimValueError::Control),
            ("sub", "c1\u{9b}x", ClaimValueError::Control),
            ("client_id", " app", ClaimValueError::Whitespace),
            ("scope", "read\u{b}write", ClaimValueError::Control),
        ] {
            let mut info = info();
            match claim {
                "sub" => info.sub = Some(value.into()),
                "client_id" => info.client_id = Some(value.into()),
                _ => info.scope = Some(value.into()),
            }
            assert_eq!(
                identity_values(&cfg.identity_headers, &info, None),
                Err(IdentityClaimError { claim, why }),
                "{claim}: {value:?}"
            );
        }
    }

    #[test]
    fn a_claim_no_header_carries_is_not_judged() {
        let mut cfg = config(ForwardAuthorization::Bearer);
        cfg.identity_headers.subject = None;
        let mut info = info();
        info.sub = Some(" admin\n".into());
        let values = identity_values(&cfg.identity_headers, &info, None).unwrap();
        assert_eq!(values.subject, None);
        assert_eq!(values.client_id.unwrap(), "app");
    }

    #[test]
    fn identity_values_encode_percent_and_non_ascii_and_nothing_else() {
        for (claim, sent) in [
            ("alice", "alice"),
            ("alice smith", "alice smith"),
            ("", ""),
            ("a@b.example|x:y/z?q=\"1\"", "a@b.example|x:y/z?q=\"1\""),
            ("100%", "100%25"),
            ("%41", "%2541"),
            ("josé", "jos%C3%A9"),
            ("日本", "%E6%97%A5%E6%9C%AC"),
            ("\u{200b}x", "%E2%80%8Bx"),
        ] {
            assert_eq!(identity_value(claim).unwrap(), sent, "{claim:?}");
        }
    }

    #[test]
    fn bearer_mode_rewrites_authorization_and_marks_it_sensitive() {
        let cfg = config(ForwardAuthorization::Bearer);
        let info = info();
        let values = identity_values(&cfg.identity_headers, &info, None).unwrap();
        let identity = Identity {
            token: "tok.en",
            values: &values,
        };
        let mut map = headers(&[("authorization", "DPoP tok.en")]);
        prepare_request(&mut map, &ctx(&cfg, Some(identity)));
        let auth = map.get("authorization").unwrap();
        assert_eq!(auth, "Bearer tok.en");
        assert!(auth.is_sensitive());
    }

    #[test]
    fn keep_mode_forwards_authorization_unchanged_and_sensitive() {
        let cfg = config(ForwardAuthorization::Keep);
        let info = info();
        let values = identity_values(&cfg.identity_headers, &info, None).unwrap();
        let identity = Identity {
            token: "tok",
            values: &values,
        };
        let mut map = headers(&[("authorization", "DPoP tok")]);
        prepare_request(&mut map, &ctx(&cfg, Some(identity)));
        let auth = map.get("authorization").unwrap();
        assert_eq!(auth, "DPoP tok");
        assert!(auth.is_sensitive());
    }

    #[test]
    fn strip_mode_removes_authorization() {
        let cfg = config(ForwardAuthorization::Strip);
        let info = info();
        let values = identity_values(&cfg.identity_headers, &info, None).unwrap();
        let identity = Identity {
            token: "tok",
            values: &values,
        };
        let mut map = headers(&[("authorization", "DPoP tok")]);
        prepare_request(&mut map, &ctx(&cfg, Some(identity)));
        assert!(map.get("authorization").is_none());
    }

    #[test]
    fn without_identity_other_schemes_pass_whatever_the_mode() {
        for mode in [ForwardAuthorization::Bearer, ForwardAuthorization::Strip] {
            let cfg = config(mode);
            let mut map = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
            prepare_request(&mut map, &ctx(&cfg, None));
            assert_eq!(get(&map, "authorization"), Some("Basic dXNlcjpwdw=="));
        }
    }

    #[test]
    fn without_identity_unchecked_tokens_are_removed_unless_keep() {
        for (mode, kept) in [
            (ForwardAuthorization::Bearer, false),
            (ForwardAuthorization::Strip, false),
            (ForwardAuthorization::Keep, true),
        ] {
            let cfg = config(mode);
            for value in ["Bearer stolen", "bearer stolen", "DPoP stolen"] {
                let mut map = headers(&[("authorization", value)]);
                prepare_request(&mut map, &ctx(&cfg, None));
                assert_eq!(map.contains_key("authorization"), kept, "{mode:?} {value}");
            }
        }
    }

    #[test]
    fn client_address_is_appended_to_x_forwarded_for() {
        let cfg = config(ForwardAuthorization::Keep);
        let mut map = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        prepare_request(&mut map, &ctx(&cfg, None));
        let all: Vec<_> = map.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["198.51.100.1, 10.0.0.1, 203.0.113.7"]);
    }

    #[test]
    fn x_forwarded_for_is_created_when_absent() {
        let cfg = config(ForwardAuthorization::Keep);
        let mut map = HeaderMap::new();
        let mut c = ctx(&cfg, None);
        c.client_addr = "2001:db8::1".parse().unwrap();
        prepare_request(&mut map, &c);
        assert_eq!(get(&map, "x-forwarded-for"), Some("2001:db8::1"));
    }

    #[test]
    fn x_forwarded_proto_and_host_replace_client_sent_ones() {
        let cfg = config(ForwardAuthorization::Keep);
        let host = HeaderValue::from_static("api.example.com");
        let mut map = headers(&[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.example"),
        ]);
        let mut c = ctx(&cfg, None);
        c.host = Some(&host);
        prepare_request(&mut map, &c);
        assert_eq!(get(&map, "x-forwarded-proto"), Some("https"));
        assert_eq!(get(&map, "x-forwarded-host"), Some("api.example.com"));
    }

    #[test]
    fn client_sent_x_forwarded_host_is_removed_when_the_host_is_unknown() {
        let cfg = config(ForwardAuthorization::Keep);
        let mut map = headers(&[("x-forwarded-host", "evil.example")]);
        prepare_request(&mut map, &ctx(&cfg, None));
        assert!(map.get("x-forwarded-host").is_none());
    }
}

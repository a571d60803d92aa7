//! The Host a request names (RFC 9112 §3.2, RFC 9113 §8.3.1, RFC 9110 §4.2.4): a request whose
//! Host is missing (HTTP/1.1), repeated, a list, or not a plain `host[:port]` is refused with
//! 400 `invalid_request` on every route, `auth: none` included, and the upstream sees nothing;
//! so is an authority with userinfo, in an absolute-form target or in HTTP/2's `:authority`.

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

use crate::support::client::{self, Mode};
use crate::support::{json_body, proof, www_error, TestGateway};

/// A raw HTTP/1.x request: `target`, then `head` lines (each ending in CRLF), then the
/// credentials when given, then `connection: close`.
fn raw_request(version: &str, target: &str, head: &str, creds: Option<(&str, &str)>) -> String {
    let creds = creds.map_or_else(String::new, |(token, proof)| {
        format!("authorization: DPoP {token}\r\ndpop: {proof}\r\n")
    });
    format!("GET {target} HTTP/{version}\r\n{head}{creds}connection: close\r\n\r\n")
}

/// The status line and the JSON body of a raw response.
fn status_and_error(out: &[u8]) -> (String, serde_json::Value) {
    let text = String::from_utf8_lossy(out);
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn a_bad_host_is_refused_on_every_route_and_never_forwarded() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let host = gw.addr.to_string();
    let cases: Vec<(&str, String)> = vec![
        ("no Host on HTTP/1.1", String::new()),
        (
            "two Host fields",
            format!("host: {host}\r\nhost: evil.example\r\n"),
        ),
        ("a Host list", format!("host: {host}, evil.example\r\n")),
        (
            "a Host list without space",
            format!("host: {host},evil\r\n"),
        ),
        ("userinfo in Host", format!("host: user@{host}\r\n")),
        ("a path in Host", format!("host: {host}/x\r\n")),
        ("an empty Host", "host: \r\n".to_owned()),
        ("embedded whitespace", format!("host: a b{host}\r\n")),
        ("embedded tab", format!("host: a\tb{host}\r\n")),
        ("a bad port", "host: 127.0.0.1:8x\r\n".to_owned()),
    ];
    for path in ["/open/x", "/resource"] {
        for (what, head) in &cases {
            let token = gw.issuer.token_for(&key);
            let proof = proof(&key, "GET", &gw.url(path), Some(&token));
            let creds = (path == "/resource").then_some((token.as_str(), proof.as_str()));
            let out = client::raw(gw.addr, raw_request("1.1", path, head, creds).as_bytes()).await;
            let (status, body) = status_and_error(&out);
            assert!(
                status.starts_with("HTTP/1.1 400"),
                "{path}, {what}: {status}"
            );
            assert_eq!(body["error"], "invalid_request", "{path}, {what}: {body}");
        }
        // Absolute form: the target's authority is the host (RFC 9112 §3.2.2); with userinfo
        // it is refused whatever Host says (RFC 9110 §4.2.4).
        let url = gw.url(path).replace("://", "://user:pw@");
        let token = gw.issuer.token_for(&key);
        let proof = proof(&key, "GET", &gw.url(path), Some(&token));
        let creds = (path == "/resource").then_some((token.as_str(), proof.as_str()));
        let raw = raw_request("1.1", &url, &format!("host: {host}\r\n"), creds);
        let (status, body) = status_and_error(&client::raw(gw.addr, raw.as_bytes()).await);
        assert!(
            status.starts_with("HTTP/1.1 400"),
            "{path}, absolute: {status}"
        );
        assert_eq!(body["error"], "invalid_request", "{path}, absolute: {body}");
    }
    assert!(
        gw.upstream.requests().is_empty(),
        "{:#?}",
        gw.upstream.requests()
    );
}

#[tokio::test]
async fn userinfo_in_the_http2_authority_is_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let authority = format!("user@{}", gw.addr);
    let resp = gw
        .call("GET", "/open/x")
        .set_header("host", &authority)
        .mode(Mode::H2c)
        .send()
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_request"));
    assert_eq!(json_body(&resp)["error"], "invalid_request");
    let resp = gw
        .authorized(&key, "GET", "/resource")
        .set_header("host", &authority)
        .mode(Mode::H2c)
        .send()
        .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_request"));
    assert!(gw.upstream.requests().is_empty());
}

#[tokio::test]
async fn plain_hosts_pass_and_the_upstream_gets_exactly_one() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let port = gw.addr.port();
    for host in [
        gw.addr.to_string(),
        format!("LOCALHOST:{port}"),
        format!("[::1]:{port}"),
        "api.example.com".to_owned(),
    ] {
        let raw = raw_request("1.1", "/open/x", &format!("host: {host}\r\n"), None);
        let (status, _) = status_and_error(&client::raw(gw.addr, raw.as_bytes()).await);
        assert!(status.starts_with("HTTP/1.1 200"), "{host}: {status}");
    }
    // HTTP/1.0 needs no Host (RFC 9112 §3.2 asks it of HTTP/1.1): the upstream's is sent.
    let raw = raw_request("1.0", "/open/x", "", None);
    let (status, _) = status_and_error(&client::raw(gw.addr, raw.as_bytes()).await);
    assert!(status.starts_with("HTTP/1.0 200"), "HTTP/1.0: {status}");
    // HTTP/2 with a plain :authority, on a protected route.
    let resp = gw
        .authorized(&key, "GET", "/resource")
        .mode(Mode::H2c)
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 6);
    for r in &seen {
        assert_eq!(r.headers.get_all("host").iter().count(), 1, "{r:?}");
    }
    assert_eq!(
        seen[1].headers["host"],
        format!("LOCALHOST:{port}").as_str()
    );
    assert_eq!(
        seen[4].headers["host"],
        gw.upstream.addr().to_string().as_str()
    );
    assert_eq!(seen[5].headers["host"], gw.addr.to_string().as_str());
}

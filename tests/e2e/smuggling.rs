//! Request smuggling over HTTP/1.1 (RFC 9112 §6.1, §6.3; RFC 9110 §5.5): framing the gateway
//! and the upstream could read differently, and request-target forms (RFC 9112 §3.2). The
//! bodies here hide a request for `/admin/hidden`, a protected route: in every case the client
//! gets the status named, and the upstream never receives the hidden request.

use crate::support::client;
use crate::support::TestGateway;

/// A request hidden in a body: `/admin` needs a proof.
const HIDDEN: &str = "GET /admin/hidden HTTP/1.1\r\nhost: a\r\n\r\n";

/// The status line of every response in `out`.
fn statuses(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1."))
        .map(str::to_owned)
        .collect()
}

/// Sends each `(what, expected status, bytes)` on its own connection: the client gets exactly
/// one response, with that status, and the upstream never the hidden request. Returns what the
/// upstream received for each.
async fn run(
    gw: &TestGateway,
    cases: &[(&str, &str, String)],
) -> Vec<Vec<crate::support::upstream::Seen>> {
    let mut all = Vec::new();
    for (what, status, raw) in cases {
        let before = gw.upstream.requests().len();
        let out = client::raw(gw.addr, raw.as_bytes()).await;
        let seen = gw.upstream.requests()[before..].to_vec();
        let got = statuses(&out);
        assert_eq!(got.len(), 1, "{what}: one response, then closed: {got:?}");
        assert!(
            got[0].starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {got:?}"
        );
        assert!(
            !seen.iter().any(|r| r.uri.contains("hidden")),
            "{what}: the upstream got the hidden request: {seen:?}"
        );
        if !status.starts_with('2') {
            assert!(seen.is_empty(), "{what}: refused but forwarded: {seen:?}");
        }
        all.push(seen);
    }
    all
}

#[tokio::test]
async fn content_length_and_transfer_encoding_combinations_cannot_hide_a_request() {
    let gw = TestGateway::start().await;
    let last_chunk_then_hidden = format!("0\r\n\r\n{HIDDEN}");
    let post = "POST /open/echo-size HTTP/1.1\r\nhost: a\r\n";
    let cases = vec![
        (
            "CL.TE: Content-Length covers a request after the last chunk",
            "200",
            format!(
                "{post}content-length: {}\r\ntransfer-encoding: chunked\r\n\r\n{last_chunk_then_hidden}",
                last_chunk_then_hidden.len()
            ),
        ),
        (
            "TE.CL: Transfer-Encoding first, a short Content-Length",
            "200",
            format!(
                "{post}transfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n{last_chunk_then_hidden}"
            ),
        ),
        (
            "two different Content-Length fields",
            "400",
            format!(
                "{post}content-length: 0\r\ncontent-length: {}\r\n\r\n{HIDDEN}",
                HIDDEN.len()
            ),
        ),
        (
            "a Content-Length list of different values",
            "400",
            format!("{post}content-length: 0, {}\r\n\r\n{HIDDEN}", HIDDEN.len()),
        ),
        (
            "a Content-Length with a sign",
            "400",
            format!("{post}content-length: +{}\r\n\r\n{HIDDEN}", HIDDEN.len()),
        ),
        (
            "Transfer-Encoding: chunked, chunked",
            "501",
            format!("{post}transfer-encoding: chunked, chunked\r\n\r\n{last_chunk_then_hidden}"),
        ),
        (
            "Transfer-Encoding: xchunked with a Content-Length",
            "400",
            format!(
                "{post}transfer-encoding: xchunked\r\ncontent-length: {}\r\n\r\n{last_chunk_then_hidden}",
                last_chunk_then_hidden.len()
            ),
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            "400",
            format!(
                "POST /open/echo-size HTTP/1.0\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n{last_chunk_then_hidden}"
            ),
        ),
        (
            "a chunk size line ended by a bare LF",
            "400",
            format!("{post}transfer-encoding: chunked\r\n\r\n5;x\n{HIDDEN}"),
        ),
    ];
    let seen = run(&gw, &cases).await;
    // With both, Transfer-Encoding wins (RFC 9112 §6.3): an empty body, the upstream gets a
    // request framed one way only, and the connection closes after the response, so the bytes
    // after the last chunk are never read as a request.
    for forwarded in &seen[..2] {
        assert_eq!(forwarded.len(), 1);
        let r = &forwarded[0];
        assert_eq!(r.body_len, 0);
        assert!(
            !(r.headers.contains_key("content-length")
                && r.headers.contains_key("transfer-encoding")),
            "{:?}",
            r.headers
        );
    }
}

#[tokio::test]
async fn obs_fold_and_malformed_field_lines_are_refused() {
    let gw = TestGateway::start().await;
    let cases = vec![
        (
            "obs-fold continuing a header",
            "400",
            "GET /open/x HTTP/1.1\r\nhost: a\r\nx-a: 1\r\n transfer-encoding: chunked\r\n\r\n"
                .to_owned(),
        ),
        (
            "obs-fold continuing Content-Length",
            "400",
            format!(
                "POST /open/x HTTP/1.1\r\nhost: a\r\ncontent-length:\r\n {}\r\n\r\n{HIDDEN}",
                HIDDEN.len()
            ),
        ),
        (
            "whitespace before the colon",
            "400",
            format!(
                "POST /open/x HTTP/1.1\r\nhost: a\r\ncontent-length : {}\r\n\r\n{HIDDEN}",
                HIDDEN.len()
            ),
        ),
        (
            "a field line without a colon",
            "400",
            "GET /open/x HTTP/1.1\r\nhost: a\r\nx-no-colon\r\n\r\n".to_owned(),
        ),
        (
            "a NUL in a value",
            "400",
            "GET /open/x HTTP/1.1\r\nhost: a\r\nx-a: a\0b\r\n\r\n".to_owned(),
        ),
        (
            "a bare CR in a value",
            "400",
            "GET /open/x HTTP/1.1\r\nhost: a\r\nx-a: a\rb\r\n\r\n".to_owned(),
        ),
    ];
    run(&gw, &cases).await;
}

#[tokio::test]
async fn absolute_asterisk_and_authority_forms_are_routed_by_their_path_or_refused() {
    let gw = TestGateway::start().await;
    let close = "connection: close\r\n\r\n";
    let cases = vec![
        (
            "absolute-form to a protected path",
            "401",
            format!("GET http://a/admin/hidden HTTP/1.1\r\nhost: a\r\n{close}"),
        ),
        (
            "absolute-form naming another host",
            "401",
            format!("GET http://evil.example/admin/hidden HTTP/1.1\r\nhost: a\r\n{close}"),
        ),
        (
            "absolute-form with another scheme",
            "401",
            format!("GET ftp://a/admin/hidden HTTP/1.1\r\nhost: a\r\n{close}"),
        ),
        (
            "asterisk-form OPTIONS (no route: needs credentials)",
            "401",
            format!("OPTIONS * HTTP/1.1\r\nhost: a\r\n{close}"),
        ),
        (
            "asterisk-form GET",
            "401",
            format!("GET * HTTP/1.1\r\nhost: a\r\n{close}"),
        ),
        (
            "authority-form CONNECT",
            "401",
            format!("CONNECT 127.0.0.1:1 HTTP/1.1\r\nhost: 127.0.0.1:1\r\n{close}"),
        ),
        (
            "authority-form on GET",
            "401",
            format!("GET a:80 HTTP/1.1\r\nhost: a\r\n{close}"),
        ),
        (
            "a path without its leading slash",
            "400",
            format!("GET admin/hidden HTTP/1.1\r\nhost: a\r\n{close}"),
        ),
    ];
    run(&gw, &cases).await;
}

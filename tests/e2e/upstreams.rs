//! Several upstreams: routes that name them, `strip_prefix`, HTTPS upstreams behind a private
//! CA (trusted, untrusted, another name, mTLS), HTTP/2 to the upstream (ALPN `h2`, prior
//! knowledge) with trailers passed to the client, and the per-upstream metrics.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};

use crate::support::client::{self, Mode};
use crate::support::gateway::Issuer;
use crate::support::tls::TestPki;
use crate::support::upstream::Upstream;
use crate::support::{www_error, Options, TestGateway};
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

fn key() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).expect("key")
}

/// A metric sample's value, `None` when the series is absent.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A gateway whose default upstream is `upstream` (its URL and extra `upstream:` lines
/// given), with `extra` top-level YAML and `routes`.
async fn gateway(
    upstream: Upstream,
    url: String,
    upstream_lines: &str,
    routes: &str,
    extra: String,
) -> TestGateway {
    TestGateway::start_full(
        Options {
            upstream_url: Some(url),
            upstream: upstream_lines.to_owned(),
            routes: routes.to_owned(),
            extra,
            ..Options::default()
        },
        upstream,
        Arc::new(Issuer::new()),
    )
    .await
}

#[tokio::test]
async fn routes_name_their_upstream_and_strip_prefix_maps_the_path_onto_its_prefix() {
    let default = Upstream::start().await;
    let billing = Upstream::start().await;
    let url = default.url();
    let gw = gateway(
        default,
        url,
        "",
        "\n  - { path_prefix: /billing, auth: dpop, upstream: billing, strip_prefix: true }\n  \
         - { path_prefix: /reports, auth: dpop, upstream: billing }\n  \
         - { path_prefix: /, auth: dpop }",
        format!(
            "upstreams:\n  billing:\n    url: \"{}/v1/\"\n    connect_timeout: 1s",
            billing.url()
        ),
    )
    .await;
    let k = key();

    let resp = gw
        .authorized(&k, "GET", "/billing/invoices?id=7")
        .send()
        .await;
    assert_eq!(resp.status(), 200);
    let resp = gw.authorized(&k, "GET", "/billing").send().await;
    assert_eq!(resp.status(), 200);
    let resp = gw.authorized(&k, "GET", "/reports/q1").send().await;
    assert_eq!(resp.status(), 200);
    let resp = gw.authorized(&k, "GET", "/other").send().await;
    assert_eq!(resp.status(), 200);

    let seen: Vec<String> = billing.requests().into_iter().map(|s| s.uri).collect();
    assert_eq!(seen, ["/v1/invoices?id=7", "/v1/", "/v1/reports/q1"]);
    let seen: Vec<String> = gw.upstream.requests().into_iter().map(|s| s.uri).collect();
    assert_eq!(seen, ["/other"]);
    // What each upstream saw carries no proof, and the Host the client used.
    let first = &billing.requests()[0];
    assert!(first.headers.get("dpop").is_none());
    assert_eq!(first.headers["host"], gw.addr.to_string().as_str());

    // A refused request on a named upstream's route reaches neither upstream.
    let resp = gw.call("GET", "/billing/invoices").send().await;
    assert_eq!(resp.status(), 401);
    let token = gw.issuer.token_for(&k);
    let resp = gw.call("GET", "/billing/x").dpop_token(&token).send().await;
    assert_eq!(resp.status(), 401);
    assert_eq!(www_error(&resp).as_deref(), Some("invalid_dpop_proof"));
    assert_eq!(
        billing.requests().len(),
        3,
        "refused requests never reach the upstream"
    );
    assert_eq!(gw.upstream.requests().len(), 1);

    let m = gw.metrics().await;
    assert_eq!(
        sample(
            &m,
            "dpop_gateway_upstream_duration_seconds_count{upstream=\"billing\"}"
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "dpop_gateway_upstream_duration_seconds_count{upstream=\"default\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "dpop_gateway_upstream_errors_total{kind=\"tls\",upstream=\"billing\"}"
        ),
        Some(0.0),
        "{m}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_named_upstream_that_is_down_is_a_502_counted_under_its_name() {
    let default = Upstream::start().await;
    let url = default.url();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = gateway(
        default,
        url,
        "",
        "\n  - { path_prefix: /down, auth: none, upstream: down }\n  - { path_prefix: /, auth: dpop }",
        format!("upstreams:\n  down: {{ url: \"http://{closed}\", connect_timeout: 1s }}"),
    )
    .await;
    let resp = gw.call("GET", "/down/x").send().await;
    assert_eq!(resp.status(), 502);
    let m = gw.metrics().await;
    assert_eq!(
        sample(
            &m,
            "dpop_gateway_upstream_errors_total{kind=\"connect\",upstream=\"down\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "dpop_gateway_upstream_errors_total{kind=\"connect\",upstream=\"default\"}"
        ),
        Some(0.0),
        "{m}"
    );
    gw.shutdown().await;
}

/// A TLS upstream serving `pki`'s `localhost` certificate with ALPN `alpn`.
async fn tls_upstream(pki: &TestPki, alpn: &[&[u8]], mtls: bool) -> Upstream {
    Upstream::start_tls(pki.server_config(alpn, mtls)).await
}

#[tokio::test]
async fn an_https_upstream_behind_a_private_ca_is_verified_and_its_connections_reused() {
    let pki = TestPki::new();
    let upstream = tls_upstream(&pki, &[b"http/1.1"], false).await;
    let url = format!("{}/api", upstream.https_url());
    let gw = gateway(
        upstream,
        url,
        &format!("tls:\n  ca_file: \"{}\"", pki.ca_file().display()),
        "\n  - { path_prefix: /, auth: dpop }",
        String::new(),
    )
    .await;
    let k = key();
    for _ in 0..3 {
        let resp = gw.authorized(&k, "GET", "/items?x=1").send().await;
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
    }
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        gw.upstream.connections(),
        1,
        "one handshake, the connection reused"
    );
    assert_eq!(seen[0].uri, "/api/items?x=1");
    assert_eq!(seen[0].version, Version::HTTP_11);
    assert!(seen[0].headers.get("dpop").is_none());
    let m = gw.metrics().await;
    assert_eq!(
        sample(&m, "dpop_gateway_upstream_response_seconds_count{status_class=\"2xx\",upstream=\"default\"}"),
        Some(3.0),
        "{m}"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn an_untrusted_or_misnamed_upstream_certificate_is_a_502_with_reason_tls() {
    let pki = TestPki::new();
    let other_ca = TestPki::new();
    // Trusting another CA: the upstream's certificate does not verify.
    let upstream = tls_upstream(&pki, &[b"h2", b"http/1.1"], false).await;
    let url = upstream.https_url();
    let gw = gateway(
        upstream,
        url,
        &format!("tls:\n  ca_file: \"{}\"", other_ca.ca_file().display()),
        "\n  - { path_prefix: /, auth: none }",
        String::new(),
    )
    .await;
    let resp = gw.call("GET", "/x").send().await;
    assert_eq!(resp.status(), 502);
    let m = gw.metrics().await;
    assert_eq!(
        sample(
            &m,
            "dpop_gateway_upstream_errors_total{kind=\"tls\",upstream=\"default\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        m.contains("dpop_gateway_requests_total{listener=\"proxy\",method=\"GET\",outcome=\"upstream_error\",reason=\"tls\",route=\"/\",status=\"502\"} 1"),
        "{m}"
    );
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;

    // The right CA, but another name verified than the certificate's.
    let upstream = tls_upstream(&pki, &[b"h2", b"http/1.1"], false).await;
    let url = upstream.https_url();
    let gw = gateway(
        upstream,
        url,
        &format!(
            "tls:\n  ca_file: \"{}\"\n  server_name: billing.internal",
            pki.ca_file().display()
        ),
        "\n  - { path_prefix: /, auth: none }",
        String::new(),
    )
    .await;
    let resp = gw.call("GET", "/x").send().await;
    assert_eq!(resp.status(), 502);
    let m = gw.metrics().await;
    assert_eq!(
        sample(
            &m,
            "dpop_gateway_upstream_errors_total{kind=\"tls\",upstream=\"default\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn an_upstream_that_requires_a_client_certificate_gets_the_configured_one() {
    let pki = TestPki::new();
    let (cert, key_file) = pki.client_pair("gateway");
    let upstream = tls_upstream(&pki, &[b"http/1.1"], true).await;
    let url = upstream.https_url();
    let gw = gateway(
        upstream,
        url,
        &format!(
            "tls:\n  ca_file: \"{}\"\n  client_cert: \"{}\"\n  client_key: \"{}\"",
            pki.ca_file().display(),
            cert.display(),
            key_file.display()
        ),
        "\n  - { path_prefix: /, auth: dpop }",
        String::new(),
    )
    .await;
    let k = key();
    let resp = gw.authorized(&k, "POST", "/orders").body("{}").send().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.upstream.requests().len(), 1);
    gw.shutdown().await;

    // Without it the upstream refuses the connection: a 502, nothing received.
    let upstream = tls_upstream(&pki, &[b"http/1.1"], true).await;
    let url = upstream.https_url();
    let gw = gateway(
        upstream,
        url,
        &format!("tls:\n  ca_file: \"{}\"", pki.ca_file().display()),
        "\n  - { path_prefix: /, auth: none }",
        String::new(),
    )
    .await;
    let resp = gw.call("GET", "/x").send().await;
    assert_eq!(resp.status(), 502);
    assert!(gw.upstream.requests().is_empty());
    gw.shutdown().await;
}

/// `GET path` through the gateway over h2c, the whole response with its trailers.
async fn h2_get(gw: &TestGateway, path: &str) -> (u16, Bytes, Option<http::HeaderMap>) {
    let req = Request::get(gw.url(path))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = client::try_send_streamed(gw.addr, Mode::H2c, req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (status, collected.to_bytes(), trailers)
}

#[tokio::test]
async fn http2_over_tls_by_alpn_passes_trailers_to_the_client() {
    let pki = TestPki::new();
    let upstream = tls_upstream(&pki, &[b"h2", b"http/1.1"], false).await;
    let url = upstream.https_url();
    let gw = gateway(
        upstream,
        url,
        &format!("tls:\n  ca_file: \"{}\"", pki.ca_file().display()),
        "\n  - { path_prefix: /, auth: none }",
        String::new(),
    )
    .await;
    for _ in 0..2 {
        let (status, body, trailers) = h2_get(&gw, "/trailers").await;
        assert_eq!(status, 200);
        assert_eq!(body, "with trailers");
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "fine");
    }
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(gw.upstream.connections(), 1, "one shared HTTP/2 connection");
    assert_eq!(seen[0].version, Version::HTTP_2, "auto picks h2 by ALPN");
    assert_eq!(seen[0].headers["te"], "trailers");
    assert!(
        seen[0].headers.get("host").is_none(),
        "HTTP/2 carries it in :authority"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn http2_with_prior_knowledge_to_a_plain_upstream() {
    let upstream = Upstream::start().await;
    let url = upstream.url();
    let gw = gateway(
        upstream,
        url,
        "protocol: http2",
        "\n  - { path_prefix: /, auth: dpop }",
        String::new(),
    )
    .await;
    let k = key();
    let resp = gw.authorized(&k, "GET", "/a?b=c").send().await;
    assert_eq!(resp.status(), 200);
    let (status, _, trailers) = h2_get(&gw, "/trailers").await;
    assert_eq!(status, 401, "the trailers path is protected too");
    assert!(trailers.is_none());
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].version, Version::HTTP_2);
    assert_eq!(seen[0].uri, "/a?b=c");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_rotated_on_disk_is_presented_on_new_connections() {
    let pki = TestPki::new();
    let other_ca = TestPki::new();
    // At first the files hold a pair the upstream does not trust (another CA's).
    let (cert, key_file) = other_ca.client_pair("gateway");
    let upstream = tls_upstream(&pki, &[b"http/1.1"], true).await;
    let url = upstream.https_url();
    let gw = gateway(
        upstream,
        url,
        &format!(
            "tls:\n  ca_file: \"{}\"\n  client_cert: \"{}\"\n  client_key: \"{}\"",
            pki.ca_file().display(),
            cert.display(),
            key_file.display()
        ),
        "\n  - { path_prefix: /, auth: none }",
        String::new(),
    )
    .await;
    let resp = gw.call("GET", "/x").send().await;
    assert_eq!(resp.status(), 502);
    assert!(gw.upstream.requests().is_empty());

    // The rotation writes a pair of the trusted CA over the same paths (key first).
    let (good_cert, good_key) = pki.client_pair("rotated");
    for (from, to) in [(&good_key, &key_file), (&good_cert, &cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    let mut status = 0;
    for _ in 0..100 {
        status = gw.call("GET", "/x").send().await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "the new pair is picked up without a restart");
    assert_eq!(gw.upstream.requests().len(), 1);
    gw.shutdown().await;
}

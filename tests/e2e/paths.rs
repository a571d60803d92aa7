//! Request paths are normalised, not refused, where RFC 3986 §6.2.2 makes them equivalent
//! (hex case in percent-encodings, percent-encoded unreserved characters): routes match the
//! normalised path, the upstream receives it (the query as sent), and `htu` compares equal
//! whichever spelling the proof or the request used. Dot segments stay refused.
//! `paths.encoded_slashes` decides `%2F` and `%5C`: `reject` (400) or `keep` (forwarded, part
//! of their segment for routing).

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;

use crate::support::{client, proof, www_error, Options, TestGateway};

fn key() -> PrivateJwk {
    PrivateJwk::generate(Algorithm::ES256).unwrap()
}

/// `GET target` over a raw connection (the target exactly as written); the status code.
async fn raw_get(gw: &TestGateway, target: &str, creds: Option<(&str, &str)>) -> u16 {
    let creds = creds.map_or_else(String::new, |(token, proof)| {
        format!("authorization: DPoP {token}\r\ndpop: {proof}\r\n")
    });
    let raw = format!(
        "GET {target} HTTP/1.1\r\nhost: {}\r\n{creds}connection: close\r\n\r\n",
        gw.addr
    );
    let out = client::raw(gw.addr, raw.as_bytes()).await;
    let text = String::from_utf8_lossy(&out);
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{target}: {text}"))
}

/// A request to `target` signed for `htu_path` with a fresh token for `key`.
async fn signed_get(gw: &TestGateway, key: &PrivateJwk, target: &str, htu_path: &str) -> u16 {
    let token = gw.issuer.token_for(key);
    let proof = proof(key, "GET", &gw.url(htu_path), Some(&token));
    raw_get(gw, target, Some((&token, &proof))).await
}

fn with_paths(setting: &str, routes: &str) -> Options {
    Options {
        routes: routes.into(),
        extra: format!("paths:\n  encoded_slashes: {setting}"),
        ..Options::default()
    }
}

#[tokio::test]
async fn equivalent_paths_are_normalised_and_the_upstream_gets_the_normal_form() {
    for setting in ["reject", "keep"] {
        let gw = TestGateway::start_with(Options {
            extra: format!("paths:\n  encoded_slashes: {setting}"),
            ..Options::default()
        })
        .await;
        let key = key();
        for (target, forwarded) in [
            ("/%6Fpen/%7Euser?q=%7e&x=%2f", "/open/~user?q=%7e&x=%2f"),
            ("/open/a%2ab%c3%a9", "/open/a%2Ab%C3%A9"),
            ("/open/%41%2D%5f%2E%30", "/open/A-_.0"),
            ("/open/a%20b", "/open/a%20b"),
        ] {
            assert_eq!(raw_get(&gw, target, None).await, 200, "{setting}: {target}");
            let last = gw.upstream.requests().pop().unwrap();
            assert_eq!(last.uri, forwarded, "{setting}: {target}");
        }
        // htu: the proof may spell the path either way, the request too.
        for (target, htu, forwarded) in [
            ("/resource/%7Ealice", "/resource/~alice", "/resource/~alice"),
            ("/resource/~alice", "/resource/%7ealice", "/resource/~alice"),
            ("/resource/%c3%a9", "/resource/%C3%A9", "/resource/%C3%A9"),
            ("/r%65source/x?y=%41", "/resource/x", "/resource/x?y=%41"),
        ] {
            assert_eq!(
                signed_get(&gw, &key, target, htu).await,
                200,
                "{setting}: {target} signed for {htu}"
            );
            let last = gw.upstream.requests().pop().unwrap();
            assert_eq!(last.uri, forwarded, "{setting}: {target}");
        }
        // A proof for another path still fails.
        assert_eq!(
            signed_get(&gw, &key, "/resource/%7Ealice", "/resource/alice").await,
            401
        );
        assert_eq!(gw.upstream.requests().len(), 8);
    }
}

#[tokio::test]
async fn routes_match_the_normalised_path() {
    let routes =
        "\n  - { path_prefix: \"/api\", auth: dpop }\n  - { path_prefix: \"/\", auth: none }";
    for setting in ["reject", "keep"] {
        let gw = TestGateway::start_with(with_paths(setting, routes)).await;
        for target in ["/%61pi/users", "/%61%70%69", "/ap%69/x"] {
            assert_eq!(raw_get(&gw, target, None).await, 401, "{setting}: {target}");
        }
        assert!(gw.upstream.requests().is_empty(), "{setting}");
        let key = key();
        assert_eq!(
            signed_get(&gw, &key, "/%61pi/users", "/api/users").await,
            200
        );
        assert_eq!(gw.upstream.requests()[0].uri, "/api/users");
    }
}

#[tokio::test]
async fn dot_segments_stay_refused_in_every_spelling_and_setting() {
    for setting in ["reject", "keep"] {
        let gw = TestGateway::start_with(with_paths(setting, &Options::default().routes)).await;
        for target in [
            "/open/../resource",
            "/open/./x",
            "/open/%2e%2e/resource",
            "/open/%2E./resource",
            "/open/.%2e",
            "/open/%2e",
            "/open/%2e%2e;/resource",
            "/open/..%3b/resource",
            "/open/x%2F..%2F..%2Fresource",
            "/open%5C..%5Cresource",
            "/open/%2e%2e%2fresource",
        ] {
            assert_eq!(raw_get(&gw, target, None).await, 400, "{setting}: {target}");
        }
        assert!(
            gw.upstream.requests().is_empty(),
            "{setting}: {:?}",
            gw.upstream.requests()
        );
    }
}

#[tokio::test]
async fn encoded_slashes_are_refused_by_default_and_kept_in_their_segment_with_keep() {
    let routes = "\n  - { path_prefix: \"/files\", auth: none }\n  - { path_prefix: \"/api\", auth: dpop }\n  - { path_prefix: \"/\", auth: none }";
    let key = key();

    // Default: reject.
    let gw = TestGateway::start_with(Options {
        routes: routes.into(),
        ..Options::default()
    })
    .await;
    for target in ["/files/a%2fb", "/files/a%5Cb", "/api/a%2Fb"] {
        let token = gw.issuer.token_for(&key);
        let proof = proof(&key, "GET", &gw.url(target), Some(&token));
        let resp = gw
            .call("GET", target)
            .dpop_token(&token)
            .proof(&proof)
            .send()
            .await;
        assert_eq!(resp.status(), 400, "{target}");
        assert_eq!(www_error(&resp).as_deref(), Some("invalid_request"));
    }
    assert!(gw.upstream.requests().is_empty());

    // keep: forwarded encoded (hex upper-cased), matched as part of its segment; a route the
    // decoded path would reach is used when it is stricter.
    let gw = TestGateway::start_with(with_paths("keep", routes)).await;
    assert_eq!(raw_get(&gw, "/files/a%2fb%5cc", None).await, 200);
    assert_eq!(gw.upstream.requests()[0].uri, "/files/a%2Fb%5Cc");
    for target in ["/api%2Fusers", "/api%5Cusers", "/x/..%2F..%2Fapi"] {
        let status = raw_get(&gw, target, None).await;
        assert!(status == 401 || status == 400, "{target}: {status}");
    }
    assert_eq!(gw.upstream.requests().len(), 1);
    assert_eq!(signed_get(&gw, &key, "/api/a%2fb", "/api/a%2Fb").await, 200);
    assert_eq!(signed_get(&gw, &key, "/api%2Fb", "/api%2fb").await, 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen[1].uri, "/api/a%2Fb");
    assert_eq!(seen[2].uri, "/api%2Fb");
}

//! RFC 9728 metadata per resource path (§3.1): where a route names `issuers`, its prefix has
//! its own document (`/.well-known/oauth-protected-resource<prefix>`, `resource` = the base URL
//! and the prefix, `authorization_servers` = those issuers) and its 401s name that document;
//! everywhere else the document lists every configured issuer and 401s name the root's.

use bytes::Bytes;
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use http::{Request, Response};
use http_body_util::Full;
use serde_json::{json, Value};

use crate::support::client::{self, Mode};
use crate::support::gateway::Issuer;
use crate::support::issuer_server::RemoteGateway;

const AS: &str = "https://as.example.com";
const OTHER: &str = "https://other.example.com";

/// Two issuers; `/partners` takes only `OTHER`, `/shared` takes `AS` for GET and `OTHER` for
/// POST, `/open/` (a prefix ending in `/`) only `AS`, everything else either.
async fn gateway(a: &Issuer, b: &Issuer) -> RemoteGateway {
    RemoteGateway::start_routed(
        &format!(
            "  - issuer: \"{AS}\"\n    audience: \"https://api.example.com\"\n    jwks_file: \"{}\"\n  - issuer: \"{OTHER}\"\n    audience: \"https://api.example.com\"\n    jwks_file: \"{}\"",
            a.jwks_path.display(),
            b.jwks_path.display()
        ),
        &format!(
            "\n  - {{ path_prefix: \"/partners\", auth: dpop, issuers: [\"{OTHER}\"] }}\
             \n  - {{ path_prefix: \"/shared\", methods: [GET], auth: dpop, issuers: [\"{AS}\"] }}\
             \n  - {{ path_prefix: \"/shared\", methods: [POST], auth: dpop, issuers: [\"{OTHER}\"] }}\
             \n  - {{ path_prefix: \"/open/\", auth: dpop, issuers: [\"{AS}\"] }}\
             \n  - {{ path_prefix: \"/\", auth: dpop }}"
        ),
    )
    .await
}

async fn get(gw: &RemoteGateway, path: &str) -> Response<Bytes> {
    let req = Request::get(path)
        .header("host", gw.addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    client::send(gw.addr, Mode::H1, req).await
}

/// The document at `/.well-known/oauth-protected-resource<path>`.
async fn document(gw: &RemoteGateway, path: &str) -> Value {
    let resp = get(gw, &format!("/.well-known/oauth-protected-resource{path}")).await;
    assert_eq!(resp.status(), 200, "{path}: {:?}", resp.body());
    assert_eq!(resp.headers()["content-type"], "application/json");
    serde_json::from_slice(resp.body()).unwrap()
}

/// The `resource_metadata` parameter of a 401's challenge.
fn named_document(resp: &Response<Bytes>) -> String {
    assert_eq!(resp.status(), 401, "body: {:?}", resp.body());
    let www = resp.headers()["www-authenticate"].to_str().unwrap();
    let start = www.find("resource_metadata=\"").expect(www) + "resource_metadata=\"".len();
    let end = www[start..].find('"').unwrap() + start;
    www[start..end].to_owned()
}

#[tokio::test]
async fn a_route_naming_issuers_has_its_own_document_and_its_401s_name_it() {
    let (a, b) = (Issuer::new(), Issuer::new());
    let gw = gateway(&a, &b).await;
    let base = format!("http://{}", gw.addr);

    let doc = document(&gw, "/partners").await;
    assert_eq!(doc["resource"], format!("{base}/partners"));
    assert_eq!(doc["authorization_servers"], json!([OTHER]));
    // A path below the prefix is the same route's resource.
    let doc = document(&gw, "/partners/orders").await;
    assert_eq!(doc["resource"], format!("{base}/partners/orders"));
    assert_eq!(doc["authorization_servers"], json!([OTHER]));
    // Routes of one prefix that differ by method: the issuers of all of them.
    let doc = document(&gw, "/shared").await;
    assert_eq!(doc["authorization_servers"], json!([AS, OTHER]));
    let doc = document(&gw, "/open").await;
    assert_eq!(doc["resource"], format!("{base}/open"));
    assert_eq!(doc["authorization_servers"], json!([AS]));
    // The root and a route that names none: every configured issuer.
    for path in ["", "/orders"] {
        let doc = document(&gw, path).await;
        assert_eq!(doc["authorization_servers"], json!([AS, OTHER]), "{path}");
    }

    let root = format!("{base}/.well-known/oauth-protected-resource");
    assert_eq!(
        named_document(&get(&gw, "/partners/x").await),
        format!("{root}/partners")
    );
    assert_eq!(
        named_document(&get(&gw, "/open/x").await),
        format!("{root}/open")
    );
    assert_eq!(named_document(&get(&gw, "/orders").await), root);
    // A token of the issuer the route does not take: the 401 points where the right issuer
    // is named.
    let k = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut c = a.claims(Some(k.thumbprint().to_string()));
    c["iss"] = json!(AS);
    let theirs = a.sign(&c);
    let resp = gw.get_path(&k, &theirs, "/partners/x").await;
    assert_eq!(named_document(&resp), format!("{root}/partners"));
    assert!(gw.upstream.requests().is_empty(), "served by the gateway");
    gw.shutdown().await;
}

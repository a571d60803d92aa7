//! `dpop-gateway demo`: a self-contained walkthrough on loopback. It starts an echo upstream, a
//! local token issuer and a gateway in front of the echo, then makes real requests and prints
//! what the client sent, what it got back and what the upstream saw.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::jose::sign::{self, PrivateJwk, ProofClaims};
use crate::jose::Algorithm;
use crate::server::Running;

type DemoClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Runs the walkthrough; `Err` says what broke.
pub(crate) async fn run() -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let upstream = start_echo().await?;
    let dir = std::env::temp_dir().join(format!("dpop-gateway-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let issuer = PrivateJwk::generate(Algorithm::ES256).map_err(|e| format!("{e:?}"))?;
    let mut jwk = issuer.public_jwk();
    jwk.insert("kid".into(), json!("demo-issuer"));
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, json!({ "keys": [jwk] }).to_string())
        .map_err(|e| format!("{}: {e}", jwks_path.display()))?;
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\nupstream:\n  url: \"http://{upstream}\"\n\
         access_token:\n  issuer: \"https://issuer.demo\"\n  audience: \"https://api.demo\"\n  jwks_file: \"{}\"\n",
        jwks_path.display()
    );
    let config = Config::from_yaml_str(&yaml, "<demo>", &HashMap::<String, String>::new())
        .map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let running = Running::start(config, clock.clone())
        .await
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", running.addr);
    println!("dpop-gateway demo: gateway on {base}, echo upstream on http://{upstream}\n");

    let client: DemoClient = Client::builder(TokioExecutor::new()).build_http();
    let key = PrivateJwk::generate(Algorithm::ES256).map_err(|e| format!("{e:?}"))?;
    let now = clock.now().as_secs();
    let claims = json!({
        "iss": "https://issuer.demo", "aud": "https://api.demo", "sub": "alice",
        "client_id": "demo-client", "scope": "read", "iat": now, "exp": now + 300,
        "cnf": { "jkt": key.thumbprint().to_string() },
    });
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    header.insert("kid".into(), json!("demo-issuer"));
    let token = issuer
        .sign_jws(header, &claims)
        .map_err(|e| format!("{e:?}"))?;
    let url = format!("{base}/accounts");
    let proof = |k: &PrivateJwk| {
        k.mint_proof(&ProofClaims {
            htm: "GET".into(),
            htu: url.clone(),
            iat: clock.now().as_secs(),
            jti: sign::random_jti(),
            access_token: Some(token.clone()),
            nonce: None,
        })
        .map_err(|e| format!("{e:?}"))
    };

    println!("The client holds an ES256 key (thumbprint {}); the issuer bound the access token to it (cnf.jkt).\n", key.thumbprint());
    step(
        &client,
        "1. No credentials: the gateway challenges",
        &url,
        None,
        None,
    )
    .await?;
    let good = proof(&key)?;
    step(&client, "2. Token + fresh proof: forwarded; the upstream sees no DPoP header, identity headers instead", &url, Some(&token), Some(&good)).await?;
    step(
        &client,
        "3. The same proof again: a replay, refused",
        &url,
        Some(&token),
        Some(&good),
    )
    .await?;
    let thief = PrivateJwk::generate(Algorithm::ES256).map_err(|e| format!("{e:?}"))?;
    step(
        &client,
        "4. The stolen token with a proof from another key: refused",
        &url,
        Some(&token),
        Some(&proof(&thief)?),
    )
    .await?;
    running.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    println!("Done: only request 2 reached the upstream.");
    Ok(())
}

async fn step(
    client: &DemoClient,
    title: &str,
    url: &str,
    token: Option<&str>,
    proof: Option<&str>,
) -> Result<(), String> {
    println!("== {title}");
    let mut req = Request::get(url);
    println!("   GET {url}");
    if let Some(t) = token {
        req = req.header("authorization", format!("DPoP {t}"));
        println!("   Authorization: DPoP {}…", &t[..t.len().min(24)]);
    }
    if let Some(p) = proof {
        req = req.header("dpop", p);
        println!("   DPoP: {}…", &p[..p.len().min(24)]);
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    println!("-> {}", resp.status());
    if let Some(v) = resp.headers().get("www-authenticate") {
        println!("   WWW-Authenticate: {}", v.to_str().unwrap_or("?"));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    println!("   {}\n", String::from_utf8_lossy(&body));
    Ok(())
}

/// An upstream that answers with the headers it received.
async fn start_echo() -> Result<std::net::SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let mut seen: Vec<String> = req
                        .headers()
                        .iter()
                        .filter(|(n, _)| {
                            let n = n.as_str();
                            n.starts_with("x-auth")
                                || n == "x-dpop-jkt"
                                || n == "dpop"
                                || n == "authorization"
                        })
                        .map(|(n, v)| {
                            let v = v.to_str().unwrap_or("?");
                            format!("{n}: {}", &v[..v.len().min(40)])
                        })
                        .collect();
                    seen.sort();
                    let body = json!({ "upstream_saw": seen }).to_string();
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

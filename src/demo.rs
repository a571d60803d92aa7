//! `dpop-gateway demo`: a self-contained walkthrough on loopback that teaches DPoP with real
//! values. It starts an echo upstream, a local token issuer and a gateway in front of the echo
//! (with the decision explorer on), then shows each step as it really happens: the client key
//! and its RFC 7638 thumbprint, the access token bound to it (`cnf.jkt`), a proof taken apart
//! (header, claims, signing input, `ath`), the forwarded request and what the upstream received,
//! then the refusals with what the gateway compared (read from its own explorer), and a nonce
//! round trip. Colour on a terminal, plain text otherwise, `--json` for machines;
//! `--keep-running` leaves it up with copy-paste `curl` commands. Nothing leaves loopback.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::jose::sign::{self, PrivateJwk, ProofClaims};
use crate::jose::{Algorithm, B64};
use crate::server::Running;

type DemoClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// How the walkthrough is shown.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    /// One JSON document on stdout instead of text.
    pub json: bool,
    /// Stay up after the walkthrough, with `curl` commands, until Ctrl-C.
    pub keep_running: bool,
}

/// Where the walkthrough goes: text as it happens (coloured on a terminal), or JSON at the end.
struct Out {
    json: bool,
    colour: bool,
    steps: Vec<Value>,
}

/// A request the demo sends, and what came of it.
struct Exchange {
    status: u16,
    www_authenticate: Option<String>,
    dpop_nonce: Option<String>,
    body: Value,
}

/// Runs the walkthrough; `Err` says what broke.
pub(crate) async fn run(options: Options) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let colour = !options.json
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut out = Out {
        json: options.json,
        colour,
        steps: Vec::new(),
    };
    let upstream = start_echo().await?;
    let dir = std::env::temp_dir().join(format!("dpop-gateway-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = walkthrough(&mut out, &options, upstream, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    if out.json {
        println!("{}", json!({ "steps": out.steps }));
    }
    result
}

async fn walkthrough(
    out: &mut Out,
    options: &Options,
    upstream: SocketAddr,
    dir: &std::path::Path,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let issuer = PrivateJwk::generate(Algorithm::ES256).map_err(|e| err(&e))?;
    let mut jwk = issuer.public_jwk();
    jwk.insert("kid".into(), json!("demo-issuer"));
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, json!({ "keys": [jwk] }).to_string())
        .map_err(|e| format!("{}: {e}", jwks_path.display()))?;
    let mut secret = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
        .map_err(|_| "no randomness for the nonce secret".to_owned())?;
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nadmin_listen: \"127.0.0.1:0\"\nupstream:\n  url: \"http://{upstream}\"\n\
         routes:\n  - {{ path_prefix: \"/orders\", auth: dpop, nonce: true }}\n  - {{ path_prefix: \"/\", auth: dpop }}\n\
         dpop:\n  proof_max_age: 60s\n  clock_skew: 5s\n  nonce:\n    secrets: [\"{}\"]\n\
         explorer:\n  enabled: true\n\
         access_token:\n  issuer: \"https://issuer.demo\"\n  audience: \"https://api.demo\"\n  jwks_file: \"{}\"\n",
        B64.encode(secret),
        jwks_path.display()
    );
    let config_path = dir.join("gateway.yaml");
    std::fs::write(&config_path, &yaml).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config = Config::from_yaml_str(&yaml, "<demo>", &HashMap::<String, String>::new())
        .map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let running = Running::start(config, clock.clone())
        .await
        .map_err(|e| e.to_string())?;
    let base = format!("http://{}", running.addr);
    let admin = running.admin_addr;
    let client: DemoClient = Client::builder(TokioExecutor::new()).build_http();
    let now = || clock.now().as_secs();
    let url = format!("{base}/accounts");

    out.step(
        "Three servers on loopback",
        &[
            format!("gateway          {base}  (admin, with the decision explorer: http://{admin}/explorer)"),
            format!("echo upstream    http://{upstream}  (answers with the headers it received)"),
            "token issuer     in-process, ES256 key, iss https://issuer.demo, aud https://api.demo".into(),
        ],
        json!({ "gateway": base, "admin": format!("http://{admin}"), "upstream": format!("http://{upstream}") }),
    );

    // 1. The client's key and its thumbprint.
    let key = PrivateJwk::generate(Algorithm::ES256).map_err(|e| err(&e))?;
    let public = key.public_jwk();
    let canonical = rfc7638_input(&public).ok_or("the demo key is not an EC key")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    let jkt = B64.encode(digest);
    if jkt != key.thumbprint().to_string() {
        return Err("the thumbprint computed here differs from the gateway's".into());
    }
    out.step(
        "The client makes a key pair; its public half is a JWK",
        &[
            format!("public JWK        {}", Value::Object(public.clone())),
            "RFC 7638 thumbprint: SHA-256 over the required members only, in lexicographic order, no spaces:".into(),
            format!("  hashed JSON     {canonical}"),
            format!("  SHA-256 (hex)   {}", {
                let mut hex = String::new();
                crate::hex::push(&mut hex, digest.as_ref());
                hex
            }),
            format!("  base64url       {}", out.hi(&jkt)),
            "This thumbprint (\"jkt\") names the key everywhere below.".into(),
        ],
        json!({ "jwk": public, "thumbprint_input": canonical, "jkt": jkt }),
    );

    // 2. The access token, bound to the key.
    let ttl = if options.keep_running { 3600 } else { 300 };
    let claims = json!({
        "iss": "https://issuer.demo", "aud": "https://api.demo", "sub": "alice",
        "client_id": "demo-client", "scope": "read", "iat": now(), "exp": now() + ttl,
        "cnf": { "jkt": jkt },
    });
    let mut header = Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    header.insert("kid".into(), json!("demo-issuer"));
    let token = issuer
        .sign_jws(header.clone(), &claims)
        .map_err(|e| err(&e))?;
    let token_header = decoded_part(&token, 0);
    out.step(
        "The issuer binds the access token to that key (cnf.jkt, RFC 9449 §6)",
        &[
            format!("token             {}… ({} bytes, a JWT)", &token[..token.len().min(32)], token.len()),
            format!("header            {token_header}"),
            format!("claims            {}", claims.to_string().replace(&format!("\"jkt\":\"{jkt}\""), &out.hi(&format!("\"jkt\":\"{jkt}\"")))),
            "Anyone may copy the token; only the holder of the private key can use it, because every request".into(),
            "must carry a fresh proof signed by the key whose thumbprint is cnf.jkt.".into(),
        ],
        json!({ "token_header": token_header, "token_claims": claims }),
    );

    // 3. A proof, taken apart.
    let mint = |k: &PrivateJwk, htm: &str, htu: &str, iat: u64, nonce: Option<String>| {
        k.mint_proof(&ProofClaims {
            htm: htm.into(),
            htu: htu.into(),
            iat,
            jti: sign::random_jti(),
            access_token: Some(token.clone()),
            nonce,
        })
        .map_err(|e| format!("{e:?}"))
    };
    let good = mint(&key, "GET", &url, now(), None)?;
    let (h64, rest) = good.split_once('.').ok_or("a proof without parts")?;
    let (p64, s64) = rest.split_once('.').ok_or("a proof without parts")?;
    let ath = sign::ath(&token);
    out.step(
        "For each request the client signs a DPoP proof (a JWT, RFC 9449 §4)",
        &[
            format!("header            {}", decoded_part(&good, 0)),
            format!("claims            {}", decoded_part(&good, 1)),
            "  htm, htu        the request's method and URL (no query): the proof is good for this request only".into(),
            "  iat, jti        when it was made, and a unique id: the gateway accepts it once, for a minute".into(),
            format!("  ath             base64url(SHA-256(access token)) = {}", out.hi(&ath)),
            format!("signing input     base64url(header) \".\" base64url(claims) = {}.{}…", &h64[..h64.len().min(24)], &p64[..p64.len().min(24)]),
            format!("signature         ES256 over the signing input with the private key: {}… ({} bytes)", &s64[..s64.len().min(16)], s64.len()),
        ],
        json!({ "proof_header": decoded_part(&good, 0), "proof_claims": decoded_part(&good, 1),
                "signing_input": format!("{h64}.{p64}"), "ath": ath }),
    );

    // 4-5. The request without and with credentials.
    let ex = send(&client, "GET", &url, None, None).await?;
    out.exchange(
        "No credentials: the gateway challenges",
        "GET",
        &url,
        None,
        None,
        &ex,
        None,
    );
    let ex = send(&client, "GET", &url, Some(&token), Some(&good)).await?;
    let saw = ex.body.get("upstream_saw").cloned().unwrap_or(Value::Null);
    out.exchange(
        "Token + fresh proof: forwarded; the upstream gets no DPoP header, identity headers instead",
        "GET", &url, Some(&token), Some(&good), &ex, None,
    );
    out.note(&format!("the upstream received {saw}"));

    // 6-10. Refusals, each with what the gateway compared (from its explorer).
    let mut last = latest_id(&client, admin).await?;
    let thief = PrivateJwk::generate(Algorithm::ES256).map_err(|e| err(&e))?;
    let cases: Vec<(&str, String)> = vec![
        ("The same proof again: a replay", good.clone()),
        (
            "The stolen token with a proof from another key",
            mint(&thief, "GET", &url, now(), None)?,
        ),
        (
            "A proof made for another method (POST)",
            mint(&key, "POST", &url, now(), None)?,
        ),
        (
            "A proof made for another URL",
            mint(&key, "GET", &format!("{base}/admin"), now(), None)?,
        ),
        (
            "A proof made 5 minutes ago (a clock that is off, or a captured proof)",
            mint(&key, "GET", &url, now().saturating_sub(300), None)?,
        ),
    ];
    for (title, proof) in cases {
        let ex = send(&client, "GET", &url, Some(&token), Some(&proof)).await?;
        let compared = compared(&client, admin, &mut last).await?;
        out.exchange(
            title,
            "GET",
            &url,
            Some(&token),
            Some(&proof),
            &ex,
            Some(&compared),
        );
    }

    // 11. The nonce round trip.
    let orders = format!("{base}/orders");
    let first = mint(&key, "GET", &orders, now(), None)?;
    let ex = send(&client, "GET", &orders, Some(&token), Some(&first)).await?;
    let compared_first = compared(&client, admin, &mut last).await?;
    out.exchange(
        "A route that requires a server nonce (RFC 9449 §8): the first try gets one",
        "GET",
        &orders,
        Some(&token),
        Some(&first),
        &ex,
        Some(&compared_first),
    );
    let nonce = ex
        .dpop_nonce
        .clone()
        .ok_or("the gateway sent no DPoP-Nonce")?;
    let retry = mint(&key, "GET", &orders, now(), Some(nonce.clone()))?;
    let ex = send(&client, "GET", &orders, Some(&token), Some(&retry)).await?;
    out.exchange(
        "The retry with a new proof carrying that nonce: forwarded",
        "GET",
        &orders,
        Some(&token),
        Some(&retry),
        &ex,
        None,
    );

    if options.keep_running {
        keep_running(out, dir, &key, &token, &url, admin).await?;
    } else {
        out.note("Done: the upstream received only the two requests the gateway forwarded.");
        out.note(&format!(
            "Run `{} demo --keep-running` to try it yourself with curl.",
            exe_name()
        ));
    }
    running.shutdown().await;
    Ok(())
}

/// The copy-paste commands, then wait for Ctrl-C.
async fn keep_running(
    out: &mut Out,
    dir: &std::path::Path,
    key: &PrivateJwk,
    token: &str,
    url: &str,
    admin: SocketAddr,
) -> Result<(), String> {
    let key_path = dir.join("client.jwk");
    let token_path = dir.join("token");
    std::fs::write(&key_path, key.to_json()).map_err(|e| format!("{}: {e}", key_path.display()))?;
    std::fs::write(&token_path, token).map_err(|e| format!("{}: {e}", token_path.display()))?;
    let exe = exe_name();
    let (k, t) = (key_path.display(), token_path.display());
    let curl = format!(
        "curl -i {url} -H \"Authorization: DPoP $(cat {t})\" \\\n  -H \"DPoP: $({exe} proof --key {k} --method GET --url {url} --token \"$(cat {t})\")\""
    );
    let replay = format!(
        "P=$({exe} proof --key {k} --method GET --url {url} --token \"$(cat {t})\")\n\
         curl -s -o /dev/null -w '%{{http_code}}\\n' {url} -H \"Authorization: DPoP $(cat {t})\" -H \"DPoP: $P\"   # 200\n\
         curl -si {url} -H \"Authorization: DPoP $(cat {t})\" -H \"DPoP: $P\" | grep -i www-authenticate   # replay"
    );
    let explain = format!(
        "{exe} explain -c {} --proof \"$P\" --token \"$(cat {t})\" --method POST --url {url}",
        dir.join("gateway.yaml").display()
    );
    let lines = [
        "The demo keeps running. Try it (the key and token are in a temp dir, removed on exit):"
            .to_owned(),
        String::new(),
        curl.clone(),
        String::new(),
        replay.clone(),
        String::new(),
        "Why would that proof be refused for a POST? explain runs the gateway's checks on it:"
            .to_owned(),
        explain.clone(),
        String::new(),
        format!("Every decision, with what was compared: http://{admin}/explorer"),
        "Press Ctrl-C to stop.".to_owned(),
    ];
    out.step(
        "Your turn",
        &lines,
        json!({ "curl": curl, "replay": replay, "explain": explain, "explorer": format!("http://{admin}/explorer") }),
    );
    if out.json {
        // The commands are in the document; print it now, since it ends only on Ctrl-C.
        println!("{}", json!({ "steps": out.steps }));
        out.steps.clear();
        out.json = false;
    }
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

fn exe_name() -> String {
    std::env::current_exe()
        .ok()
        .map_or_else(|| "dpop-gateway".to_owned(), |p| p.display().to_string())
}

/// The JSON RFC 7638 §3.2 hashes: the required members, sorted, no whitespace (EC keys).
fn rfc7638_input(jwk: &Map<String, Value>) -> Option<String> {
    let get = |k: &str| jwk.get(k).and_then(Value::as_str);
    (get("kty")? == "EC").then_some(())?;
    Some(format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        get("crv")?,
        get("x")?,
        get("y")?
    ))
}

/// The `i`th part of a compact JWS, decoded as JSON.
fn decoded_part(jws: &str, i: usize) -> Value {
    jws.split('.')
        .nth(i)
        .and_then(|p| B64.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

async fn send(
    client: &DemoClient,
    method: &str,
    url: &str,
    token: Option<&str>,
    proof: Option<&str>,
) -> Result<Exchange, String> {
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("DPoP {t}"));
    }
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (www_authenticate, dpop_nonce) = (header("www-authenticate"), header("dpop-nonce"));
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    Ok(Exchange {
        status,
        www_authenticate,
        dpop_nonce,
        body,
    })
}

/// The explorer's newest decision id.
async fn latest_id(client: &DemoClient, admin: SocketAddr) -> Result<u64, String> {
    let doc = admin_json(client, admin, "/explorer/decisions.json").await?;
    Ok(doc["decisions"][0]["id"].as_u64().unwrap_or(0))
}

/// The failed check of the gateway's newest decision after `last`, as its explorer recorded it.
async fn compared(client: &DemoClient, admin: SocketAddr, last: &mut u64) -> Result<Value, String> {
    let doc = admin_json(
        client,
        admin,
        &format!("/explorer/decisions.json?after={last}"),
    )
    .await?;
    let decision = &doc["decisions"][0];
    *last = decision["id"].as_u64().unwrap_or(*last);
    let failed = decision["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["status"] == "fail"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(json!({
        "reason": decision["reason"],
        "check": failed["name"],
        "expected": failed["expected"],
        "actual": failed["actual"],
    }))
}

async fn admin_json(client: &DemoClient, admin: SocketAddr, path: &str) -> Result<Value, String> {
    let req = Request::get(format!("http://{admin}{path}"))
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("the explorer's answer: {e}"))
}

// === impl Out ===

impl Out {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    /// Highlighted (bold yellow).
    fn hi(&self, s: &str) -> String {
        self.paint("1;33", s)
    }

    fn step(&mut self, title: &str, lines: &[String], data: Value) {
        let n = self.steps.len() + 1;
        if !self.json {
            println!("{}", self.paint("1;36", &format!("== {n}. {title}")));
            for l in lines {
                if l.is_empty() {
                    println!();
                } else {
                    println!("   {l}");
                }
            }
            println!();
        }
        self.steps
            .push(json!({ "step": n, "title": title, "text": lines, "data": data }));
    }

    fn note(&mut self, line: &str) {
        if !self.json {
            println!("   {line}\n");
        } else if let Some(last) = self.steps.last_mut() {
            if let Some(notes) = last["notes"].as_array_mut() {
                notes.push(json!(line));
            } else {
                last["notes"] = json!([line]);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn exchange(
        &mut self,
        title: &str,
        method: &str,
        url: &str,
        token: Option<&str>,
        proof: Option<&str>,
        ex: &Exchange,
        compared: Option<&Value>,
    ) {
        let mut lines = vec![format!("{method} {url}")];
        if let Some(t) = token {
            lines.push(format!("Authorization: DPoP {}…", &t[..t.len().min(24)]));
        }
        if let Some(p) = proof {
            let c = decoded_part(p, 1);
            lines.push(format!(
                "DPoP: {}…  (htm {}, htu {}, iat {}{})",
                &p[..p.len().min(16)],
                c["htm"].as_str().unwrap_or("-"),
                c["htu"].as_str().unwrap_or("-"),
                c["iat"],
                c["nonce"]
                    .as_str()
                    .map(|n| format!(", nonce {}…", &n[..n.len().min(12)]))
                    .unwrap_or_default()
            ));
        }
        let ok = ex.status < 400;
        let status = self.paint(
            if ok { "1;32" } else { "1;31" },
            &format!("-> {}", ex.status),
        );
        lines.push(status);
        if let Some(w) = &ex.www_authenticate {
            lines.push(format!("   WWW-Authenticate: {w}"));
        }
        if let Some(n) = &ex.dpop_nonce {
            lines.push(format!("   DPoP-Nonce: {}", self.hi(n)));
        }
        if !ok {
            lines.push(format!("   {}", ex.body));
        }
        if let Some(c) = compared {
            lines.push(format!(
                "   the gateway compared ({}): expected {} / got {}",
                c["check"].as_str().unwrap_or("?"),
                self.hi(c["expected"].as_str().unwrap_or("-")),
                self.hi(c["actual"].as_str().unwrap_or("-"))
            ));
        }
        let data = json!({
            "request": { "method": method, "url": url, "token": token.is_some(), "proof": proof.map(|p| decoded_part(p, 1)) },
            "response": { "status": ex.status, "www_authenticate": ex.www_authenticate,
                          "dpop_nonce": ex.dpop_nonce, "body": ex.body },
            "compared": compared,
        });
        self.step(title, &lines, data);
    }
}

/// An upstream that answers with the headers it received.
async fn start_echo() -> Result<SocketAddr, String> {
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
                    if !req.headers().contains_key("dpop") {
                        seen.push("(no dpop header)".into());
                    }
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

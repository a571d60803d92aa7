//! (f): the gateway as a decision service (`forward_auth.listen`), what issue "Fit an existing
//! ingress" asks to compare with the gateway as a proxy. One gateway process serves both its
//! proxy listener and its decision listener; rows:
//!
//! - (f0) decisions asked directly (Envoy `ext_authz` style) for an `auth: none` path: a
//!   request answered without checks and without an upstream hop. (b) − (f0) is what the
//!   upstream hop of a proxied request costs the gateway.
//! - (f1) DPoP ES256 decisions asked directly, unique proofs naming the decision URL.
//! - (f) nginx `auth_request` (the shipped `deploy/ingress/nginx.conf`, addresses replaced)
//!   in front of the upstream, asking the gateway; unique proofs naming the nginx URL. CPU of
//!   nginx and of the gateway, each per request.
//!
//! The claim checked: gateway CPU per decision ≤ gateway CPU per proxied DPoP request (c)
//! minus its upstream hop ((b) − (f0)); also against the stricter (c) − (b).

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::rc::Rc;

use dpop_gateway::clock;
use dpop_gateway::jose::sign::PrivateJwk;

use crate::launch::{gateway_yaml, start_gateway, wait_listening, which};
use crate::ports::free_port;
use crate::process::{cpu_ns, pinned, Proxy};
use crate::requests::{mint_batch, plain_request, Source};
use crate::{skipped, Phase, Run};

const F0: &str = "(f0) gateway decision, auth: none path (no upstream hop)";
const F1: &str = "(f1) gateway decision DPoP ES256, asked directly";
const F: &str = "(f) nginx auth_request + gateway decision DPoP ES256";

/// `LOADBENCH_ONLY=f`: (b) and (c) on the main gateway, then the (f) rows and their targets.
pub async fn alone(
    r: &Run,
    gw: &Proxy,
    gw_addr: SocketAddr,
    jwks: &Path,
    keys: &[PrivateJwk],
    tokens: &[String],
    verify_ns: f64,
) -> String {
    let b = r
        .closed(
            "(b) gateway auth: none",
            gw_addr,
            Source::Fixed(plain_request(gw_addr, "/open/x")),
            Some(gw),
        )
        .await;
    let proofs = mint_batch(keys, tokens, gw_addr, budget(r, verify_ns));
    let c = r
        .closed(
            "(c) gateway DPoP ES256, memory replay",
            gw_addr,
            Source::Unique(Rc::new(proofs), Rc::new(Cell::new(0))),
            Some(gw),
        )
        .await;
    let mut phases = vec![b, c];
    let (rows, lines) = run(r, jwks, keys, tokens, verify_ns, &phases).await;
    phases.extend(rows);
    let mut out: String = phases.iter().map(|p| p.row() + "\n").collect();
    for l in lines {
        let _ = writeln!(out, "- {l}");
    }
    out
}

/// Enough unique proofs for 1.5x the verify-bound rate over warm-up + measure.
fn budget(r: &Run, verify_ns: f64) -> usize {
    let secs = (r.plan.warmup + r.plan.measure).as_secs_f64();
    ((1e9 / verify_ns) * secs * 1.5) as usize + 1000
}

/// The (f) rows and the target lines comparing them with `measured`'s (b) and (c).
pub async fn run(
    r: &Run,
    jwks: &Path,
    keys: &[PrivateJwk],
    tokens: &[String],
    verify_ns: f64,
    measured: &[Phase],
) -> (Vec<Phase>, Vec<String>) {
    let port = free_port();
    let decide_port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let decisions: SocketAddr = ([127, 0, 0, 1], decide_port).into();
    let yaml = gateway_yaml(
        port,
        r.upstream,
        jwks,
        "  backend: memory\n  capacity: 1000000",
        60,
    ) + &format!("forward_auth:\n  listen: \"{decisions}\"\n");
    let gw = match start_gateway(&r.dir, "gateway-forward-auth", &yaml, addr) {
        Ok(g) => g,
        Err(e) => {
            return (
                vec![skipped(F, format!("the gateway did not start: {e}"))],
                vec![],
            )
        }
    };
    if let Err(e) = listening(decisions).await {
        gw.stop();
        return (vec![skipped(F, e)], vec![]);
    }
    let mut rows = Vec::new();
    let mut f0 = r
        .closed(
            F0,
            decisions,
            Source::Fixed(plain_request(decisions, "/open/x")),
            Some(&gw),
        )
        .await;
    f0.note
        .push_str("Envoy-style decision requests, 200 without checks");
    rows.push(f0);
    let direct = mint_batch(keys, tokens, decisions, budget(r, verify_ns));
    let mut f1 = r
        .closed(
            F1,
            decisions,
            Source::Unique(Rc::new(direct), Rc::new(Cell::new(0))),
            Some(&gw),
        )
        .await;
    f1.note.push_str("proofs name the decision URL");
    rows.push(f1);

    let mut gateway_per_decision = None;
    match start_auth_request_nginx(&r.dir, decisions, r.upstream) {
        Ok(ngx) => {
            let proofs = mint_batch(keys, tokens, ngx.addr, budget(r, verify_ns));
            // The gateway's CPU over the same window as nginx's (which `closed` samples).
            let from = clock::monotonic() + r.plan.warmup;
            let to = from + r.plan.measure;
            let pids = gw.pids();
            let used = Rc::new(RefCell::new(None));
            let sampler = {
                let used = Rc::clone(&used);
                tokio::task::spawn_local(async move {
                    tokio::time::sleep_until(from.into()).await;
                    let a: u64 = pids.iter().map(|p| cpu_ns(*p)).sum();
                    tokio::time::sleep_until(to.into()).await;
                    let b: u64 = pids.iter().map(|p| cpu_ns(*p)).sum();
                    *used.borrow_mut() = Some(b.saturating_sub(a));
                })
            };
            let mut f = r
                .closed(
                    F,
                    ngx.addr,
                    Source::Unique(Rc::new(proofs), Rc::new(Cell::new(0))),
                    Some(&ngx),
                )
                .await;
            match f.cpu_us_per_req {
                Some(nginx) => {
                    let _ = sampler.await;
                    let gateway =
                        (*used.borrow()).map(|ns| ns as f64 / 1e3 / f.requests.max(1) as f64);
                    if let Some(g) = gateway {
                        gateway_per_decision = Some(g);
                        f.cpu_us_per_req = Some(nginx + g);
                        let _ = write!(
                            f.note,
                            "CPU/req: nginx {nginx:.1} µs + gateway {g:.1} µs (the column is both); "
                        );
                    }
                }
                None => sampler.abort(),
            }
            f.note
                .push_str("shipped nginx.conf, keepalive to the API added as in (e)");
            rows.push(f);
            ngx.stop();
        }
        Err(e) => rows.push(skipped(F, e)),
    }
    gw.stop();

    let all: Vec<&Phase> = measured.iter().chain(rows.iter()).collect();
    let cpu = |prefix: &str| {
        all.iter()
            .find(|p| p.name.starts_with(prefix))
            .and_then(|p| p.cpu_us_per_req)
    };
    let mut lines = Vec::new();
    let (b, c, f0, f1, e) = (cpu("(b)"), cpu("(c)"), cpu("(f0)"), cpu("(f1)"), cpu("(e)"));
    if let (Some(b), Some(c), Some(f0)) = (b, c, f0) {
        let hop = b - f0;
        let bound = c - hop;
        let verdict = |x: f64, bound: f64| if x <= bound { "met" } else { "NOT met" };
        let _ = f1.map(|f1| {
            lines.push(format!(
                "gateway CPU per DPoP decision asked directly (f1): {f1:.1} µs; proxied DPoP request (c) {c:.1} µs minus its upstream hop ((b) {b:.1} − (f0) {f0:.1} = {hop:.1} µs) = {bound:.1} µs: {} (target: decision <= proxied − hop)",
                verdict(f1, bound)
            ))
        });
        if let Some(g) = gateway_per_decision {
            lines.push(format!(
                "gateway CPU per DPoP decision behind nginx auth_request (f): {g:.1} µs vs (c) − hop {bound:.1} µs: {}; vs the stricter (c) − (b) = {:.1} µs (which also takes off the cost of the request the decision still answers): {}",
                verdict(g, bound),
                c - b,
                verdict(g, c - b)
            ));
        }
    }
    if let (Some(total), Some(g), Some(c)) = (cpu("(f)"), gateway_per_decision, c) {
        let nginx = total - g;
        let mut line = format!(
            "(f) CPU per request of both processes: {total:.1} µs (nginx {nginx:.1} + gateway {g:.1}) vs gateway as proxy (c) {c:.1} µs"
        );
        if let Some(e) = e {
            let _ = write!(line, "; nginx as a plain proxy (e) {e:.1} µs");
        }
        lines.push(line);
    }
    (rows, lines)
}

/// Waits until the decision listener accepts (the proxy listener did already).
async fn listening(addr: SocketAddr) -> Result<(), String> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(format!(
        "the decision listener {addr} did not accept in 5 s"
    ))
}

/// nginx with the shipped `auth_request` config, asking `decisions` and proxying to `api`,
/// pinned to core 0 like every proxy. One change: keep-alive connections to the API (the
/// shipped file leaves that to the site; (e) keeps them alive too).
fn start_auth_request_nginx(
    dir: &Path,
    decisions: SocketAddr,
    api: SocketAddr,
) -> Result<Proxy, String> {
    let bin = which("nginx").ok_or("nginx is not installed (apt-get install -y nginx)")?;
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/ingress/nginx.conf");
    let site =
        std::fs::read_to_string(&shipped).map_err(|e| format!("{}: {e}", shipped.display()))?;
    let port = free_port();
    let site = site
        .replace("127.0.0.1:8081", &decisions.to_string())
        .replace(
            "server 127.0.0.1:8080;          # your API",
            &format!("server {api};\n    keepalive 64;"),
        )
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
        .replace(
            "        proxy_pass http://dpop_protected_api;",
            "        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        proxy_pass http://dpop_protected_api;",
        );
    if !site.contains(&format!("server {api};")) || !site.contains("proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        proxy_pass http://dpop_protected_api") {
        return Err("deploy/ingress/nginx.conf changed: update benches/load/decide.rs".into());
    }
    let d = dir.join("nginx-auth-request");
    std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    std::fs::write(d.join("dpop-gateway.conf"), site).map_err(|e| e.to_string())?;
    let dd = d.display();
    let main = format!(
        r#"worker_processes 1;
worker_cpu_affinity 1;
daemon off;
user root;
pid {dd}/nginx.pid;
error_log {dd}/error.log;
events {{ worker_connections 4096; }}
http {{
  keepalive_requests 10000000;
  access_log {dd}/access.log;
  client_body_temp_path {dd}/body;
  proxy_temp_path {dd}/proxy;
  fastcgi_temp_path {dd}/fcgi;
  uwsgi_temp_path {dd}/uwsgi;
  scgi_temp_path {dd}/scgi;
  include {dd}/dpop-gateway.conf;
}}
"#
    );
    let conf = d.join("nginx.conf");
    std::fs::write(&conf, main).map_err(|e| e.to_string())?;
    let log = d.join("stderr.log");
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut child = pinned(0, &bin)
        .arg("-p")
        .arg(&d)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(d.join("error.log"))
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .map_err(|e| format!("spawn nginx: {e}"))?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    match wait_listening(&mut child, addr, &log) {
        Ok(()) => Ok(Proxy { child, addr }),
        Err(e) => {
            let _ = child.kill();
            Err(e)
        }
    }
}

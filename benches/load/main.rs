//! The load benchmark: one command, one table (see `benches/README.md`).
//!
//! `cargo bench --bench loadbench` (about 3 minutes) or `cargo bench --bench loadbench -- --quick`
//! (seconds; what CI smoke-runs). Under `cargo test` it does nothing.
//!
//! What it does, over loopback only: starts a fast upstream (hyper, HTTP/1.1) and the load
//! generator on core 1 of this process, and the built gateway binary (`CARGO_BIN_EXE_dpop-gateway`,
//! `run -c <generated config>`) as a child under `taskset -c 0`; pre-generates unique ES256 proofs
//! (never reusing a `jti`) for a few client keys; then measures, in one run:
//! (a) upstream direct, (b) gateway `auth: none`, (b')/(c'')/(b'') HTTPS and HTTP/2 upstreams
//! (benches/load/upstreams.rs), (c) gateway verifying DPoP with the memory
//! replay cache, (d) the same with Redis (when a `redis-server` is installed and the gateway
//! accepts `backend: redis`), (e) nginx as a plain reverse proxy (when installed), (f) forward-auth
//! decisions behind nginx auth_request (benches/load/decide.rs), then open-loop
//! latency at 50% of (c)'s rate against (a) and (c), and a streamed upload through (c).
//!
//! Per run: requests/s, latency p50/p99/p99.9, CPU µs per request of the proxy process(es) (from
//! `/proc/<pid>/stat` utime+stime), peak RSS (`VmHWM`, reset before each phase through
//! `/proc/<pid>/clear_refs`). Every loop is bounded in count and in time.
//!
//! Why a `[[bench]]` and not `src/bin`: cargo builds the gateway binary for it (with the release
//! settings of the bench profile) and hands us its path, the command stays `cargo bench`, and no
//! benchmark binary ships with the gateway.

// reason: a bench binary is its own crate; `pub` in its modules documents their surface.
#![allow(unreachable_pub, missing_docs)]

#[path = "../../tests/e2e/support/ports.rs"]
mod ports;

mod client;
mod decide;
mod launch;
mod process;
mod requests;
mod same_rate;
mod tls;
mod upstream;
mod upstreams;

use client::*;
use launch::*;
use ports::free_port;
use process::*;
use requests::*;
use upstream::*;

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use dpop_gateway::clock::{self, Clock, SystemClock};
use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The gateway binary cargo built for this bench.
const BUILT_GATEWAY_BIN: &str = env!("CARGO_BIN_EXE_dpop-gateway");

/// The gateway binary to measure: the one cargo built for this bench, or
/// `LOADBENCH_GATEWAY_BIN` (to compare two builds with the same harness, e.g. before/after).
fn gateway_bin() -> PathBuf {
    std::env::var_os("LOADBENCH_GATEWAY_BIN")
        .map_or_else(|| PathBuf::from(BUILT_GATEWAY_BIN), PathBuf::from)
}

/// Set in the re-executed, pinned child.
const PINNED_ENV: &str = "LOADBENCH_PINNED";

/// Client keys the proofs are spread over.
const CLIENT_KEYS: usize = 4;

/// The run's knobs.
#[derive(Clone, Copy, Debug)]
struct Plan {
    quick: bool,
    warmup: Duration,
    measure: Duration,
    open_loop: Duration,
    connections: usize,
    open_connections: usize,
    upload_bytes: u64,
    /// `--soak SECS`: only the open-loop DPoP run at 25% of (c), minting proofs as it goes.
    soak: Option<Duration>,
}

/// One measured phase.
#[derive(Default, Clone)]
struct Phase {
    name: String,
    requests: u64,
    errors: u64,
    secs: f64,
    lat_ns: Vec<u64>,
    cpu_us_per_req: Option<f64>,
    peak_rss_kib: Option<u64>,
    note: String,
    /// p50, p99, p99.9 in µs when the client reported only those (wrk), instead of `lat_ns`.
    pct_us: Option<[u64; 3]>,
}

// === impl Plan ===

impl Plan {
    fn from_args() -> Option<Plan> {
        let args: Vec<String> = std::env::args().collect();
        let quick = args.iter().any(|a| a == "--quick");
        let soak = args
            .iter()
            .position(|a| a == "--soak")
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.clamp(10, 3600)));
        // `cargo bench` passes `--bench`; `cargo test` passes nothing: do nothing then.
        if !(quick || soak.is_some() || args.iter().any(|a| a == "--bench")) {
            return None;
        }
        let secs = |q: u64, full: u64| Duration::from_secs(if quick { q } else { full });
        Some(Plan {
            quick,
            warmup: Duration::from_millis(if quick { 300 } else { 2000 }),
            measure: secs(1, 12),
            open_loop: secs(1, 12),
            connections: 32,
            open_connections: 64,
            upload_bytes: if quick { 64 << 20 } else { 1 << 30 },
            soak,
        })
    }
}

// === impl Phase ===

impl Phase {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }

    fn pct(&self, p: f64) -> String {
        if let Some(pct) = self.pct_us {
            let i = usize::from(p > 0.5) + usize::from(p > 0.99);
            return format!("{}", pct[i]);
        }
        if self.lat_ns.is_empty() {
            return "-".into();
        }
        let i = ((self.lat_ns.len() as f64 * p).ceil() as usize).clamp(1, self.lat_ns.len()) - 1;
        format!("{:.0}", self.lat_ns[i] as f64 / 1000.0)
    }

    fn row(&self) -> String {
        format!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            self.name,
            self.rps(),
            self.pct(0.50),
            self.pct(0.99),
            self.pct(0.999),
            self.cpu_us_per_req
                .map_or("-".into(), |c| format!("{c:.1}")),
            self.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
            self.errors,
            self.note
        )
    }
}

struct Run {
    plan: Plan,
    dir: PathBuf,
    upstream: SocketAddr,
}

impl Run {
    /// A closed-loop phase against `target` (CPU and peak RSS of `proxy` when given).
    async fn closed(
        &self,
        name: &str,
        target: SocketAddr,
        source: Source,
        proxy: Option<&Proxy>,
    ) -> Phase {
        self.closed_n(name, target, source, proxy, self.plan.connections)
            .await
    }

    /// [`Run::closed`] over `conns` connections.
    async fn closed_n(
        &self,
        name: &str,
        target: SocketAddr,
        source: Source,
        proxy: Option<&Proxy>,
        conns: usize,
    ) -> Phase {
        let source = Rc::new(source);
        let t0 = clock::monotonic();
        let measure_from = t0 + self.plan.warmup;
        let deadline = measure_from + self.plan.measure;
        // CPU is sampled at the edges of the measured window by a side task.
        let cpu = Rc::new(RefCell::new((0u64, 0u64, 0u64, 0u64)));
        let sampler = proxy.map(|p| {
            let pids = p.pids();
            let cpu = Rc::clone(&cpu);
            tokio::task::spawn_local(async move {
                tokio::time::sleep_until(measure_from.into()).await;
                let a: u64 = pids.iter().map(|p| cpu_ns(*p)).sum();
                let wa = core0_busy_ns();
                tokio::time::sleep_until(deadline.into()).await;
                let b: u64 = pids.iter().map(|p| cpu_ns(*p)).sum();
                let wb = core0_busy_ns();
                *cpu.borrow_mut() = (a, b, wa, wb);
            })
        });
        if let Some(p) = proxy {
            p.reset_peak();
        }
        let (st, secs) = closed_loop(target, source, conns, measure_from, deadline).await;
        let mut ph = self.phase(name, st, secs);
        if let (Some(p), Some(s)) = (proxy, sampler) {
            let ran_full = secs + 0.05 >= self.plan.measure.as_secs_f64();
            if ran_full {
                let _ = s.await;
                let (a, b, wa, wb) = *cpu.borrow();
                let used = b.saturating_sub(a) as f64;
                let others = (wb.saturating_sub(wa) as f64 - used).max(0.0);
                ph.cpu_us_per_req = Some(used / 1e3 / ph.requests.max(1) as f64);
                // On a closed loop the proxy should use all of core 0; other processes there
                // (a shared machine) take from it.
                let _ = write!(
                    ph.note,
                    "core 0: proxy {:.0}%, other processes {:.0}%; ",
                    100.0 * used / (secs * 1e9),
                    100.0 * others / (secs * 1e9)
                );
            } else {
                s.abort();
                ph.note.push_str("ran out of proofs early; ");
            }
            ph.peak_rss_kib = Some(p.peak_rss_kib());
        }
        ph
    }

    async fn open(&self, name: &str, target: SocketAddr, source: Source, rate: f64) -> Phase {
        let dur = self.plan.soak.unwrap_or(self.plan.open_loop);
        let (st, secs) = open_loop(
            target,
            Rc::new(source),
            self.plan.open_connections,
            rate,
            dur,
        )
        .await;
        let late = same_rate::late_p99_us(&st);
        let mut ph = self.phase(name, st, secs);
        ph.note = format!("open loop at {rate:.0} req/s, generator late p99 {late:.0} µs; ");
        ph
    }

    fn phase(&self, name: &str, mut st: ConnStats, secs: f64) -> Phase {
        st.lat_ns.sort_unstable();
        Phase {
            name: name.into(),
            requests: st.ok,
            errors: st.errors,
            secs,
            lat_ns: st.lat_ns,
            ..Phase::default()
        }
    }
}

fn skipped(name: &str, why: String) -> Phase {
    Phase {
        name: name.into(),
        note: format!("skipped: {why}"),
        ..Phase::default()
    }
}

fn main() {
    let Some(plan) = Plan::from_args() else {
        println!("loadbench: nothing to do under `cargo test`; run `cargo bench --bench loadbench` (or `-- --quick`)");
        return;
    };
    // Put this process (load generator + upstream) on core 1; the proxies get core 0.
    if std::env::var_os(PINNED_ENV).is_none() && cores() >= 2 && which("taskset").is_some() {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let status = Command::new("taskset")
            .arg("-c")
            .arg("1")
            .arg(exe)
            .args(std::env::args().skip(1))
            .env(PINNED_ENV, "1")
            .status();
        std::process::exit(status.map_or(1, |s| s.code().unwrap_or(1)));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&rt, run(plan));
    print!("{report}");
}

async fn run(plan: Plan) -> String {
    let load_before = loadavg();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let out_dir = target_dir.join("loadbench");
    let dir = out_dir.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("upstream bind: {e}"));
    let up = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("upstream addr: {e}"));
    tokio::task::spawn_local(upstream(listener));

    // The issuer, its JWKS file, the client keys and their bound tokens.
    let issuer = PrivateJwk::generate(Algorithm::ES256).unwrap_or_else(|e| panic!("{e}"));
    let mut jwk = issuer.public_jwk();
    jwk.insert("kid".into(), json!("loadbench"));
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, json!({ "keys": [jwk] }).to_string())
        .unwrap_or_else(|e| panic!("jwks: {e}"));
    let keys: Vec<PrivateJwk> = (0..CLIENT_KEYS)
        .map(|_| PrivateJwk::generate(Algorithm::ES256).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let now = SystemClock.now().as_secs();
    let tokens: Vec<String> = keys
        .iter()
        .map(|k| {
            let mut h = serde_json::Map::new();
            h.insert("typ".into(), json!("at+jwt"));
            h.insert("kid".into(), json!("loadbench"));
            let claims = json!({
                "iss": "https://as.example.com", "aud": "https://api.example.com",
                "sub": "loadbench", "client_id": "loadbench", "scope": "read",
                "iat": now, "exp": now + 7200,
                "cnf": { "jkt": k.thumbprint().to_string() },
            });
            issuer
                .sign_jws(h, &claims)
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();

    let verify_ns = ring_p256_verify_ns();
    let r = Run {
        plan,
        dir: dir.clone(),
        upstream: up,
    };
    let mut phases: Vec<Phase> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // The memory-backed gateway serves (b), (c), the open loop and the upload.
    let port = free_port();
    let gw_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let yaml = gateway_yaml(
        port,
        up,
        &jwks,
        "  backend: memory\n  capacity: 1000000",
        60,
    );
    let gw = match start_gateway(&dir, "gateway-memory", &yaml, gw_addr) {
        Ok(g) => g,
        Err(e) => return format!("loadbench: the gateway did not start: {e}\n"),
    };
    let idle_rss = gw.rss_kib();

    if let Some(soak) = plan.soak {
        let out = soak_run(&r, &gw, &keys, &tokens, verify_ns, soak).await;
        gw.stop();
        return out;
    }

    // LOADBENCH_ONLY=c runs (c) alone (for profiling the DPoP path with LOADBENCH_PROFILE);
    // LOADBENCH_ONLY=open runs (c) and then the open-loop pair (for the latency tail);
    // LOADBENCH_ONLY=b runs (a) and (b) (for profiling the proxy hop).
    let only = std::env::var("LOADBENCH_ONLY").unwrap_or_default();
    // LOADBENCH_ONLY=f runs (b), (c) and the forward-auth decision rows (benches/load/decide.rs).
    if only == "f" {
        let out = decide::alone(&r, &gw, gw_addr, &jwks, &keys, &tokens, verify_ns).await;
        gw.stop();
        return out;
    }
    let (d, g, k, t, len) = (&dir, &gw, &keys[0], &tokens[0], plan.upload_bytes);
    let upload = move || upload_phase(d, g, up, gw_addr, k, t, len);
    if only == "upload" {
        let line = upload().await;
        gw.stop();
        return format!("{line}\n");
    }
    // LOADBENCH_ONLY=hop: the plain hop rows; LOADBENCH_ONLY=tls: the TLS rows.
    if only == "hop" || only == "tls" {
        let rows = if only == "hop" {
            same_rate::hop_only(&r, &gw).await
        } else {
            tls::rows(&r, &jwks).await
        };
        gw.stop();
        return same_rate::table(&rows, verify_ns);
    }
    let only_c = only == "c";
    let only_open = only == "open";
    if !only_c && !only_open {
        let mut a = r
            .closed(
                "(a) upstream direct",
                up,
                Source::Fixed(plain_request(up, "/open/x")),
                None,
            )
            .await;
        a.note.push_str("no proxy: load generator + upstream only");
        phases.push(a);
        let b = r
            .closed(
                "(b) gateway auth: none",
                gw_addr,
                Source::Fixed(plain_request(gw_addr, "/open/x")),
                Some(&gw),
            )
            .await;
        phases.push(b);
        phases.extend(upstreams::rows(&r, &jwks, &keys, &tokens, verify_ns).await);
        if only == "b" {
            gw.stop();
            let rows: Vec<String> = phases.iter().map(Phase::row).collect();
            return format!("{}\n", rows.join("\n"));
        }
    }

    // (c): enough unique proofs for 1.5x the verify-bound rate over warm-up + measure.
    let budget = |secs: f64| ((1e9 / verify_ns) * secs * 1.5) as usize + 1000;
    let total = (plan.warmup + plan.measure).as_secs_f64();
    let t_mint = clock::monotonic();
    let proofs = mint_batch(&keys, &tokens, gw_addr, budget(total));
    notes.push(format!(
        "minted {} unique ES256 proofs for (c) in {:.1} s",
        proofs.len(),
        t_mint.elapsed().as_secs_f64()
    ));
    let c = r
        .closed(
            "(c) gateway DPoP ES256, memory replay",
            gw_addr,
            Source::Unique(Rc::new(proofs), Rc::new(Cell::new(0))),
            Some(&gw),
        )
        .await;
    let c_rps = c.rps();
    if only_c {
        gw.stop();
        return format!("{}\n", c.row());
    }
    phases.push(c);

    // (d): Redis, when there is one and the gateway takes it.
    if !only_open {
        phases.push(redis_phase(&r, &jwks, &keys, &tokens, verify_ns).await);
        // (b64), (b64w), (b@c): the hop at 64 connections, with wrk, and at (c)'s rate.
        phases.extend(same_rate::gateway_rows(&r, &gw, Some(c_rps)).await);
    }

    // (e): nginx.
    let nginx = if only_open {
        Err("LOADBENCH_ONLY=open".to_string())
    } else {
        start_nginx(&dir, up)
    };
    match nginx {
        Ok(ngx) => {
            let e = r
                .closed(
                    "(e) nginx reverse proxy",
                    ngx.addr,
                    Source::Fixed(plain_request(ngx.addr, "/open/x")),
                    Some(&ngx),
                )
                .await;
            phases.push(e);
            phases.extend(same_rate::nginx_rows(&r, &ngx, Some(c_rps)).await);
            ngx.stop();
        }
        Err(e) => phases.push(Phase {
            name: "(e) nginx reverse proxy".into(),
            note: format!("skipped: {e}"),
            ..Phase::default()
        }),
    }

    // (f): forward-auth decisions, direct and behind nginx auth_request.
    let (f_rows, f_lines) = if only_open {
        (Vec::new(), Vec::new())
    } else {
        decide::run(&r, &jwks, &keys, &tokens, verify_ns, &phases).await
    };
    phases.extend(f_rows);

    // (t): TLS termination, the gateway and nginx.
    if !only_open {
        phases.extend(tls::rows(&r, &jwks).await);
    }

    // Open loop at 50% of (c)'s max rate, direct and through the gateway.
    let rate = (c_rps * 0.5).max(100.0);
    let oa = r
        .open(
            "(a') direct, open loop",
            up,
            Source::Fixed(plain_request(up, "/open/x")),
            rate,
        )
        .await;
    let open_proofs = mint_batch(
        &keys,
        &tokens,
        gw_addr,
        (rate * plan.open_loop.as_secs_f64() * 1.1) as usize + 1000,
    );
    gw.reset_peak();
    let t = gw.cpu_ns();
    let w = core0_busy_ns();
    let mut oc = r
        .open(
            "(c') gateway DPoP, open loop",
            gw_addr,
            Source::Unique(Rc::new(open_proofs), Rc::new(Cell::new(0))),
            rate,
        )
        .await;
    oc.cpu_us_per_req =
        Some(gw.cpu_ns().saturating_sub(t) as f64 / 1e3 / oc.requests.max(1) as f64);
    let others = (core0_busy_ns().saturating_sub(w) as f64
        - oc.cpu_us_per_req.unwrap_or(0.0) * 1e3 * oc.requests as f64)
        .max(0.0);
    // "50% load" is half of (c)'s closed-loop rate; unbatched, a request costs more CPU, so the
    // core is busier than half: the tail is read against this.
    let _ = write!(
        oc.note,
        "core 0: gateway {:.0}% busy, other processes {:.0}%; ",
        oc.cpu_us_per_req.unwrap_or(0.0) * oc.requests as f64 / (oc.secs * 1e4),
        100.0 * others / (oc.secs * 1e9)
    );
    oc.peak_rss_kib = Some(gw.peak_rss_kib());
    let added_p99 = oc
        .lat_ns
        .get(oc.lat_ns.len().saturating_sub(1) * 99 / 100)
        .copied();
    phases.push(oa.clone());
    phases.push(oc.clone());
    // (e'): nginx at the same rate, for the added p99.
    phases.push(same_rate::nginx_open(&r, up, rate).await);
    if only_open {
        gw.stop();
        let rows: Vec<String> = phases.iter().map(Phase::row).collect();
        return format!("{}\n", rows.join("\n"));
    }

    let upload_line = upload().await;
    let final_rss = gw.rss_kib();
    gw.stop();

    // The report.
    let mut out = String::new();
    let _ = writeln!(out, "\n# loadbench results\n");
    let _ = writeln!(
        out,
        "machine: {} cores, {}; {}; gateway `{}` pinned to core 0, load generator + upstream on core 1; mode: {}\n",
        cores(),
        cpu_model(),
        load_before,
        gateway_bin().display(),
        if plan.quick { "--quick" } else { "full" }
    );
    let _ = writeln!(out, "| run | req/s | p50 µs | p99 µs | p99.9 µs | proxy CPU µs/req | peak RSS MiB | errors | notes |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for p in &phases {
        let _ = writeln!(out, "{}", p.row());
    }
    let _ = writeln!(out, "\n{upload_line}");
    let _ = writeln!(
        out,
        "gateway RSS: {:.1} MiB idle at start, {:.1} MiB at the end",
        idle_rss as f64 / 1024.0,
        final_rss as f64 / 1024.0
    );
    // Targets, as ratios measured in this run.
    let _ = writeln!(out, "\n## targets (measured in this run)\n");
    let find = |prefix: &str| phases.iter().find(|p| p.name.starts_with(prefix));
    let Some(c) = find("(c)") else {
        return out;
    };
    let verify_us = verify_ns / 1000.0;
    let _ = writeln!(
        out,
        "- one ring P-256 verify (this process, core 1): {verify_us:.1} µs"
    );
    if let Some(cpu) = c.cpu_us_per_req {
        let _ = writeln!(
            out,
            "- gateway CPU per forwarded ES256 request: {cpu:.1} µs = {:.2}x one verify (target <= 1.25x)",
            cpu / verify_us
        );
    }
    let _ = writeln!(
        out,
        "- (c) rate: {:.0} req/s = {:.0}% of 1/verify-time {:.0} (target >= 80%)",
        c.rps(),
        100.0 * c.rps() * verify_ns / 1e9,
        1e9 / verify_ns
    );
    if let Some(cpu) = c.cpu_us_per_req {
        let _ = writeln!(
            out,
            "- (c) rate with the core to itself (1/CPU per request): {:.0} req/s = {:.0}% of 1/verify-time",
            1e6 / cpu,
            100.0 * verify_us / cpu
        );
    }
    if let (Some(b), Some(e)) = (find("(b)"), find("(e)").filter(|e| e.requests > 0)) {
        let _ = writeln!(
            out,
            "- (b)/(e): {:.2}x nginx (target >= 0.9x); by CPU per request, which other load on the core does not skew: {:.2}x",
            b.rps() / e.rps(),
            e.cpu_us_per_req.unwrap_or(0.0) / b.cpu_us_per_req.unwrap_or(f64::INFINITY)
        );
    }
    let p99 = |p: &Phase| {
        p.lat_ns
            .get(p.lat_ns.len().saturating_sub(1) * 99 / 100)
            .copied()
    };
    if let (Some(gw99), Some(d99)) = (added_p99, p99(&oa)) {
        let _ = writeln!(
            out,
            "- added p99 latency at 50% load: {:.0} µs over direct (target <= 1000 µs)",
            (gw99 as f64 - d99 as f64) / 1000.0
        );
    }
    let _ = writeln!(out, "- {upload_line} (targets >= 80%, < 32 MiB)");
    for line in f_lines
        .into_iter()
        .chain(same_rate::targets(&phases, verify_ns))
        .chain(tls::targets(&phases))
    {
        let _ = writeln!(out, "- {line}");
    }
    for n in notes {
        let _ = writeln!(out, "- note: {n}");
    }
    let _ = writeln!(out, "\nfiles: configs and logs in {}", r.dir.display());
    let results = out_dir.join("results.md");
    let _ = std::fs::write(&results, &out);
    let _ = writeln!(out, "written to {}", results.display());
    out
}

/// (d): a gateway with the Redis backend against a private `redis-server` on core 1.
async fn redis_phase(
    r: &Run,
    jwks: &Path,
    keys: &[PrivateJwk],
    tokens: &[String],
    verify_ns: f64,
) -> Phase {
    let name = "(d) gateway DPoP ES256, redis replay";
    let skipped = |why: String| Phase {
        name: name.into(),
        note: format!("skipped: {why}"),
        ..Phase::default()
    };
    let Some(redis_bin) = which("redis-server") else {
        return skipped("no redis-server installed".into());
    };
    let rport = free_port();
    let Ok(mut redis) = pinned(1, &redis_bin)
        .args([
            "--port",
            &rport.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return skipped("redis-server did not start".into());
    };
    let raddr: SocketAddr = ([127, 0, 0, 1], rport).into();
    let log = r.dir.join("redis.log");
    if let Err(e) = wait_listening(&mut redis, raddr, &log) {
        return skipped(format!("redis-server: {e}"));
    }
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let yaml = gateway_yaml(
        port,
        r.upstream,
        jwks,
        &format!("  backend: redis\n  redis_url: \"redis://{raddr}\"\n  timeout: 250ms"),
        60,
    );
    let phase = match start_gateway(&r.dir, "gateway-redis", &yaml, addr) {
        Ok(gw) => {
            let total = (r.plan.warmup + r.plan.measure).as_secs_f64();
            let n = ((1e9 / verify_ns) * total * 1.5) as usize + 1000;
            let proofs = mint_batch(keys, tokens, addr, n);
            let ph = r
                .closed(
                    name,
                    addr,
                    Source::Unique(Rc::new(proofs), Rc::new(Cell::new(0))),
                    Some(&gw),
                )
                .await;
            gw.stop();
            ph
        }
        Err(e) => skipped(format!("the gateway refused the redis config ({e})")),
    };
    let _ = redis.kill();
    let _ = redis.wait();
    phase
}

/// `--soak SECS`: the DPoP open loop at 25% of the verify-bound rate for SECS, RSS sampled.
async fn soak_run(
    r: &Run,
    gw: &Proxy,
    keys: &[PrivateJwk],
    tokens: &[String],
    verify_ns: f64,
    soak: Duration,
) -> String {
    let rate = (1e9 / verify_ns * 0.25).min(4000.0);
    let minter = Rc::new(Minter::new(keys, tokens, gw.addr, "/api/resource"));
    let samples = Rc::new(RefCell::new(Vec::new()));
    let pid = gw.child.id();
    let s2 = Rc::clone(&samples);
    // The admin address, from the startup line: replay entries and requests in flight go
    // beside RSS, so a step in RSS can be told from the store's growth or a backlog.
    // (The log is written in batches: the line may take a moment to appear.)
    let mut admin = None;
    for _ in 0..30 {
        admin = std::fs::read_to_string(r.dir.join("gateway-memory.log"))
            .ok()
            .and_then(|log| {
                let at = log.find("admin_addr=")? + "admin_addr=".len();
                log[at..]
                    .split_whitespace()
                    .next()?
                    .parse::<SocketAddr>()
                    .ok()
            });
        if admin.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sampler = tokio::task::spawn_local(async move {
        let t0 = clock::monotonic();
        loop {
            let rss = status_kib(pid, "VmRSS:");
            let gauges = match admin {
                Some(a) => {
                    scrape(
                        a,
                        &[
                            "dpop_gateway_replay_cache_entries",
                            "dpop_gateway_in_flight_requests",
                        ],
                    )
                    .await
                }
                None => vec![None, None],
            };
            s2.borrow_mut().push((t0.elapsed().as_secs(), rss, gauges));
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    });
    let ph = r
        .open("(c) soak, open loop", gw.addr, Source::Mint(minter), rate)
        .await;
    sampler.abort();
    let mut out = format!(
        "\n# loadbench soak: {} s at {rate:.0} req/s (proofs minted as it goes)\n\n",
        soak.as_secs()
    );
    let _ = writeln!(out, "| run | req/s | p50 µs | p99 µs | p99.9 µs | proxy CPU µs/req | peak RSS MiB | errors | notes |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let _ = writeln!(out, "{}", ph.row());
    let _ = writeln!(
        out,
        "\n| t (s) | gateway RSS (MiB) | replay entries | requests in flight |\n|---:|---:|---:|---:|"
    );
    let show = |v: &Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    for (t, kib, gauges) in samples.borrow().iter() {
        let _ = writeln!(
            out,
            "| {t} | {:.1} | {} | {} |",
            *kib as f64 / 1024.0,
            show(&gauges[0]),
            show(&gauges[1])
        );
    }
    let _ = std::fs::write(r.dir.join("../soak.md"), &out);
    out
}

/// The values of unlabelled gauges `names` from the admin `/metrics` at `admin`.
async fn scrape(admin: SocketAddr, names: &[&str]) -> Vec<Option<f64>> {
    let mut text = String::new();
    if let Ok(mut s) = TcpStream::connect(admin).await {
        let req = format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).await.is_ok() {
            let mut body = Vec::new();
            let _ = s.read_to_end(&mut body).await;
            text = String::from_utf8_lossy(&body).into_owned();
        }
    }
    names
        .iter()
        .map(|name| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into())
}

/// `/proc/loadavg`'s 1-minute figure: other work on a shared machine skews every number.
fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "load average {} before the run",
        text.split_whitespace().next().unwrap_or("?")
    )
}

//! The load benchmark: one command, one table (see `benches/README.md`).
//!
//! `cargo bench --bench loadbench` (about 3 minutes) or `cargo bench --bench loadbench -- --quick`
//! (seconds; what CI smoke-runs). Under `cargo test` it does nothing.
//!
//! What it does, over loopback only: starts a fast upstream (hyper, HTTP/1.1) and the load
//! generator on core 1 of this process, and the built gateway binary (`CARGO_BIN_EXE_dpop-gateway`,
//! `run -c <generated config>`) as a child under `taskset -c 0`; pre-generates unique ES256 proofs
//! (never reusing a `jti`) for a few client keys; then measures, in one run:
//! (a) upstream direct, (b) gateway `auth: none`, (c) gateway verifying DPoP with the memory
//! replay cache, (d) the same with Redis (when a `redis-server` is installed and the gateway
//! accepts `backend: redis`), (e) nginx as a plain reverse proxy (when installed), then open-loop
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

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dpop_gateway::clock::{self, Clock, SystemClock};
use dpop_gateway::jose::sign::{self, PrivateJwk, ProofClaims};
use dpop_gateway::jose::Algorithm;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
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
}

/// Where a request's bytes come from.
enum Source {
    /// The same request every time.
    Fixed(Bytes),
    /// Pre-generated unique requests, each used once; the run ends when they run out.
    Unique(Rc<Vec<Bytes>>, Rc<Cell<usize>>),
    /// Minted per request (the soak: a long run cannot pre-generate).
    Mint(Rc<Minter>),
}

/// Mints DPoP requests for a target.
struct Minter {
    keys: Vec<PrivateJwk>,
    tokens: Vec<String>,
    host: String,
    path: String,
    counter: Cell<usize>,
}

/// A process whose CPU and memory we account.
struct Proxy {
    child: Child,
    addr: SocketAddr,
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

// === impl Source ===

impl Source {
    fn next(&self) -> Option<Bytes> {
        match self {
            Source::Fixed(b) => Some(b.clone()),
            Source::Unique(all, i) => {
                let n = i.get();
                i.set(n + 1);
                all.get(n).cloned()
            }
            Source::Mint(m) => Some(m.next()),
        }
    }
}

// === impl Minter ===

impl Minter {
    fn new(keys: &[PrivateJwk], tokens: &[String], addr: SocketAddr, path: &str) -> Minter {
        Minter {
            keys: keys.iter().map(clone_key).collect(),
            tokens: tokens.to_vec(),
            host: addr.to_string(),
            path: path.into(),
            counter: Cell::new(0),
        }
    }

    fn next(&self) -> Bytes {
        let n = self.counter.get();
        self.counter.set(n + 1);
        let k = n % self.keys.len();
        dpop_request(
            &self.keys[k],
            &self.tokens[k],
            &self.host,
            &self.path,
            "GET",
            0,
        )
    }
}

fn clone_key(k: &PrivateJwk) -> PrivateJwk {
    PrivateJwk::from_json(&k.to_json()).unwrap_or_else(|e| panic!("key round trip: {e}"))
}

/// `GET|POST path` with a fresh proof (new jti, iat now) and the bound token.
fn dpop_request(
    key: &PrivateJwk,
    token: &str,
    host: &str,
    path: &str,
    method: &str,
    body_len: u64,
) -> Bytes {
    let proof = key
        .mint_proof(&ProofClaims {
            htm: method.into(),
            htu: format!("http://{host}{path}"),
            iat: SystemClock.now().as_secs(),
            jti: sign::random_jti(),
            access_token: Some(token.into()),
            nonce: None,
        })
        .unwrap_or_else(|e| panic!("mint proof: {e}"));
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: DPoP {token}\r\nDPoP: {proof}\r\n"
    );
    if body_len > 0 {
        let _ = write!(r, "Content-Length: {body_len}\r\n");
    }
    r.push_str("\r\n");
    Bytes::from(r)
}

fn plain_request(host: SocketAddr, path: &str) -> Bytes {
    Bytes::from(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}

// === impl Proxy ===

impl Proxy {
    fn pids(&self) -> Vec<u32> {
        let pid = self.child.id();
        let mut pids = vec![pid];
        // nginx: the master's children are the workers.
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
        pids
    }

    /// On-CPU time of every thread of every process, in ns.
    fn cpu_ns(&self) -> u64 {
        self.pids().iter().map(|p| cpu_ns(*p)).sum()
    }

    /// Resets `VmHWM` to the current RSS (Linux `clear_refs` 5).
    fn reset_peak(&self) {
        for p in self.pids() {
            let _ = std::fs::write(format!("/proc/{p}/clear_refs"), "5");
        }
    }

    fn peak_rss_kib(&self) -> u64 {
        self.pids().iter().map(|p| status_kib(*p, "VmHWM:")).sum()
    }

    fn rss_kib(&self) -> u64 {
        self.pids().iter().map(|p| status_kib(*p, "VmRSS:")).sum()
    }

    fn stop(mut self) {
        // SIGTERM (the gateway drains; nginx exits), then make sure.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A proxy left running by a panic (an assertion in the harness) is killed, not orphaned on the
/// core the next run measures.
impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// On-CPU ns of every thread of `pid`: `/proc/<pid>/task/*/schedstat` (ns resolution), or
/// utime+stime from `/proc/<pid>/stat` (clock ticks) where schedstat is missing.
fn cpu_ns(pid: u32) -> u64 {
    schedstat(pid, 0)
}

/// Busy time of core 0 (the proxies' core), all processes, in ns (`/proc/stat`, clock ticks):
/// minus the proxy's own CPU time, it shows what else ran there on a shared machine.
fn core0_busy_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu0 ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: busy is all but idle, iowait, steal.
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|i| f.get(*i)).sum();
    (busy as f64 * 1e9 / ticks_per_sec()) as u64
}

fn schedstat(pid: u32, field: usize) -> u64 {
    let mut total = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let text = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            if let Some(ns) = text
                .split_whitespace()
                .nth(field)
                .and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
                found = true;
            }
        }
    }
    if found || field > 0 {
        return total;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces: utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ((get(11) + get(12)) as f64 * 1e9 / ticks_per_sec()) as u64
}

/// On-CPU ns of the calling thread.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

// === the upstream ===

/// A fast upstream: `200 ok` to everything; request bodies are read and counted, never kept.
async fn upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::task::spawn_local(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let mut body = req.into_body();
                let mut n = 0u64;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Some(d) = frame.data_ref() {
                        n += d.len() as u64;
                    }
                }
                let text = if n > 0 { format!("{n}") } else { "ok".into() };
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(text))))
            });
            let _ = http1::Builder::new().serve_connection(io, svc).await;
        });
    }
}

// === the load generator ===

/// Reads one HTTP/1.1 response (content-length or chunked); returns its status.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    let mut tmp = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0u16);
    let len = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    buf.drain(..head_end);
    if let Some(len) = len {
        while buf.len() < len {
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        buf.drain(..len);
    } else if head.contains("transfer-encoding: chunked") {
        loop {
            if let Some(p) = find(buf, b"0\r\n\r\n") {
                // Good enough for our upstream's tiny bodies: the last chunk ends the body.
                buf.drain(..p + 5);
                break;
            }
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
    }
    Ok(status)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What one connection saw.
#[derive(Default)]
struct ConnStats {
    lat_ns: Vec<u64>,
    ok: u64,
    errors: u64,
}

/// Closed loop: `conns` connections, each sending its next request as soon as the previous
/// answered, until `deadline` or the source runs dry. Latencies after `measure_from` count.
async fn closed_loop(
    addr: SocketAddr,
    source: Rc<Source>,
    conns: usize,
    measure_from: Instant,
    deadline: Instant,
) -> (ConnStats, f64) {
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let source = Rc::clone(&source);
        tasks.push(tokio::task::spawn_local(async move {
            let mut st = ConnStats::default();
            let Ok(mut s) = TcpStream::connect(addr).await else {
                st.errors += 1;
                return st;
            };
            let _ = s.set_nodelay(true);
            let mut buf = Vec::with_capacity(4096);
            while clock::monotonic() < deadline {
                let Some(req) = source.next() else { break };
                let t0 = clock::monotonic();
                if s.write_all(&req).await.is_err() {
                    st.errors += 1;
                    break;
                }
                let status = read_response(&mut s, &mut buf).await;
                let t1 = clock::monotonic();
                let counted = t0 >= measure_from;
                match status {
                    Ok(200) if counted => {
                        st.ok += 1;
                        st.lat_ns.push((t1 - t0).as_nanos() as u64);
                    }
                    Ok(_) => st.errors += u64::from(counted),
                    Err(_) => {
                        // The server closed the connection: count it and reconnect.
                        st.errors += u64::from(counted);
                        buf.clear();
                        match TcpStream::connect(addr).await {
                            Ok(n) => s = n,
                            Err(_) => break,
                        }
                        let _ = s.set_nodelay(true);
                    }
                }
            }
            st
        }));
    }
    let mut all = ConnStats::default();
    for t in tasks {
        if let Ok(st) = t.await {
            all.lat_ns.extend(st.lat_ns);
            all.ok += st.ok;
            all.errors += st.errors;
        }
    }
    let end = clock::monotonic().min(deadline);
    (
        all,
        end.saturating_duration_since(measure_from).as_secs_f64(),
    )
}

/// Open loop at `rate` requests/s over `conns` connections for `dur`, each request at its own
/// scheduled time. A request's latency runs from its scheduled time when its connection was
/// still busy then (no coordinated omission), else from when it was sent.
async fn open_loop(
    addr: SocketAddr,
    source: Rc<Source>,
    conns: usize,
    rate: f64,
    dur: Duration,
) -> (ConnStats, f64) {
    let start = clock::monotonic() + Duration::from_millis(50);
    let deadline = start + dur;
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let mut tasks = Vec::new();
    for i in 0..conns {
        let source = Rc::clone(&source);
        tasks.push(tokio::task::spawn_local(async move {
            let mut st = ConnStats::default();
            let Ok(mut s) = TcpStream::connect(addr).await else {
                st.errors += 1;
                return st;
            };
            let _ = s.set_nodelay(true);
            let mut buf = Vec::with_capacity(4096);
            let mut next = start + Duration::from_secs_f64(i as f64 / rate);
            let mut last_done = start;
            while next < deadline {
                // tokio's timer is 1 ms coarse, and every sleeper due in the same tick wakes
                // at once: sleep to just short of `next`, then yield until it (a burst of
                // same-tick arrivals would queue at the server and show as its latency).
                let early = next.checked_sub(Duration::from_millis(2));
                if let Some(early) = early.filter(|e| *e > clock::monotonic()) {
                    tokio::time::sleep_until(early.into()).await;
                }
                while clock::monotonic() < next {
                    tokio::task::yield_now().await;
                }
                let Some(req) = source.next() else { break };
                let sent = clock::monotonic();
                // Late because this connection was still busy: count from the schedule.
                let from = if last_done > next { next } else { sent };
                if s.write_all(&req).await.is_err() {
                    st.errors += 1;
                    break;
                }
                let status = read_response(&mut s, &mut buf).await;
                last_done = clock::monotonic();
                match status {
                    Ok(200) => {
                        st.ok += 1;
                        st.lat_ns.push((last_done - from).as_nanos() as u64);
                    }
                    Ok(_) => st.errors += 1,
                    Err(_) => {
                        st.errors += 1;
                        break;
                    }
                }
                next += interval;
            }
            st
        }));
    }
    let mut all = ConnStats::default();
    for t in tasks {
        if let Ok(st) = t.await {
            all.lat_ns.extend(st.lat_ns);
            all.ok += st.ok;
            all.errors += st.errors;
        }
    }
    (all, dur.as_secs_f64())
}

/// A `len`-byte upload direct, through the gateway (DPoP route) and, when it is installed,
/// through nginx (`proxy_request_buffering off`, the same copies the gateway makes); the
/// report line.
async fn upload_phase(
    dir: &Path,
    gw: &Proxy,
    up: SocketAddr,
    gw_addr: SocketAddr,
    key: &PrivateJwk,
    token: &str,
    len: u64,
) -> String {
    let plain_head = |host: SocketAddr| {
        Bytes::from(format!(
            "POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len}\r\n\r\n"
        ))
    };
    let (t_direct, s_direct) = upload(up, plain_head(up), len).await;
    let head = dpop_request(key, token, &gw_addr.to_string(), "/upload", "POST", len);
    let rss_before = gw.rss_kib();
    gw.reset_peak();
    let cpu_before = gw.cpu_ns();
    let (t_gw, s_gw) = upload(gw_addr, head, len).await;
    let gw_busy = gw.cpu_ns().saturating_sub(cpu_before) as f64 / 1e9 / t_gw.max(1e-9);
    let growth_kib = gw.peak_rss_kib().saturating_sub(rss_before);
    let mib = len as f64 / (1 << 20) as f64;
    let rate = |t: f64| mib / t.max(1e-9);
    let mut line = format!(
        "upload of {mib:.0} MiB: direct {:.0} MiB/s (status {s_direct}), through the gateway {:.0} MiB/s (status {s_gw}) = {:.0}% of direct, the gateway's core {:.0}% busy; gateway RSS growth {:.1} MiB",
        rate(t_direct),
        rate(t_gw),
        100.0 * t_direct / t_gw.max(1e-9),
        100.0 * gw_busy,
        growth_kib as f64 / 1024.0
    );
    match start_nginx(dir, up) {
        Ok(ngx) => {
            let cpu_before = ngx.cpu_ns();
            let (t_ngx, s_ngx) = upload(ngx.addr, plain_head(ngx.addr), len).await;
            let busy = ngx.cpu_ns().saturating_sub(cpu_before) as f64 / 1e9 / t_ngx.max(1e-9);
            let _ = write!(
                line,
                "; through nginx {:.0} MiB/s (status {s_ngx}) = {:.0}% of direct, its core {:.0}% busy",
                rate(t_ngx),
                100.0 * t_direct / t_ngx.max(1e-9),
                100.0 * busy
            );
            ngx.stop();
        }
        Err(e) => {
            let _ = write!(line, "; nginx skipped: {e}");
        }
    }
    line
}

/// One request with a `len`-byte body streamed in 64 KiB writes; returns (seconds, status).
async fn upload(addr: SocketAddr, head: Bytes, len: u64) -> (f64, u16) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return (0.0, 0);
    };
    let chunk = vec![b'x'; 64 * 1024];
    let t0 = clock::monotonic();
    if s.write_all(&head).await.is_err() {
        return (0.0, 0);
    }
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if s.write_all(&chunk[..n]).await.is_err() {
            return (0.0, 0);
        }
        left -= n as u64;
    }
    let mut buf = Vec::new();
    let status = read_response(&mut s, &mut buf).await.unwrap_or(0);
    (t0.elapsed().as_secs_f64(), status)
}

// === orchestration ===

#[path = "../../tests/e2e/support/ports.rs"]
mod ports;
use ports::free_port;

fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Waits until `addr` accepts or `child` exits; `Err(last stderr lines)` if it exited.
fn wait_listening(child: &mut Child, addr: SocketAddr, log: &Path) -> Result<(), String> {
    for _ in 0..100 {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            // The last plain line (tracing's lines carry colour codes).
            let last = text
                .lines()
                .rev()
                .find(|l| !l.contains('\u{1b}') && !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("{status}: {last}"));
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("did not start listening in 5 s".into())
}

fn start_gateway(dir: &Path, name: &str, yaml: &str, addr: SocketAddr) -> Result<Proxy, String> {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml).map_err(|e| e.to_string())?;
    // LOADBENCH_GATEWAY_LOG=null: the gateway still formats and writes its log, to /dev/null,
    // to tell the gateway's own cost from the disk writeback of a log file on its core.
    let log = match std::env::var("LOADBENCH_GATEWAY_LOG") {
        Ok(v) if v == "null" => PathBuf::from("/dev/null"),
        _ => dir.join(format!("{name}.log")),
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&log)
        .map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    // LOADBENCH_PROFILE=perf: record the gateway with `perf record` (cpu-clock: hardware
    // counters are often unavailable in VMs) into <run dir>/<name>.perf.data.
    let mut cmd = if std::env::var("LOADBENCH_PROFILE").is_ok_and(|v| v == "perf") {
        let mut c = pinned(0, "perf");
        c.args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            "999",
            "--call-graph",
            "dwarf,16384",
            "-o",
        ])
        .arg(dir.join(format!("{name}.perf.data")))
        .arg("--")
        .arg(gateway_bin());
        c
    } else if std::env::var("LOADBENCH_PROFILE").is_ok_and(|v| v == "strace") {
        let mut c = pinned(0, "strace");
        c.args(["-f", "-e", "trace=network,read,write,writev,readv", "-o"])
            .arg(dir.join(format!("{name}.strace")))
            .arg(gateway_bin());
        c
    } else {
        pinned(0, gateway_bin())
    };
    let mut child = cmd
        .arg("run")
        .arg("-c")
        .arg(&cfg)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", gateway_bin().display()))?;
    match wait_listening(&mut child, addr, &log) {
        Ok(()) => Ok(Proxy { child, addr }),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// `taskset -c CORE bin` when there are two cores to split, else `bin`.
fn pinned(core: usize, bin: impl AsRef<std::ffi::OsStr>) -> Command {
    if cores() >= 2 && which("taskset").is_some() {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(core.to_string()).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// The machine's cores (not this process's affinity: after pinning that is one).
fn cores() -> usize {
    let n = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    n.max(1)
}

fn gateway_yaml(
    port: u16,
    upstream: SocketAddr,
    jwks: &Path,
    replay: &str,
    proof_max_age: u64,
) -> String {
    format!(
        r#"listen: "127.0.0.1:{port}"
admin_listen: "127.0.0.1:0"
shutdown_timeout: 2s
upstream:
  url: "http://{upstream}"
  connect_timeout: 1s
  request_timeout: 60s
routes:
  - {{ path_prefix: "/open", auth: none }}
  - {{ path_prefix: "/", auth: dpop }}
dpop:
  algorithms: [ES256, EdDSA, RS256, PS256]
  proof_max_age: {proof_max_age}s
  clock_skew: 5s
replay_cache:
{replay}
access_token:
  format: jwt
  issuer: "https://as.example.com"
  audience: "https://api.example.com"
  jwks_file: "{jwks}"
"#,
        jwks = jwks.display()
    )
}

fn start_nginx(dir: &Path, upstream: SocketAddr) -> Result<Proxy, String> {
    let bin = which("nginx").ok_or("nginx is not installed (apt-get install -y nginx)")?;
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        r#"worker_processes 1;
worker_cpu_affinity 1;
daemon off;
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  keepalive_requests 10000000;
  access_log {d}/nginx-access.log;
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fcgi;
  uwsgi_temp_path {d}/nginx-uwsgi;
  scgi_temp_path {d}/nginx-scgi;
  upstream up {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      client_body_buffer_size 1m;
    }}
  }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|e| e.to_string())?;
    let log = dir.join("nginx-stderr.log");
    let out = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut child = pinned(0, &bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
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

/// Pre-mints `n` unique DPoP requests, on every core (the gateway is idle meanwhile).
fn mint_batch(keys: &[PrivateJwk], tokens: &[String], host: SocketAddr, n: usize) -> Vec<Bytes> {
    let threads = 2.min(n.max(1));
    let per = n.div_ceil(threads);
    let pinned_before = cpus_allowed();
    let batch = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    widen_affinity();
                    let host = host.to_string();
                    (t * per..((t + 1) * per).min(n))
                        .map(|i| {
                            let k = i % keys.len();
                            dpop_request(&keys[k], &tokens[k], &host, "/api/resource", "GET", 0)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    // The minting threads may use both cores; this thread (generator and upstream) must stay
    // where it was, off the proxy's core.
    assert_eq!(
        cpus_allowed(),
        pinned_before,
        "minting changed the load generator's CPU affinity"
    );
    batch
}

/// The calling thread's `Cpus_allowed_list` (e.g. `1`).
fn cpus_allowed() -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Lets the calling thread run on every core (this process is pinned to core 1).
fn widen_affinity() {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return;
    };
    let Some(tid) = link.file_name().map(|t| t.to_string_lossy().into_owned()) else {
        return;
    };
    // Without `-a`: only this thread. `-a` would widen every thread of the process, the load
    // generator's and the upstream's too, which would then compete with the proxy on core 0.
    let _ = Command::new("taskset")
        .args(["-p", "-c", &format!("0-{}", cores() - 1), &tid])
        .stdout(Stdio::null())
        .status();
}

/// Time one ring P-256 verify in this process (the target's unit), in ns.
fn ring_p256_verify_ns() -> f64 {
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap_or_else(|e| panic!("{e}"));
    let proof = dpop_request(&key, "t", "h", "/", "GET", 0);
    let text = String::from_utf8_lossy(&proof).into_owned();
    let jws = text
        .split("DPoP: ")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .unwrap_or_default()
        .to_owned();
    let jwk = key.public_jwk();
    use base64::Engine as _;
    let b64 = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .unwrap_or_default()
    };
    let mut point = vec![4u8];
    point.extend(b64(jwk["x"].as_str().unwrap_or_default()));
    point.extend(b64(jwk["y"].as_str().unwrap_or_default()));
    let (input, sig) = jws.rsplit_once('.').unwrap_or_default();
    let sig = b64(sig);
    let pk =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    // CPU time, not wall time: the machine may be shared, and the gateway is charged in CPU.
    let n = 5000;
    let c0 = thread_cpu_ns();
    let t0 = clock::monotonic();
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(pk.verify(input.as_bytes(), &sig).is_ok());
    }
    assert_eq!(ok, n, "ring baseline verifies");
    let cpu = thread_cpu_ns().saturating_sub(c0);
    if cpu == 0 {
        return t0.elapsed().as_nanos() as f64 / n as f64;
    }
    cpu as f64 / n as f64
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
        let (st, secs) = closed_loop(
            target,
            source,
            self.plan.connections,
            measure_from,
            deadline,
        )
        .await;
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
        let mut ph = self.phase(name, st, secs);
        ph.note = format!("open loop at {rate:.0} req/s; ");
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
    let (d, g, k, t, len) = (&dir, &gw, &keys[0], &tokens[0], plan.upload_bytes);
    let upload = move || upload_phase(d, g, up, gw_addr, k, t, len);
    if only == "upload" {
        let line = upload().await;
        gw.stop();
        return format!("{line}\n");
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
            ngx.stop();
        }
        Err(e) => phases.push(Phase {
            name: "(e) nginx reverse proxy".into(),
            note: format!("skipped: {e}"),
            ..Phase::default()
        }),
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

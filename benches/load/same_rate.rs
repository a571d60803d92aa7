//! Rows that compare at the same request rate or the same client: nginx and the gateway's
//! `auth: none` hop driven at (c)'s measured rate (an open loop, so the DPoP row can be read as
//! "work beyond a plain hop at the same rate"), 64-connection variants of (b) and (e), the same
//! two driven by `wrk` (when installed), nginx in the open loop beside (c'), and the target
//! lines these rows give.
//!
//! Per-request cost depends on the rate on this kind of VM (fewer requests per wake-up at a low
//! rate), so a DPoP row at 8k req/s is compared with a proxy row at 8k req/s, not at 35k.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use dpop_gateway::clock;

use crate::client::{open_loop, ConnStats};
use crate::launch::{start_nginx, which};
use crate::process::{core0_busy_ns, pinned, Proxy};
use crate::requests::{plain_request, Source};
use crate::{Phase, Run};

/// Connections of the 64-connection rows (what the wrk runs used).
pub const WIDE: usize = 64;

/// The p99 of how late the open-loop generator sent requests whose connection was free at
/// their scheduled time, in µs: a late generator must not be read as the server's latency.
pub fn late_p99_us(st: &ConnStats) -> f64 {
    let mut v = st.late_ns.clone();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) * 99 / 100)
        .map_or(0.0, |n| *n as f64 / 1e3)
}

/// The proxy's on-CPU ns and the other processes' busy ns on core 0 over `[from, to]`,
/// sampled by a side task.
pub fn cpu_window(
    proxy: &Proxy,
    from: Instant,
    to: Instant,
) -> tokio::task::JoinHandle<(f64, f64)> {
    let pids = proxy.pids();
    tokio::task::spawn_local(async move {
        tokio::time::sleep_until(from.into()).await;
        let a: u64 = pids.iter().map(|p| crate::process::cpu_ns(*p)).sum();
        let wa = core0_busy_ns();
        tokio::time::sleep_until(to.into()).await;
        let b: u64 = pids.iter().map(|p| crate::process::cpu_ns(*p)).sum();
        let wb = core0_busy_ns();
        let used = b.saturating_sub(a) as f64;
        (used, (wb.saturating_sub(wa) as f64 - used).max(0.0))
    })
}

/// Fills in `ph`'s CPU per request and the core-0 note from a [`cpu_window`] over `secs`.
pub fn account(ph: &mut Phase, used_ns: f64, others_ns: f64, secs: f64) {
    ph.cpu_us_per_req = Some(used_ns / 1e3 / ph.requests.max(1) as f64);
    let _ = write!(
        ph.note,
        "core 0: proxy {:.0}%, other processes {:.0}%; ",
        100.0 * used_ns / (secs * 1e9),
        100.0 * others_ns / (secs * 1e9)
    );
}

// === impl Run ===

impl Run {
    /// An open loop at `rate` over `conns` connections against `proxy`, with its CPU per
    /// request and the generator's lateness.
    pub async fn open_measured(
        &self,
        name: &str,
        proxy: &Proxy,
        source: Source,
        rate: f64,
        conns: usize,
    ) -> Phase {
        let dur = self.plan.open_loop;
        proxy.reset_peak();
        // The loop starts 50 ms after the call; count from there.
        let from = clock::monotonic() + Duration::from_millis(50);
        let cpu = cpu_window(proxy, from, from + dur);
        let (st, secs) = open_loop(proxy.addr, Rc::new(source), conns, rate, dur).await;
        let late = late_p99_us(&st);
        let mut ph = self.phase(name, st, secs);
        let _ = write!(
            ph.note,
            "open loop at {rate:.0} req/s over {conns} connections, generator late p99 {late:.0} µs; "
        );
        if let Ok((used, others)) = cpu.await {
            account(&mut ph, used, others, secs);
        }
        ph.peak_rss_kib = Some(proxy.peak_rss_kib());
        ph
    }

    /// A `wrk` run (1 thread, `conns` connections, pinned to core 1) against `proxy`'s
    /// `/open/x`: 2 s of warm-up, then the measured run; `None` without `wrk`.
    pub async fn wrk(&self, name: &str, proxy: &Proxy, conns: usize) -> Phase {
        let Some(bin) = which("wrk") else {
            return crate::skipped(name, "wrk is not installed (apt-get install -y wrk)".into());
        };
        // wrk's own percentiles (it corrects for coordinated omission only with -R, which
        // stock wrk lacks; this is a closed loop like our generator's).
        let script = self.dir.join("wrk-report.lua");
        let lua = "done = function(summary, latency, requests)\n\
            io.write(string.format(\"LOADBENCH %d %d %d %d %d %d %d %d\\n\", summary.requests, summary.duration,\n\
            summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,\n\
            summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), 0))\n\
            end\n";
        if let Err(e) = std::fs::write(&script, lua) {
            return crate::skipped(name, format!("wrk script: {e}"));
        }
        let url = format!("http://{}/open/x", proxy.addr);
        let run = |secs: f64| {
            let mut cmd = pinned(1, &bin);
            cmd.args(["-t1", "-c", &conns.to_string(), "-d"])
                .arg(format!("{:.0}s", secs.max(1.0)))
                .arg("-s")
                .arg(&script)
                .arg(&url)
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            cmd.spawn()
        };
        // Warm-up (connections, the upstream pool), not counted.
        if let Ok(child) = run(self.plan.warmup.as_secs_f64()) {
            let _ = wait_child(child).await;
        }
        proxy.reset_peak();
        let measure = self.plan.measure.as_secs_f64();
        let t0 = clock::monotonic();
        let cpu = cpu_window(proxy, t0, t0 + self.plan.measure);
        let out = match run(measure) {
            Ok(child) => wait_child(child).await,
            Err(e) => return crate::skipped(name, format!("wrk: {e}")),
        };
        let Some(line) = out.lines().find_map(|l| l.strip_prefix("LOADBENCH ")) else {
            return crate::skipped(name, format!("wrk said: {}", out.trim()));
        };
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let get = |i: usize| f.get(i).copied().unwrap_or(0);
        let secs = get(1) as f64 / 1e6;
        let mut ph = Phase {
            name: name.into(),
            requests: get(0).saturating_sub(get(3)),
            errors: get(2) + get(3),
            secs,
            // wrk's percentiles (µs) stand for the distribution: p50, p99, p99.9.
            lat_ns: Vec::new(),
            ..Phase::default()
        };
        ph.pct_us = Some([get(4), get(5), get(6)]);
        if let Ok((used, others)) = cpu.await {
            // The window is the measured run's nominal length; wrk's own is within a few ms.
            account(&mut ph, used, others, measure);
        }
        ph.peak_rss_kib = Some(proxy.peak_rss_kib());
        let _ = write!(ph.note, "wrk -t1 -c{conns}");
        ph
    }
}

/// Waits for `child` without blocking the runtime (the upstream runs on this thread), and
/// returns its stdout.
async fn wait_child(mut child: std::process::Child) -> String {
    use std::io::Read as _;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

/// The gateway's `auth: none` rows beside (b): 64 connections, `wrk`, and at (c)'s rate.
pub async fn gateway_rows(r: &Run, gw: &Proxy, c_rps: Option<f64>) -> Vec<Phase> {
    let mut rows = Vec::new();
    let fixed = || Source::Fixed(plain_request(gw.addr, "/open/x"));
    rows.push(
        r.closed_n(
            "(b64) gateway auth: none, 64 connections",
            gw.addr,
            fixed(),
            Some(gw),
            WIDE,
        )
        .await,
    );
    rows.push(
        r.wrk("(b64w) gateway auth: none, wrk 64 connections", gw, WIDE)
            .await,
    );
    if let Some(rate) = c_rps {
        rows.push(
            r.open_measured(
                "(b@c) gateway auth: none at (c)'s rate",
                gw,
                fixed(),
                rate,
                r.plan.connections,
            )
            .await,
        );
    }
    rows
}

/// nginx's rows beside (e): 64 connections, `wrk`, and at (c)'s rate.
pub async fn nginx_rows(r: &Run, ngx: &Proxy, c_rps: Option<f64>) -> Vec<Phase> {
    let mut rows = Vec::new();
    let fixed = || Source::Fixed(plain_request(ngx.addr, "/open/x"));
    rows.push(
        r.closed_n(
            "(e64) nginx reverse proxy, 64 connections",
            ngx.addr,
            fixed(),
            Some(ngx),
            WIDE,
        )
        .await,
    );
    rows.push(
        r.wrk("(e64w) nginx reverse proxy, wrk 64 connections", ngx, WIDE)
            .await,
    );
    if let Some(rate) = c_rps {
        rows.push(
            r.open_measured(
                "(e@c) nginx at (c)'s rate",
                ngx,
                fixed(),
                rate,
                r.plan.connections,
            )
            .await,
        );
    }
    rows
}

/// (e') nginx in the open loop at `rate` (beside (c')): the added p99 is read against it.
pub async fn nginx_open(r: &Run, up: SocketAddr, rate: f64) -> Phase {
    let name = "(e') nginx reverse proxy, open loop";
    match start_nginx(&r.dir, up) {
        Ok(ngx) => {
            let ph = r
                .open_measured(
                    name,
                    &ngx,
                    Source::Fixed(plain_request(ngx.addr, "/open/x")),
                    rate,
                    r.plan.open_connections,
                )
                .await;
            ngx.stop();
            ph
        }
        Err(e) => crate::skipped(name, e),
    }
}

/// The targets these rows measure, as report lines.
pub fn targets(phases: &[Phase], verify_ns: f64) -> Vec<String> {
    let find = |prefix: &str| {
        phases
            .iter()
            .find(|p| p.name.starts_with(prefix) && p.requests > 0)
    };
    let cpu = |p: &Phase| p.cpu_us_per_req.unwrap_or(f64::NAN);
    let verify_us = verify_ns / 1000.0;
    let mut out = Vec::new();
    if let (Some(c), Some(e)) = (find("(c)"), find("(e@c)")) {
        let beyond = (cpu(c) - cpu(e)) / verify_us;
        out.push(format!(
            "DPoP beyond a plain nginx hop at the same rate: ((c) {:.1} - (e@c) {:.1} µs) / verify {verify_us:.1} µs = {beyond:.2} verifies (target <= 1.15)",
            cpu(c),
            cpu(e)
        ));
    }
    if let (Some(c), Some(b)) = (find("(c)"), find("(b@c)")) {
        out.push(format!(
            "DPoP beyond the gateway's own auth: none hop at the same rate: ((c) {:.1} - (b@c) {:.1} µs) / verify = {:.2} verifies",
            cpu(c),
            cpu(b),
            (cpu(c) - cpu(b)) / verify_us
        ));
    }
    if let (Some(b), Some(e)) = (find("(b@c)"), find("(e@c)")) {
        out.push(format!(
            "the hop at (c)'s rate: gateway {:.1} µs / nginx {:.1} µs = {:.2}x CPU per request",
            cpu(b),
            cpu(e),
            cpu(b) / cpu(e)
        ));
    }
    for (b, e, what) in [
        ("(b64)", "(e64)", "own generator"),
        ("(b64w)", "(e64w)", "wrk"),
    ] {
        if let (Some(b), Some(e)) = (find(b), find(e)) {
            out.push(format!(
                "the hop at 64 connections ({what}): gateway {:.1} / nginx {:.1} µs = {:.2}x CPU per request (target <= 1.1x), {:.2}x req/s",
                cpu(b),
                cpu(e),
                cpu(b) / cpu(e),
                b.rps() / e.rps()
            ));
        }
    }
    let p99 = |p: &Phase| {
        p.lat_ns
            .get(p.lat_ns.len().saturating_sub(1) * 99 / 100)
            .map(|n| *n as f64 / 1e3)
    };
    if let (Some(c), Some(e)) = (find("(c')"), find("(e')")) {
        if let (Some(c99), Some(e99)) = (p99(c), p99(e)) {
            out.push(format!(
                "added p99 at 50% load against nginx at the same rate: (c') {c99:.0} - (e') {e99:.0} µs = {:.0} µs (target <= 1000 µs; the generator's lateness is in each row's note)",
                c99 - e99
            ));
        }
    }
    out
}

/// `LOADBENCH_ONLY=hop`: (b) and (e) at 32 and 64 connections and with wrk, nothing else (for
/// working on the hop).
pub async fn hop_only(r: &Run, gw: &Proxy) -> Vec<Phase> {
    let mut rows = vec![
        r.closed(
            "(b) gateway auth: none",
            gw.addr,
            Source::Fixed(plain_request(gw.addr, "/open/x")),
            Some(gw),
        )
        .await,
    ];
    rows.extend(gateway_rows(r, gw, None).await);
    match start_nginx(&r.dir, r.upstream) {
        Ok(ngx) => {
            rows.push(
                r.closed(
                    "(e) nginx reverse proxy",
                    ngx.addr,
                    Source::Fixed(plain_request(ngx.addr, "/open/x")),
                    Some(&ngx),
                )
                .await,
            );
            rows.extend(nginx_rows(r, &ngx, None).await);
            ngx.stop();
        }
        Err(e) => rows.push(crate::skipped("(e) nginx reverse proxy", e)),
    }
    rows
}

/// A table of `rows` and the target lines they give (the partial runs' report).
pub fn table(rows: &[Phase], verify_ns: f64) -> String {
    let mut out = String::from(
        "| run | req/s | p50 µs | p99 µs | p99.9 µs | proxy CPU µs/req | peak RSS MiB | errors | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for p in rows {
        let _ = writeln!(out, "{}", p.row());
    }
    for line in targets(rows, verify_ns)
        .into_iter()
        .chain(crate::tls::targets(rows))
    {
        let _ = writeln!(out, "- {line}");
    }
    out
}

//! The load generator: closed and open loops over keep-alive HTTP/1.1 connections, and
//! streamed uploads. A response is read just far enough to know its status and end.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dpop_gateway::clock;
use dpop_gateway::jose::sign::PrivateJwk;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::launch::start_nginx;
use crate::process::Proxy;
use crate::requests::{dpop_request, Source};

// === the load generator ===

/// Reads one HTTP/1.1 response (content-length or chunked); returns its status.
pub async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
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

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What one connection saw.
#[derive(Default)]
pub struct ConnStats {
    pub lat_ns: Vec<u64>,
    pub ok: u64,
    pub errors: u64,
    /// Open loop: how late each request was sent after its scheduled time (the generator's
    /// own lateness, not the server's).
    pub late_ns: Vec<u64>,
}

/// Closed loop: `conns` connections, each sending its next request as soon as the previous
/// answered, until `deadline` or the source runs dry. Latencies after `measure_from` count.
pub async fn closed_loop(
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
pub async fn open_loop(
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
                if last_done <= next {
                    // The connection was free at the scheduled time: any delay is ours.
                    st.late_ns
                        .push(sent.saturating_duration_since(next).as_nanos() as u64);
                }
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
            all.late_ns.extend(st.late_ns);
            all.ok += st.ok;
            all.errors += st.errors;
        }
    }
    (all, dur.as_secs_f64())
}

/// A `len`-byte upload direct, through the gateway (DPoP route) and, when it is installed,
/// through nginx (`proxy_request_buffering off`, the same copies the gateway makes); the
/// report line.
pub async fn upload_phase(
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
pub async fn upload(addr: SocketAddr, head: Bytes, len: u64) -> (f64, u16) {
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

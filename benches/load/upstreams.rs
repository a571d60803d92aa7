//! The upstream-protocol rows (issue "In front of many legacy APIs"): what TLS or HTTP/2 to the
//! upstream costs per request, next to (b) and (c) over plain HTTP/1.1.
//!
//! - (b') `auth: none`, HTTPS upstream (a private CA, TLS 1.3, ALPN `http/1.1`)
//! - (c'') DPoP ES256, the same HTTPS upstream
//! - (b'') `auth: none`, HTTP/2 upstream (`protocol: http2`, h2c prior knowledge)
//!
//! Each upstream counts what it accepted (TLS: completed handshakes; h2c: connections). With
//! connections reused that stays at most the client connections (one upstream connection per
//! request in flight; HTTP/2 needs one, more is noted), whatever the request count; a
//! handshake per request is a defect, flagged in the row.

use std::cell::Cell;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use dpop_gateway::jose::sign::PrivateJwk;
use tokio::net::TcpListener;

use crate::launch::{gateway_yaml, start_gateway};
use crate::ports::free_port;
use crate::requests::{mint_batch, plain_request, Source};
use crate::upstream::{h2c_upstream, test_tls, tls_upstream};
use crate::{skipped, Phase, Run};

/// How the gateway reaches the upstream in a row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Tls,
    H2c,
}

/// What the client sends in a row.
enum Load<'a> {
    Open,
    Dpop {
        keys: &'a [PrivateJwk],
        tokens: &'a [String],
        verify_ns: f64,
    },
}

/// (b'), (c'') and (b'').
pub async fn rows(
    r: &Run,
    jwks: &Path,
    keys: &[PrivateJwk],
    tokens: &[String],
    verify_ns: f64,
) -> Vec<Phase> {
    let dpop = || Load::Dpop {
        keys,
        tokens,
        verify_ns,
    };
    vec![
        row(r, jwks, Wire::Tls, Load::Open).await,
        row(r, jwks, Wire::Tls, dpop()).await,
        row(r, jwks, Wire::H2c, Load::Open).await,
    ]
}

async fn row(r: &Run, jwks: &Path, wire: Wire, load: Load<'_>) -> Phase {
    let name = match (wire, &load) {
        (Wire::Tls, Load::Open) => "(b') gateway auth: none, HTTPS upstream",
        (Wire::Tls, Load::Dpop { .. }) => "(c'') gateway DPoP ES256, HTTPS upstream",
        (Wire::H2c, _) => "(b'') gateway auth: none, HTTP/2 upstream (h2c)",
    };
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return skipped(name, format!("upstream bind: {e}")),
    };
    let Ok(up) = listener.local_addr() else {
        return skipped(name, "upstream addr".into());
    };
    let accepted = Rc::new(Cell::new(0u64));
    let (url, server) = match wire {
        Wire::Tls => {
            let ca_file = r.dir.join("upstream-ca.pem");
            let acceptor = test_tls(&ca_file);
            let server =
                tokio::task::spawn_local(tls_upstream(listener, acceptor, Rc::clone(&accepted)));
            (
                format!(
                    "url: \"https://localhost:{}\"\n  tls: {{ ca_file: \"{}\" }}",
                    up.port(),
                    ca_file.display()
                ),
                server,
            )
        }
        Wire::H2c => {
            let server = tokio::task::spawn_local(h2c_upstream(listener, Rc::clone(&accepted)));
            (format!("url: \"http://{up}\"\n  protocol: http2"), server)
        }
    };
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let yaml = gateway_yaml(
        port,
        r.upstream,
        jwks,
        "  backend: memory\n  capacity: 1000000",
        60,
    )
    .replace(&format!("url: \"http://{}\"", r.upstream), &url);
    let log_name = match (wire, &load) {
        (Wire::Tls, Load::Open) => "gateway-https-upstream",
        (Wire::Tls, Load::Dpop { .. }) => "gateway-https-upstream-dpop",
        (Wire::H2c, _) => "gateway-h2c-upstream",
    };
    let gw = match start_gateway(&r.dir, log_name, &yaml, addr) {
        Ok(g) => g,
        Err(e) => {
            server.abort();
            return skipped(name, format!("the gateway did not start: {e}"));
        }
    };
    let source = match load {
        Load::Open => Source::Fixed(plain_request(addr, "/open/x")),
        Load::Dpop {
            keys,
            tokens,
            verify_ns,
        } => {
            let secs = (r.plan.warmup + r.plan.measure).as_secs_f64();
            let n = ((1e9 / verify_ns) * secs * 1.5) as usize + 1000;
            Source::Unique(
                Rc::new(mint_batch(keys, tokens, addr, n)),
                Rc::new(Cell::new(0)),
            )
        }
    };
    let before = accepted.get();
    let mut phase = r.closed(name, addr, source, Some(&gw)).await;
    let opened = accepted.get() - before;
    gw.stop();
    server.abort();
    let what = match wire {
        Wire::Tls => "TLS handshakes",
        Wire::H2c => "connections",
    };
    // At most one per client connection (requests in flight); a handshake per request would
    // be the requests' count.
    let most = r.plan.connections as u64;
    let served = phase.requests + phase.errors;
    let verdict = if opened <= most {
        "connections reused"
    } else {
        "DEFECT: connections not reused"
    };
    let _ = write!(
        phase.note,
        "upstream {what}: {opened} for {served} requests measured and their warm-up, {most} client connections ({verdict}, at most {most} expected)"
    );
    if wire == Wire::H2c && opened > 1 {
        phase
            .note
            .push_str("; HTTP/2 needs one: the pool did not multiplex every request on one");
    }
    phase
}

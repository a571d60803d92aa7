//! The process as an orchestrator drives it: signals (SIGHUP, SIGTERM), readiness and the admin
//! listener through a drain, over the real binary and real sockets.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::client::{self, Mode};
use crate::support::gateway::Issuer;
use crate::support::process::GatewayProcess;
use crate::support::upstream::Upstream;
use crate::support::{temp_dir, Options};

/// `GET /open/slow?ms=N` (an `auth: none` route; the upstream answers after N ms) in a task:
/// its status.
fn slow_request(addr: SocketAddr, ms: u64) -> tokio::task::JoinHandle<u16> {
    tokio::spawn(async move {
        let req = Request::get(format!("/open/slow?ms={ms}"))
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client::send(addr, Mode::H1, req).await.status().as_u16()
    })
}

#[tokio::test]
async fn sighup_is_logged_and_ignored_and_the_request_in_flight_completes() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let log = temp_dir("sighup").join("stderr.log");
    let mut gw = GatewayProcess::spawn_with(
        &Options::default(),
        &upstream,
        &issuer,
        &[("RUST_LOG", "info")],
        Stdio::from(std::fs::File::create(&log).unwrap()),
        None,
    )
    .await;
    let slow = slow_request(gw.addr, 1500);
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(100)).await;
    gw.signal("HUP");
    assert_eq!(slow.await.unwrap(), 200, "the in-flight request completes");
    assert!(gw.is_running(), "SIGHUP must not end the process");
    assert_eq!(gw.admin_get("/readyz").await, Some(200), "still ready");
    let resp = slow_request(gw.addr, 0).await.unwrap();
    assert_eq!(resp, 200, "still serving");

    gw.terminate();
    let code = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let ignored = text
        .lines()
        .filter(|l| l.contains("SIGHUP received: reload is not implemented yet, ignoring"))
        .collect::<Vec<_>>();
    assert_eq!(ignored.len(), 2, "one info line per SIGHUP:\n{text}");
    assert!(ignored.iter().all(|l| l.contains("INFO")), "{text}");
}

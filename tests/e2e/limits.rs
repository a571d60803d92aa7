//! The `limits` block: request head size (431), head read time (408, slowloris), idle keep-alive
//! connections, connection count, HTTP/2 streams; and a graceful drain on SIGTERM.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::client::{self, Mode};
use crate::support::gateway::Issuer;
use crate::support::process::GatewayProcess;
use crate::support::upstream::Upstream;
use crate::support::{Options, TestGateway};

fn limits(extra: &str) -> Options {
    Options {
        extra: format!("limits:\n{extra}"),
        ..Options::default()
    }
}

/// The JSON body of a raw response (after the blank line).
fn json_body(text: &str) -> serde_json::Value {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn an_oversized_request_head_gets_431_and_is_not_forwarded() {
    let gw = TestGateway::start_with(limits(
        "  max_header_bytes: 16384\n  header_read_timeout: 30s",
    ))
    .await;
    let big = "x".repeat(20_000);
    let req = format!("GET /open/x HTTP/1.1\r\nhost: a\r\nx-big: {big}\r\n\r\n");
    // `raw` reads until the gateway closes: the connection ends after the 431.
    let out = client::raw(gw.addr, req.as_bytes()).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert_eq!(json_body(&text)["error"], "invalid_request");
    assert!(gw.upstream.requests().is_empty());
    // A head that never ends is refused as soon as it passes the limit, not buffered until
    // header_read_timeout (30 s here) would end it with a 408.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(format!("GET /open/x HTTP/1.1\r\nhost: a\r\nx-big: {big}").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway closed the connection");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"));
    assert!(gw.upstream.requests().is_empty());
    // Neither reached the request metrics; the connection refusals are counted.
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("dpop_gateway_connection_refusals_total{reason=\"head_too_large\"} 2\n"),
        "{metrics}"
    );
    // A head under the limit passes.
    let req = format!(
        "GET /open/x HTTP/1.1\r\nhost: a\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        &big[..8000]
    );
    let out = client::raw(gw.addr, req.as_bytes()).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_oversized_head_pipelined_behind_a_body_gets_431_and_is_not_forwarded() {
    // The second head arrives in the same reads as the first request's body, before the
    // connection is back to reading heads; the pipeline measures it as parsed.
    let gw = TestGateway::start_with(limits("  max_header_bytes: 16384")).await;
    let body = "b".repeat(300_000);
    let big = "x".repeat(20_000);
    let req = format!(
        "POST /open/first HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n{body}\
         GET /open/second HTTP/1.1\r\nhost: a\r\nx-big: {big}\r\n\r\n",
        body.len()
    );
    let out = client::raw(gw.addr, req.as_bytes()).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let second = text
        .find("HTTP/1.1 431")
        .map(|i| &text[i..])
        .unwrap_or_else(|| panic!("no 431 for the pipelined head: {text}"));
    assert!(second.contains("connection: close\r\n"), "{second}");
    assert_eq!(json_body(second)["error"], "invalid_request");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1, "only the first request is forwarded");
    assert_eq!(seen[0].body_len, 300_000);
    let metrics = gw.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dpop_gateway_requests_total")
                && l.contains("reason=\"head_too_large\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_request_head_gets_408_and_the_connection_closes() {
    let gw = TestGateway::start_with(limits("  header_read_timeout: 500ms")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /open/x HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    // ...and never the blank line.
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway closed the connection");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert_eq!(json_body(&text)["error"], "invalid_request");
    assert!(gw.upstream.requests().is_empty());
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("dpop_gateway_connection_refusals_total{reason=\"head_timeout\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_body_is_not_cut_by_the_head_timeout() {
    let gw =
        TestGateway::start_with(limits("  header_read_timeout: 300ms\n  idle_timeout: 5s")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        b"POST /open/x HTTP/1.1\r\nhost: a\r\ncontent-length: 4\r\nconnection: close\r\n\r\nab",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    s.write_all(b"cd").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert_eq!(gw.upstream.requests()[0].body_len, 4);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let gw = TestGateway::start_with(limits("  idle_timeout: 500ms")).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /open/x HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Keep-alive: no further request. The gateway closes after idle_timeout.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "idle connection closed within 5 s");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_but_not_while_a_stream_is_open() {
    let gw = TestGateway::start_with(limits("  idle_timeout: 500ms")).await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    // A stream open three times idle_timeout (the upstream answers after 1.5 s): not idle.
    let req = Request::get("http://a/open/slow?ms=1500")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    assert!(!conn.is_finished(), "open while a stream was");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!conn.is_finished(), "not closed before idle_timeout");
    // Then nothing but the gateway's keep-alive PINGs, which the client answers: closed after
    // idle_timeout all the same, cleanly (GOAWAY).
    let closed = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(
        matches!(closed, Ok(Ok(Ok(())))),
        "idle HTTP/2 connection closed cleanly within 5 s: {closed:?}"
    );
    assert_eq!(gw.upstream.requests().len(), 1);
}

#[tokio::test]
async fn connections_past_max_connections_wait_for_a_slot() {
    let gw = TestGateway::start_with(limits("  max_connections: 1")).await;
    // The first connection holds the only slot (idle keep-alive, no request yet).
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    let second = tokio::spawn({
        let addr = gw.addr;
        async move {
            let req = Request::get("/open/second")
                .header("host", "a")
                .body(Full::new(Bytes::new()))
                .unwrap();
            client::send(addr, Mode::H1, req).await.status()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second connection waits in the backlog"
    );
    assert!(gw.upstream.requests().is_empty());
    first
        .write_all(b"GET /open/first HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    first.read_to_end(&mut out).await.unwrap();
    assert_eq!(second.await.unwrap(), 200);
    let seen: Vec<String> = gw.upstream.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(seen, ["/open/first", "/open/second"]);
}

#[tokio::test]
async fn http2_streams_past_max_concurrent_streams_are_queued_not_lost() {
    let gw = TestGateway::start_with(limits("  max_concurrent_streams: 2")).await;
    // Six slow requests over one h2 connection: the server allows two at a time.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    // One request first, so the server's SETTINGS (with its stream limit) have arrived: past
    // it, the client queues instead of opening streams the server must refuse.
    let mut warm = sender.clone();
    let req = Request::get("http://a/open/warm")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(warm.send_request(req).await.unwrap().status(), 200);
    let started = dpop_gateway::clock::monotonic();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let mut sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get(format!("http://a/open/slow?ms=300&i={i}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            sender.send_request(req).await.map(|r| r.status().as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    // Three waves of two: at least ~900 ms (a lower bound, not a timing assertion on speed).
    assert!(
        started.elapsed() >= Duration::from_millis(850),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gw.upstream.requests().len(), 7);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_refuses_new_connections_and_exits_0() {
    let upstream = Upstream::start().await;
    let issuer = Issuer::new();
    let mut gw = GatewayProcess::spawn(&Options::default(), &upstream, &issuer).await;
    assert_eq!(gw.admin_get("/readyz").await, Some(200));
    let addr = gw.addr;
    let slow = tokio::spawn(async move {
        let req = Request::get("/open/slow?ms=1500")
            .header("host", "a")
            .body(Full::new(Bytes::new()))
            .unwrap();
        client::send(addr, Mode::H1, req).await.status().as_u16()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(gw.addr).await.is_err(),
        "new connections are refused once draining"
    );
    assert_eq!(slow.await.unwrap(), 200, "the in-flight request completes");
    let code = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

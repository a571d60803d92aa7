//! HTTP/2 floods at the frame level (the `h2` crate as a client that resets streams as an
//! attacker would) and what they cost the upstream: streams cancelled after the gateway
//! accepted them (CVE-2023-44487 class) end in GOAWAY, and neither they nor a connection's
//! fan-out make the gateway open upstream connections without bound.

use std::time::Duration;

use http::Request;
use tokio::net::TcpStream;

use crate::support::{Options, TestGateway};

fn limits(extra: &str) -> Options {
    Options {
        extra: format!("limits:\n{extra}"),
        ..Options::default()
    }
}

/// Waits (at most `secs`) until `f` holds; returns whether it did.
async fn within(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let until = dpop_gateway::clock::monotonic() + Duration::from_secs(secs);
    while dpop_gateway::clock::monotonic() < until {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// Streams opened on `/open/slow` (the upstream answers after 500 ms), each reset with
/// RST_STREAM(CANCEL) once the upstream has received its request, i.e. well after the gateway
/// accepted it: h2's own rapid-reset counter never sees these.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_reset_after_accept_get_goaway_and_do_not_churn_upstream_connections() {
    const BATCH: usize = 20;
    const ROUNDS: usize = 20;
    let gw = TestGateway::start_with(limits("  max_concurrent_streams: 20")).await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let mut reset = 0;
    let mut refused = None;
    'rounds: for round in 0..ROUNDS {
        let before = gw.upstream.requests().len();
        let mut streams = Vec::new();
        for i in 0..BATCH {
            let req = Request::get(format!("http://a/open/slow?ms=500&r={round}&i={i}"))
                .body(())
                .unwrap();
            client = match client.ready().await {
                Ok(c) => c,
                Err(e) => {
                    refused = Some(e);
                    break 'rounds;
                }
            };
            match client.send_request(req, true) {
                Ok((response, stream)) => streams.push((response, stream)),
                Err(e) => {
                    refused = Some(e);
                    break 'rounds;
                }
            }
        }
        // Accepted and forwarded (the upstream has the request), not yet answered.
        within(2, || gw.upstream.requests().len() >= before + BATCH).await;
        for (response, mut stream) in streams {
            stream.send_reset(h2::Reason::CANCEL);
            drop(response);
            reset += 1;
        }
    }
    let after_flood = gw.upstream.connections();
    // The gateway said GOAWAY: new streams are refused and the connection ends.
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    let goaway = match &refused {
        Some(e) => e.is_go_away() || e.is_remote(),
        None => false,
    } || matches!(ended, Ok(Ok(Ok(()))));
    assert!(
        goaway,
        "no GOAWAY after {reset} streams reset after accept ({after_flood} upstream connections; refused: {refused:?}, connection: {ended:?})"
    );
    assert!(
        reset < ROUNDS * BATCH,
        "the connection took all {reset} resets"
    );
    // The cancelled exchanges finished in the background and their connections went back to
    // the pool: at most one per stream the client could have in flight, not one per reset.
    let connections = gw.upstream.connections();
    assert!(
        connections <= BATCH + 1,
        "{connections} upstream connections for {reset} resets"
    );
    eprintln!("flood: {reset} streams reset after accept, {connections} upstream connections, refused: {refused:?}");
    // Normal traffic on another connection is served (a generous bound, not a timing test).
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        gw.call("GET", "/open/after").send(),
    )
    .await
    .expect("a normal request is served during and after the flood");
    assert_eq!(resp.status(), 200);
    assert!(gw.upstream.connections() <= BATCH + 2);
}

/// A body trickled in (a byte every 200 ms: never `idle_timeout` without data) holds its
/// connection, and its `max_connections` slot, until `upstream.request_timeout` at most: the
/// upstream has not answered by then, so the client gets 504 and the connection closes. This is
/// the bound SECURITY.md states for slow clients.
#[tokio::test]
async fn a_trickled_body_holds_its_connection_only_until_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = TestGateway::start_with(Options {
        request_timeout: "1s".into(),
        ..Options::default()
    })
    .await;
    let mut c = TcpStream::connect(gw.addr).await.unwrap();
    c.write_all(b"POST /open/echo-size HTTP/1.1\r\nhost: a\r\ncontent-length: 1000\r\n\r\n")
        .await
        .unwrap();
    let started = dpop_gateway::clock::monotonic();
    let mut buf = [0u8; 4096];
    let mut answer = String::new();
    for _ in 0..75 {
        if c.write_all(b"x").await.is_err() {
            break;
        }
        let read = tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await;
        if let Ok(Ok(n)) = read {
            answer = String::from_utf8_lossy(&buf[..n]).into_owned();
            break;
        }
    }
    let held = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer:?}");
    // Well under the 15 s the trickle would go on: request_timeout, not idle_timeout (60 s).
    assert!(held < Duration::from_secs(10), "held {held:?}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_))),
        "closed after the 504: {closed:?}"
    );
    // The upstream's connection was cut: it saw the body break off, never end.
    assert!(within(5, || gw.upstream.requests().len() == 1).await);
    assert!(gw.upstream.requests()[0].body_len < 1000);
}

// === Raw frames: what no well-behaved client library sends ===

/// One HTTP/2 frame (RFC 9113 §4.1).
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
/// The GOAWAY error code for a peer that "might be generating excessive load" (RFC 9113 §7).
const ENHANCE_YOUR_CALM: u32 = 0xb;
const END_HEADERS: u8 = 0x4;

/// A GET header block for `path` in HPACK without the dynamic table or Huffman (RFC 7541 §6.1,
/// §6.2.2): `:method GET`, `:scheme http` from the static table, `:authority` and `:path` as
/// literals with indexed names.
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    for (index, value) in [(1u8, "a"), (4u8, path)] {
        b.push(index);
        b.push(u8::try_from(value.len()).unwrap());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// The preface and an empty SETTINGS frame.
fn preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out
}

/// Reads frames until a GOAWAY (returns its error code) or the connection ends (`None`), for
/// at most 10 s.
async fn goaway(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Option<u32> {
    use tokio::io::AsyncReadExt;
    let read = async {
        loop {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await.ok()?;
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            stream.read_exact(&mut payload).await.ok()?;
            if head[3] == GOAWAY {
                return Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
        .flatten()
}

/// The classic rapid reset (CVE-2023-44487): HEADERS then RST_STREAM at once, 1000 streams in
/// one burst. h2 sends GOAWAY (ENHANCE_YOUR_CALM) past 20 streams reset before they were
/// accepted; whatever was accepted counts toward the gateway's own limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_burst_gets_goaway_and_reaches_the_upstream_boundedly() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start().await;
    let (mut rd, mut wr) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    let mut burst = preface();
    for i in 0..1000u32 {
        let id = 2 * i + 1;
        burst.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            id,
            &get_block("/open/slow?ms=200"),
        ));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
    }
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&burst).await;
        wr
    });
    let code = goaway(&mut rd).await;
    assert_eq!(
        code,
        Some(ENHANCE_YOUR_CALM),
        "GOAWAY after a rapid-reset burst"
    );
    let _ = writer.await;
    let seen = gw.upstream.requests().len();
    eprintln!(
        "rapid reset: GOAWAY {code:?}, {seen} requests and {} connections at the upstream",
        gw.upstream.connections()
    );
    assert!(
        seen < 1000,
        "{seen} of 1000 reset streams reached the upstream"
    );
    assert!(
        gw.upstream.connections() <= 100,
        "{} upstream connections",
        gw.upstream.connections()
    );
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        gw.call("GET", "/open/after").send(),
    )
    .await
    .expect("a normal request is served");
    assert_eq!(resp.status(), 200);
}

/// A header block that never ends (CVE-2024-27316 class, "CONTINUATION flood"): HEADERS
/// without END_HEADERS, then 16 KiB CONTINUATION frames, 16 MiB in all. The connection is
/// closed (GOAWAY) once the block passes the header list limit (`max_header_bytes`), long
/// before the flood is in (what was written includes the kernel's socket buffers), and nothing
/// reaches the upstream.
#[tokio::test]
async fn a_continuation_flood_is_cut_off_long_before_its_end() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start().await;
    let (mut rd, mut wr) = TcpStream::connect(gw.addr).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        let mut out = preface();
        out.extend(frame(HEADERS, END_STREAM, 1, &get_block("/open/x")));
        wr.write_all(&out).await.unwrap();
        // Literal header fields without indexing, new names: `x-NNNN: <16 000 bytes>`.
        let mut written = 0usize;
        for i in 0..1024u32 {
            let name = format!("x-{i:04}");
            let mut block = vec![0x00, u8::try_from(name.len()).unwrap()];
            block.extend_from_slice(name.as_bytes());
            // Value length 16000 as an HPACK integer with a 7-bit prefix.
            block.extend_from_slice(&[0x7f, 0x81, 0x7c]);
            block.extend(std::iter::repeat_n(b'v', 16000));
            if wr
                .write_all(&frame(CONTINUATION, 0, 1, &block))
                .await
                .is_err()
            {
                break;
            }
            written += block.len();
        }
        written
    });
    let ended = goaway(&mut rd).await;
    let written = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the flood's writes stop")
        .unwrap();
    eprintln!("continuation flood: {written} bytes written, GOAWAY {ended:?}");
    assert!(
        written < 16 * 1024 * 1024,
        "the gateway read the whole {written}-byte header block (GOAWAY: {ended:?})"
    );
    assert_eq!(ended, Some(ENHANCE_YOUR_CALM));
    assert!(gw.upstream.requests().is_empty());
}

/// HTTP/1.1 clients that close their connection while the upstream works on their request: each
/// exchange finishes in the background and its connection goes back to the pool, so ten such
/// clients one after another cost the upstream one connection, not ten.
#[tokio::test]
async fn http1_clients_that_hang_up_mid_request_do_not_cost_upstream_connections() {
    use tokio::io::AsyncWriteExt;
    let gw = TestGateway::start().await;
    for i in 0..10 {
        let mut c = TcpStream::connect(gw.addr).await.unwrap();
        let before = gw.upstream.requests().len();
        c.write_all(format!("GET /open/slow?ms=100&i={i} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        assert!(within(5, || gw.upstream.requests().len() > before).await);
        drop(c);
        // The upstream answers 100 ms later; the gateway reads that answer for nobody.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let connections = gw.upstream.connections();
    assert!(
        connections <= 2,
        "{connections} upstream connections for 10 clients that hung up"
    );
    let resp = gw.call("GET", "/open/after").send().await;
    assert_eq!(resp.status(), 200);
}

//! HTTP edge cases on the client side of the gateway, over real sockets in front of a real
//! upstream (and curl, where what a real client does is the point): `Expect: 100-continue`
//! uploads, the version of the response, bare-LF heads and heads after empty lines, transfer
//! codings, request targets over the head limit, request bodies that break off, malformed
//! HTTP/2 field values and preflights with a body. Each test asserts what the upstream
//! received: nothing for a refusal, the body's length and SHA-256 for an upload.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dpop_gateway::jose::sign::PrivateJwk;
use dpop_gateway::jose::Algorithm;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::client::{self, Mode};
use crate::support::upstream::{self, pattern_body};
use crate::support::{proof, temp_dir, Options, TestGateway};

const MIB: u64 = 1024 * 1024;

/// How long one read or write of a test connection may take (a 256 MiB upload through a debug
/// build included).
const IO_LIMIT: Duration = Duration::from_secs(120);

/// One block of the upload pattern (byte `i` is `i % 251`, as [`upstream::pattern`]): a whole
/// number of periods, so a body is this block repeated, then a prefix of it.
fn block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| (0..251 * 1024).map(|i| (i % 251) as u8).collect())
}

/// The SHA-256 of the first `len` bytes of the pattern, block by block (nothing held).
fn pattern_sha256(len: u64) -> [u8; 32] {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut left = len;
    while left > 0 {
        let n = left.min(block().len() as u64) as usize;
        digest.update(&block()[..n]);
        left -= n as u64;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.finish().as_ref());
    out
}

/// Writes the first `len` bytes of the pattern to `w`.
async fn write_pattern<W: AsyncWrite + Unpin>(w: &mut W, len: u64) {
    let mut left = len;
    while left > 0 {
        let n = left.min(block().len() as u64) as usize;
        tokio::time::timeout(IO_LIMIT, w.write_all(&block()[..n]))
            .await
            .expect("write in time")
            .expect("write");
        left -= n as u64;
    }
}

/// A file holding the first `len` bytes of the pattern (for curl).
fn pattern_file(dir: &Path, len: u64) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(format!("pattern-{len}"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut left = len;
    while left > 0 {
        let n = left.min(block().len() as u64) as usize;
        f.write_all(&block()[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
    path
}

/// A raw HTTP/1.1 connection that reads responses one at a time, whatever their framing.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response as read off a [`Conn`]: the head (status line and fields, without the blank
/// line) and the body, de-chunked.
#[derive(Debug)]
struct Resp {
    head: String,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        tokio::time::timeout(IO_LIMIT, self.stream.write_all(bytes))
            .await
            .expect("write in time")
            .expect("write");
    }

    /// Reads more bytes into the buffer; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        match tokio::time::timeout(IO_LIMIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("no bytes within {IO_LIMIT:?}; so far: {:?}", self.text()),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// The next head, up to and without its blank line.
    async fn head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                return head;
            }
            assert!(self.fill().await, "closed before a head: {:?}", self.text());
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await, "closed inside a body");
        }
        self.buf.drain(..n).collect()
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return line;
            }
            assert!(self.fill().await, "closed inside a chunked body");
        }
    }

    /// The next final response (interim 1xx heads are returned in `interim`).
    async fn response(&mut self) -> (Vec<String>, Resp) {
        let mut interim = Vec::new();
        loop {
            let head = self.head().await;
            if head.starts_with("HTTP/1.1 1") && !head.starts_with("HTTP/1.1 101") {
                interim.push(head);
                continue;
            }
            let body = self.body(&head).await;
            return (interim, Resp { head, body });
        }
    }

    async fn body(&mut self, head: &str) -> Vec<u8> {
        if let Some(len) = field(head, "content-length") {
            return self.take(len.parse().unwrap()).await;
        }
        if field(head, "transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let size = usize::from_str_radix(self.line().await.trim(), 16).unwrap();
                if size == 0 {
                    // No trailers from this gateway: the blank line.
                    assert_eq!(self.line().await, "");
                    return body;
                }
                body.extend(self.take(size).await);
                assert_eq!(self.line().await, "");
            }
        }
        // Neither: the body runs to the end of the stream.
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// Whether the peer closes the connection (within 5 s) without sending anything more.
    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    }
}

/// The value of the first field `name` in a response head (case-insensitive name).
fn field<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The `error` member of a refusal's JSON body.
fn json_error(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    v["error"].as_str().unwrap_or_default().to_owned()
}

/// The header lines that authorize `method path` on a `dpop` route, each ending in CRLF.
fn credentials(gw: &TestGateway, key: &PrivateJwk, method: &str, path: &str) -> String {
    let token = gw.issuer.token_for(key);
    let p = proof(key, method, &gw.url(path), Some(&token));
    format!("authorization: DPoP {token}\r\ndpop: {p}\r\n")
}

fn limits(lines: &str) -> Options {
    Options {
        extra: format!("limits:\n{lines}"),
        ..Options::default()
    }
}

// === 1. Expect: 100-continue ===

/// Uploads by curl itself, which waits for the `100 Continue` (up to a minute here) before it
/// sends the body: 5 MiB and 256 MiB, on a checked and an open route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_expect_100_continue_uploads_arrive_whole() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let dir = temp_dir("expect-curl");
    let mut sent = 0;
    for len in [5 * MIB, 256 * MIB] {
        let file = pattern_file(&dir, len);
        for path in ["/upload", "/open/upload"] {
            let mut args: Vec<String> = [
                "-sS",
                "-v",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--expect100-timeout",
                "60",
                "-H",
                "Expect: 100-continue",
                "-H",
                "content-type: application/octet-stream",
                "-X",
                "POST",
                "-T",
            ]
            .map(str::to_owned)
            .into();
            args.push(file.display().to_string());
            if path == "/upload" {
                let token = gw.issuer.token_for(&key);
                let p = proof(&key, "POST", &gw.url(path), Some(&token));
                args.extend([
                    "-H".into(),
                    format!("Authorization: DPoP {token}"),
                    "-H".into(),
                    format!("DPoP: {p}"),
                ]);
            }
            args.push(gw.url(path));
            let out = tokio::task::spawn_blocking(move || {
                Command::new("curl").args(&args).output().expect("run curl")
            })
            .await
            .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "200",
                "{len} bytes to {path}: {}",
                stderr
                    .lines()
                    .filter(|l| l.starts_with('<'))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            assert!(stderr.contains("< HTTP/1.1 100 Continue"), "{stderr}");
            sent += 1;
            let seen = gw.upstream.requests();
            assert_eq!(seen.len(), sent);
            let last = &seen[sent - 1];
            assert_eq!(last.uri, path);
            assert_eq!(last.body_len, len, "{path}");
            assert_eq!(last.body_sha256, pattern_sha256(len), "{path}");
            assert!(last.headers.get("dpop").is_none());
        }
        std::fs::remove_file(&file).unwrap();
    }
}

/// A raw client sends `Expect: 100-continue`, waits for the interim response, then sends the
/// body; the final response ends the request and the connection takes the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_expect_100_continue_uploads_arrive_whole_and_keep_the_connection() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let mut sent = 0;
    for len in [5 * MIB, 256 * MIB] {
        for path in ["/upload", "/open/upload"] {
            let creds = if path == "/upload" {
                credentials(&gw, &key, "POST", path)
            } else {
                String::new()
            };
            let mut c = Conn::open(gw.addr).await;
            c.write(
                format!(
                    "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {len}\r\n\
                     expect: 100-continue\r\n{creds}\r\n",
                    gw.addr
                )
                .as_bytes(),
            )
            .await;
            assert_eq!(c.head().await, "HTTP/1.1 100 Continue");
            write_pattern(&mut c.stream, len).await;
            let (interim, resp) = c.response().await;
            assert!(interim.is_empty(), "{interim:?}");
            assert!(
                resp.head.starts_with("HTTP/1.1 200"),
                "{len} {path}: {resp:?}"
            );
            // The connection is back to reading heads: a second request on it.
            c.write(format!("GET /open/after HTTP/1.1\r\nhost: {}\r\n\r\n", gw.addr).as_bytes())
                .await;
            let (_, next) = c.response().await;
            assert!(next.head.starts_with("HTTP/1.1 200"), "{next:?}");
            sent += 2;
            let seen = gw.upstream.requests();
            assert_eq!(seen.len(), sent);
            assert_eq!(seen[sent - 2].uri, path);
            assert_eq!(seen[sent - 2].body_len, len, "{path}");
            assert_eq!(seen[sent - 2].body_sha256, pattern_sha256(len), "{path}");
            assert_eq!(seen[sent - 1].uri, "/open/after");
        }
    }
}

/// A client that sends `Expect: 100-continue` and its body at once, without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expect_100_continue_body_sent_without_waiting_arrives_whole() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let len = 5 * MIB;
    for (i, path) in ["/upload", "/open/upload"].into_iter().enumerate() {
        let creds = if path == "/upload" {
            credentials(&gw, &key, "POST", path)
        } else {
            String::new()
        };
        let mut c = Conn::open(gw.addr).await;
        c.write(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {len}\r\n\
                 expect: 100-continue\r\n{creds}\r\n",
                gw.addr
            )
            .as_bytes(),
        )
        .await;
        write_pattern(&mut c.stream, len).await;
        let (interim, resp) = c.response().await;
        assert!(
            interim.iter().all(|h| h == "HTTP/1.1 100 Continue"),
            "{interim:?}"
        );
        assert!(resp.head.starts_with("HTTP/1.1 200"), "{path}: {resp:?}");
        let seen = gw.upstream.requests();
        assert_eq!(seen.len(), i + 1);
        assert_eq!(seen[i].body_len, len);
        assert_eq!(seen[i].body_sha256, pattern_sha256(len));
    }
}

// === 2. The response's version is the gateway's ===

/// An HTTP/1.0 upstream, as `python3 -m http.server` is: each connection gets one
/// `HTTP/1.0 200 OK` (with `Content-Length` or, without, ended by closing) and is closed.
/// Returns its address and the request lines it received.
async fn http10_upstream(with_length: bool) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut c = Conn {
                    stream: s,
                    buf: Vec::new(),
                };
                let head = c.head().await;
                let line = head.lines().next().unwrap_or_default().to_owned();
                record.lock().unwrap().push(line);
                let answer = if with_length {
                    "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 14\r\n\r\nhello from 1.0"
                } else {
                    "HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nhello from 1.0"
                };
                let _ = c.stream.write_all(answer.as_bytes()).await;
                let _ = c.stream.shutdown().await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn behind_an_http10_upstream_the_client_gets_http11_and_keep_alive() {
    for with_length in [false, true] {
        let (addr, seen) = http10_upstream(with_length).await;
        let gw = TestGateway::start_with(Options {
            upstream_url: Some(format!("http://{addr}")),
            ..Options::default()
        })
        .await;
        let mut c = Conn::open(gw.addr).await;
        for path in ["/open/a", "/open/b"] {
            c.write(format!("GET {path} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes())
                .await;
            let (_, resp) = c.response().await;
            assert!(
                resp.head.starts_with("HTTP/1.1 200"),
                "length {with_length}: {resp:?}"
            );
            assert!(field(&resp.head, "connection").is_none(), "{resp:?}");
            assert_eq!(resp.body, b"hello from 1.0");
        }
        assert_eq!(
            *seen.lock().unwrap(),
            ["GET /open/a HTTP/1.1", "GET /open/b HTTP/1.1"]
        );
    }
}

// === 3. Bare-LF heads, empty lines before a head ===

#[tokio::test]
async fn a_bare_lf_head_ends_at_its_empty_line() {
    let gw = TestGateway::start_with(limits(
        "  max_header_bytes: 16384\n  header_read_timeout: 500ms",
    ))
    .await;
    let mut c = Conn::open(gw.addr).await;
    // A body far over max_header_bytes after a head whose lines end in LF alone.
    let len = 300_000;
    c.write(format!("POST /open/upload HTTP/1.1\nhost: a\ncontent-length: {len}\n\n").as_bytes())
        .await;
    write_pattern(&mut c.stream, len).await;
    let (_, resp) = c.response().await;
    assert!(resp.head.starts_with("HTTP/1.1 200"), "{resp:?}");
    // The next one, LF and CRLF mixed, answered after longer than header_read_timeout: the
    // head ended, so the wait is the upstream's, not a slow head.
    c.write(b"GET /open/slow?ms=1500 HTTP/1.1\r\nhost: a\n\r\n")
        .await;
    let (_, resp) = c.response().await;
    assert!(resp.head.starts_with("HTTP/1.1 200"), "{resp:?}");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body_len, len);
    assert_eq!(seen[0].body_sha256, pattern_sha256(len));
    assert_eq!(seen[1].uri, "/open/slow?ms=1500");
}

#[tokio::test]
async fn empty_lines_before_a_head_do_not_escape_the_head_limits() {
    let gw = TestGateway::start_with(limits(
        "  max_header_bytes: 16384\n  header_read_timeout: 500ms",
    ))
    .await;
    let big = "x".repeat(20_000);
    for lead in ["\r\n\r\n", "\n\n", "\r\n"] {
        // Too large: 431, not forwarded.
        let req = format!("{lead}GET /open/x HTTP/1.1\r\nhost: a\r\nx-big: {big}\r\n\r\n");
        let out = client::raw(gw.addr, req.as_bytes()).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 431"), "{lead:?}: {text}");
        // Too slow: 408.
        let mut c = Conn::open(gw.addr).await;
        c.write(format!("{lead}GET /open/x HTTP/1.1\r\nhost: a\r\n").as_bytes())
            .await;
        let (_, resp) = c.response().await;
        assert!(resp.head.starts_with("HTTP/1.1 408"), "{lead:?}: {resp:?}");
    }
    assert!(gw.upstream.requests().is_empty());
    // Refused as they arrived, by the connection (not once parsed, by the pipeline).
    let metrics = gw.metrics().await;
    for reason in ["head_too_large", "head_timeout"] {
        let line = format!("dpop_gateway_connection_refusals_total{{reason=\"{reason}\"}} 3\n");
        assert!(metrics.contains(&line), "{metrics}");
    }
    // Empty lines before a good head are ignored (RFC 9112 §2.2): served.
    let out = client::raw(
        gw.addr,
        b"\r\n\r\nGET /open/x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert_eq!(gw.upstream.requests().len(), 1);
}

// === 4. Transfer codings other than chunked ===

#[tokio::test]
async fn a_transfer_coding_other_than_chunked_is_501_and_not_forwarded() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    let gzip = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcbH\xcd\xc9\xc9\x07\x00\x86\xa6\x106\x05\x00\x00\x00";
    let chunked = {
        let mut b = format!("{:x}\r\n", gzip.len()).into_bytes();
        b.extend_from_slice(gzip);
        b.extend_from_slice(b"\r\n0\r\n\r\n");
        b
    };
    for (path, te) in [
        ("/open/x", "transfer-encoding: gzip, chunked\r\n"),
        ("/open/x", "transfer-encoding: gzip,chunked\r\n"),
        ("/open/x", "transfer-encoding: chunked, chunked\r\n"),
        (
            "/open/x",
            "transfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n",
        ),
        ("/upload", "transfer-encoding: deflate, chunked\r\n"),
    ] {
        let creds = if path == "/upload" {
            credentials(&gw, &key, "POST", path)
        } else {
            String::new()
        };
        let mut c = Conn::open(gw.addr).await;
        c.write(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {}\r\n{te}{creds}\r\n",
                gw.addr
            )
            .as_bytes(),
        )
        .await;
        c.write(&chunked).await;
        let (_, resp) = c.response().await;
        assert!(resp.head.starts_with("HTTP/1.1 501"), "{te:?}: {resp:?}");
        assert_eq!(field(&resp.head, "connection"), Some("close"));
        assert_eq!(json_error(&resp.body), "invalid_request");
    }
    assert!(gw.upstream.requests().is_empty());
    // Chunked alone (any case) is forwarded with its bytes.
    let mut c = Conn::open(gw.addr).await;
    c.write(b"POST /open/x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: Chunked\r\n\r\n")
        .await;
    c.write(&chunked).await;
    let (_, resp) = c.response().await;
    assert!(resp.head.starts_with("HTTP/1.1 200"), "{resp:?}");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body_len, gzip.len() as u64);
    assert_eq!(seen[0].body_sha256, upstream::sha256(gzip));
}

// === 5. A request target over the head limit ===

#[tokio::test]
async fn a_request_target_over_max_header_bytes_is_414() {
    let gw = TestGateway::start().await;
    let long = "a".repeat(70 * 1024);
    let out = client::raw(
        gw.addr,
        format!("GET /open/{long} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 414"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(json_error(body.as_bytes()), "invalid_request");
    // A short target with a long field is still 431.
    let out = client::raw(
        gw.addr,
        format!("GET /open/x HTTP/1.1\r\nhost: a\r\nx-long: {long}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"));
    assert!(gw.upstream.requests().is_empty());
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("dpop_gateway_connection_refusals_total{reason=\"uri_too_long\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_long_request_target_pipelined_behind_a_body_is_414() {
    let gw = TestGateway::start_with(limits("  max_header_bytes: 16384")).await;
    let body = "b".repeat(300_000);
    let long = "a".repeat(20_000);
    let req = format!(
        "POST /open/first HTTP/1.1\r\nhost: a\r\ncontent-length: {}\r\n\r\n{body}\
         GET /open/{long} HTTP/1.1\r\nhost: a\r\n\r\n",
        body.len()
    );
    let out = client::raw(gw.addr, req.as_bytes()).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 414"), "{text}");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1, "only the first request is forwarded");
    assert_eq!(seen[0].uri, "/open/first");
}

// === 6. A request body that breaks off is the client's fault ===

#[tokio::test]
async fn a_malformed_chunked_body_is_400_not_502() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    for (i, path) in ["/open/upload", "/upload"].into_iter().enumerate() {
        let creds = if path == "/upload" {
            credentials(&gw, &key, "POST", path)
        } else {
            String::new()
        };
        let mut c = Conn::open(gw.addr).await;
        c.write(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {}\r\ntransfer-encoding: chunked\r\n{creds}\r\n5\r\nhello\r\n",
                gw.addr
            )
            .as_bytes(),
        )
        .await;
        // Forwarding has begun (the upstream is reading the first chunk) when the framing
        // breaks.
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.write(b"zz\r\nnot a chunk size\r\n").await;
        let (_, resp) = c.response().await;
        assert!(resp.head.starts_with("HTTP/1.1 400"), "{path}: {resp:?}");
        assert_eq!(json_error(&resp.body), "invalid_request");
        assert!(c.closed().await, "the connection ends after a broken body");
        // The upstream got the request and the bytes before the break, never a whole body.
        crate::support::assert_eventually("the upstream recorded it", || {
            gw.upstream.requests().len() == i + 1
        })
        .await;
        let seen = &gw.upstream.requests()[i];
        assert_eq!(seen.uri, path);
        assert!(seen.body_len <= 5, "{}", seen.body_len);
    }
    // Counted as the client's refusals, not as upstream errors.
    let metrics = gw.metrics().await;
    let refused: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("dpop_gateway_requests_total")
                && l.contains("reason=\"request_body\"")
                && l.contains("status=\"400\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(refused, 2, "{metrics}");
    assert!(
        metrics.contains(
            "dpop_gateway_upstream_errors_total{kind=\"protocol\",upstream=\"default\"} 0\n"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_body_that_stalls_past_idle_timeout_is_408() {
    let gw = TestGateway::start_with(limits("  idle_timeout: 500ms")).await;
    let mut c = Conn::open(gw.addr).await;
    c.write(b"POST /open/upload HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nhello")
        .await;
    let (_, resp) = c.response().await;
    assert!(resp.head.starts_with("HTTP/1.1 408"), "{resp:?}");
    assert_eq!(json_error(&resp.body), "invalid_request");
    crate::support::assert_eventually("the upstream recorded it", || {
        gw.upstream.requests().len() == 1
    })
    .await;
    assert!(gw.upstream.requests()[0].body_len <= 5);
}

// === 7. HTTP/2 field values with surrounding whitespace ===

#[tokio::test]
async fn http2_field_values_with_surrounding_whitespace_are_refused() {
    let gw = TestGateway::start().await;
    let key = PrivateJwk::generate(Algorithm::ES256).unwrap();
    for value in ["padded ", " padded", "\tpadded", "padded\t", " "] {
        let resp = gw
            .call("GET", "/open/x")
            .header("x-padded", value)
            .mode(Mode::H2c)
            .send()
            .await;
        assert_eq!(resp.status(), 400, "{value:?}");
        assert_eq!(json_error(resp.body()), "invalid_request");
        let resp = gw
            .authorized(&key, "GET", "/resource")
            .header("x-padded", value)
            .mode(Mode::H2c)
            .send()
            .await;
        assert_eq!(resp.status(), 400, "{value:?}");
    }
    assert!(gw.upstream.requests().is_empty());
    // HTTP/1 parsing removes the whitespace around a value: nothing malformed reaches us.
    let out = client::raw(
        gw.addr,
        b"GET /open/x HTTP/1.1\r\nhost: a\r\nx-padded:  padded \t\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert_eq!(gw.upstream.requests()[0].headers["x-padded"], "padded");
}

// === 8. A preflight has no body ===

#[tokio::test]
async fn an_http2_preflight_with_a_body_needs_a_proof() {
    let gw = TestGateway::start().await;
    let preflight = |body| {
        Request::builder()
            .method("OPTIONS")
            .uri("/admin/users/7")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "DELETE")
            .body(body)
            .unwrap()
    };
    // DATA frames with no content-length: not a preflight, a request without credentials.
    let resp = client::send_streaming(gw.addr, Mode::H2c, preflight(pattern_body(7, false))).await;
    assert_eq!(resp.status(), 401);
    assert!(gw.upstream.requests().is_empty());
    // HTTP/1.1 with a chunked body: the same.
    let mut c = Conn::open(gw.addr).await;
    c.write(
        b"OPTIONS /admin/users/7 HTTP/1.1\r\nhost: a\r\norigin: https://app.example\r\n\
          access-control-request-method: DELETE\r\ntransfer-encoding: chunked\r\n\r\n\
          7\r\npayload\r\n0\r\n\r\n",
    )
    .await;
    let (_, resp) = c.response().await;
    assert!(resp.head.starts_with("HTTP/1.1 401"), "{resp:?}");
    assert!(gw.upstream.requests().is_empty());
    // END_STREAM on the HEADERS: a preflight, forwarded without a proof.
    let empty = dpop_gateway::body::empty();
    let resp = client::send_streaming(gw.addr, Mode::H2c, preflight(empty)).await;
    assert_eq!(resp.status(), 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "OPTIONS");
    assert_eq!(seen[0].body_len, 0);
}

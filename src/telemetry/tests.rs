//! Unit tests of `telemetry`.

use super::*;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// An `io::Write` the test can read back.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An `io::Write` that blocks until released, like a full pipe.
struct Stalled(Arc<(Mutex<bool>, Condvar)>, Sink);

impl Write for Stalled {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (lock, cv) = &*self.0;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.1.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn line(request_id: &str, client: &str) -> AccessLine<'static> {
    AccessLine {
        request_id: Box::leak(request_id.to_owned().into_boxed_str()),
        method: "POST",
        path: "/api/items/\u{e9}\"x",
        route: "/api",
        listener: "proxy",
        status: 401,
        outcome: "invalid_dpop_proof",
        reason: "replay",
        jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
        user_agent: Some("curl/8.5.0"),
        client: client.parse().unwrap(),
        bytes_in: 12,
        bytes_out: 345,
        duration_us: 1234,
        upstream: Some("billing"),
        upstream_us: Some(1000),
    }
}

/// What tracing-subscriber itself writes for the same line (no timestamp).
fn tracing_output(l: &AccessLine<'_>) -> String {
    let sink = Sink::default();
    let out = sink.clone();
    let make = move || out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .with_writer(make)
        .finish();
    let dispatch = tracing::Dispatch::new(subscriber);
    tracing::dispatcher::with_default(&dispatch, || access(l));
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    text
}

fn ours(format: Format, l: &AccessLine<'_>) -> String {
    let mut buf = Vec::new();
    // 2023-11-14T22:13:20.000042Z
    format.write(&mut buf, 1_700_000_000_000_042, l);
    String::from_utf8(buf).unwrap()
}

#[test]
fn text_access_lines_are_the_ones_tracing_writes() {
    for (rid, client, upstream_us) in [
        (
            "00b2849ed99ebcf00000000000000009",
            "127.0.0.1:35878",
            Some(1000),
        ),
        (
            r#"id-with-"quote"-and-\backslash"#,
            "[2001:db8::1]:443",
            None,
        ),
    ] {
        let l = AccessLine {
            upstream: upstream_us.map(|_| "billing"),
            upstream_us,
            ..line(rid, client)
        };
        let text = ours(Format::Text, &l);
        let (ts, rest) = text.split_at(27);
        assert_eq!(ts, "2023-11-14T22:13:20.000042Z");
        assert_eq!(rest.trim_start(), tracing_output(&l).trim_start());
    }
    let text = ours(Format::Text, &line("r", "127.0.0.1:1"));
    assert!(
        text.contains(
            " bytes_in=12 bytes_out=345 duration_ms=1.234 upstream=\"billing\" upstream_ms=1.0\n"
        ),
        "{text}"
    );
}

#[test]
fn json_access_lines_are_one_flat_object() {
    let l = line("r-1", "[2001:db8::1]:443");
    let out = ours(Format::Json, &l);
    assert!(out.ends_with("}\n") && out.lines().count() == 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "ts": "2023-11-14T22:13:20.000042Z",
            "level": "INFO",
            "request_id": "r-1",
            "method": "POST",
            "path": "/api/items/\u{e9}\"x",
            "route": "/api",
            "listener": "proxy",
            "status": 401,
            "outcome": "invalid_dpop_proof",
            "reason": "replay",
            "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
            "user_agent": "curl/8.5.0",
            "client": "[2001:db8::1]:443",
            "bytes_in": 12,
            "bytes_out": 345,
            "duration_ms": 1.234,
            "upstream": "billing",
            "upstream_ms": 1.0,
            "target": "dpop_gateway::access",
        })
    );
    // What a line without a verified proof, a User-Agent or an upstream exchange says.
    let bare = AccessLine {
        jkt: None,
        user_agent: None,
        upstream: None,
        upstream_us: None,
        ..l
    };
    let v: serde_json::Value = serde_json::from_str(&ours(Format::Json, &bare)).unwrap();
    for key in ["jkt", "user_agent", "upstream", "upstream_ms"] {
        assert!(v[key].is_null(), "{key}: {v}");
    }
}

#[test]
fn long_values_are_clipped_on_a_character_boundary() {
    assert_eq!(clip("short", 10), "short");
    assert_eq!(clip("abcdefghij", 8), "abcde...");
    // 'é' is two bytes: the cut never splits it.
    assert_eq!(clip("ab\u{e9}\u{e9}\u{e9}", 6), "ab...");
    assert_eq!(clip("ab\u{e9}\u{e9}\u{e9}", 7), "ab\u{e9}...");
    assert!(clip(&"/x".repeat(5000), MAX_LOGGED_PATH).len() <= MAX_LOGGED_PATH);
}

#[test]
fn timestamps_are_rfc3339_utc_with_microseconds() {
    let ts = |micros: u64| {
        let mut b = Vec::new();
        rfc3339_micros(&mut b, micros);
        String::from_utf8(b).unwrap()
    };
    assert_eq!(ts(0), "1970-01-01T00:00:00.000000Z");
    assert_eq!(ts(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
    assert_eq!(ts(1_709_251_199_999_999), "2024-02-29T23:59:59.999999Z");
    assert_eq!(ts(4_102_444_800_000_000), "2100-01-01T00:00:00.000000Z");
    // The same second again (from the per-thread prefix), the next one, and back.
    assert_eq!(ts(4_102_444_800_123_456), "2100-01-01T00:00:00.123456Z");
    assert_eq!(ts(4_102_444_801_000_000), "2100-01-01T00:00:01.000000Z");
    assert_eq!(ts(0), "1970-01-01T00:00:00.000000Z");
    // A five-digit year is written in full, not cached.
    assert_eq!(ts(253_402_300_800_000_007), "10000-01-01T00:00:00.000007Z");
    let mut b = Vec::new();
    padded(&mut b, 7, 3);
    padded(&mut b, 1234, 2);
    assert_eq!(b, b"0071234");
}

#[test]
fn lines_are_written_in_order_and_all_of_them_by_the_guard() {
    let sink = Sink::default();
    let (writer, guard) = BatchWriter::spawn(sink.clone()).unwrap();
    for i in 0..1000 {
        writer
            .make_writer()
            .write_all(format!("line {i}\n").as_bytes())
            .unwrap();
    }
    drop(guard);
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines[0], "line 0");
    assert_eq!(lines[999], "line 999");
}

#[test]
fn a_line_is_written_within_the_flush_interval_without_shutdown() {
    let sink = Sink::default();
    let (writer, _guard) = BatchWriter::spawn(sink.clone()).unwrap();
    writer.make_writer().write_all(b"hello\n").unwrap();
    let deadline = crate::clock::monotonic() + Duration::from_secs(10);
    while sink.0.lock().unwrap().is_empty() {
        assert!(crate::clock::monotonic() < deadline, "line never written");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(&*sink.0.lock().unwrap(), b"hello\n");
}

#[test]
fn a_stalled_reader_bounds_the_batch_and_the_drop_is_reported() {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let sink = Sink::default();
    let (writer, guard) = BatchWriter::spawn(Stalled(gate.clone(), sink.clone())).unwrap();
    let line = vec![b'x'; 1023];
    let line = [line.as_slice(), b"\n"].concat();
    // The writer takes at most one batch and then blocks; the next batch fills to
    // MAX_BATCH and the rest is dropped instead of growing or blocking the logger.
    for _ in 0..(3 * MAX_BATCH / line.len()) {
        writer.make_writer().write_all(&line).unwrap();
    }
    assert!(writer.shared.lock().buf.len() <= MAX_BATCH);
    assert!(writer.shared.lock().dropped > 0);
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    drop(guard);
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("log lines dropped"), "no drop notice");
    assert!(
        text.len() <= 2 * MAX_BATCH + 200,
        "more than two batches written"
    );
}

//! Test support: real sockets, a real upstream, real TLS. Nothing here is mocked.
#![allow(dead_code)]

pub mod client;
pub mod gateway;
pub mod issuer_server;
pub mod ports;
pub mod process;
pub mod redis;
pub mod tls;
pub mod upstream;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub use gateway::{json_body, proof, www_error, Options, TestGateway};

/// Seconds since the epoch, as the gateway's system clock reads it.
#[allow(clippy::disallowed_methods)] // reason: tests mint proofs for the real clock
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dpop-gateway-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Polls `f` until it holds or 5 s pass.
pub async fn assert_eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("not true within 5 s: {what}");
}

// Free TCP ports for the servers tests start (Redis, Prometheus, the load bench's gateway).
// One file, included by the e2e tests, the unit tests of `replay::redis` and the load bench.
//
// Binding `127.0.0.1:0` and dropping the listener is racy: the kernel hands out the same
// ephemeral ports to every other `bind(:0)` and outgoing connection on the machine. These
// ports come from below the default ephemeral range (`ip_local_port_range` starts at 32768),
// spread by process id so that concurrent test processes do not walk the same sequence; only
// an explicit bind by someone else can take one between this check and the server's bind.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

const FIRST: u32 = 20_000;
const SPAN: u32 = 12_000;

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7919);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + base.wrapping_add(n) % SPAN;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN);
}

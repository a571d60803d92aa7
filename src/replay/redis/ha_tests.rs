//! Past one node: a Redis Sentinel setup (one master, one replica, three sentinels) and a Redis
//! Cluster (three masters, three replicas), real processes on free loopback ports, started and
//! killed by each test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::*;

mod ports {
    #![allow(dead_code, unreachable_pub)]
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/support/ports.rs"
    ));
}
use ports::free_port;

const NOW: UnixTime = UnixTime(1_700_000_000);
const TIMEOUT: Duration = Duration::from_millis(500);
const TTL: u64 = 65;

/// A Redis process (server or sentinel), killed on drop.
struct Proc {
    port: u16,
    child: Option<Child>,
}

impl Proc {
    /// `redis-server ARGS` in `dir`, listening on `port`; waits until it accepts.
    fn spawn(port: u16, dir: &PathBuf, args: &[String]) -> Proc {
        let child = Command::new("redis-server")
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        let started = monotonic();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no redis on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Proc {
            port,
            child: Some(child),
        }
    }

    fn server(port: u16, dir: &PathBuf, extra: &[&str]) -> Proc {
        let mut args: Vec<String> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--save", "", "--appendonly", "no"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        Proc::spawn(port, dir, &args)
    }

    /// Kills the process by its PID (SIGKILL: no goodbye to its peers).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn query(&self, cmd: &mut redis::Cmd) -> Value {
        let mut c = redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        cmd.query_async(&mut c).await.unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory for config files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "dpop-gateway-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}

/// Polls `cond` every 100 ms for up to `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = monotonic();
    while !cond().await {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "not within {secs} s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn counters() -> RedisMetrics {
    RedisMetrics {
        failovers: IntCounter::new("f", "f").unwrap(),
        wait_shortfalls: IntCounter::new("w", "w").unwrap(),
    }
}

fn jkt(n: u16) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..2].copy_from_slice(&n.to_be_bytes());
    k[31] = 1;
    k
}

fn key(n: u16) -> [u8; 16] {
    let mut k = [0x5a; 16];
    k[..2].copy_from_slice(&n.to_be_bytes());
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_resumes_without_restart_and_forgets_no_accepted_proof() {
    let dir = TempDir::new("sentinel");
    let mut master = Proc::server(free_port(), &dir.0, &[]);
    let replica_port = free_port();
    let replica = Proc::server(
        replica_port,
        &dir.0,
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    let mut sentinels = Vec::new();
    for n in 0..3 {
        let port = free_port();
        let conf = dir.0.join(format!("sentinel-{n}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {} 2\n\
                 sentinel down-after-milliseconds mymaster 1000\n\
                 sentinel failover-timeout mymaster 5000\n",
                master.port
            ),
        )
        .unwrap();
        sentinels.push(Proc::spawn(
            port,
            &dir.0,
            &[conf.display().to_string(), "--sentinel".to_owned()],
        ));
    }
    // The replica has synced and every sentinel knows the others (failover needs a majority).
    eventually(20, "replica in sync", || async {
        text(&replica.query(redis::cmd("INFO").arg("replication")).await)
            .contains("master_link_status:up")
    })
    .await;
    for s in &sentinels {
        eventually(20, "sentinels see each other and the replica", || async {
            let info = text(&s.query(redis::cmd("INFO").arg("sentinel")).await);
            info.contains("sentinels=3") && info.contains("slaves=1")
        })
        .await;
    }

    let urls: Vec<String> = sentinels.iter().map(Proc::url).collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let metrics = counters();
    let store = RedisStore::connect_sentinel(&urls, "mymaster", "ha:", TTL, TIMEOUT)
        .await
        .unwrap()
        .with_min_replicas(1)
        .with_metrics(metrics.clone());
    let other = RedisStore::connect_sentinel(&urls, "mymaster", "ha:", TTL, TIMEOUT)
        .await
        .unwrap();

    // With min_replicas: 1, every accepted proof is on the replica before it counts. An
    // insert may fall short on a loaded machine (WAIT past the timeout): not accepted, then.
    let mut accepted = Vec::new();
    for n in 0..200u16 {
        match store.check_and_insert(key(n), &jkt(n % 7), NOW).await {
            Ok(Admission::Fresh) => accepted.push(n),
            Err(StoreError::Unavailable(why)) => eprintln!("proof {n} not accepted: {why}"),
            other => panic!("proof {n}: {other:?}"),
        }
    }
    assert!(accepted.len() >= 150, "only {} accepted", accepted.len());
    let shortfalls_before = metrics.wait_shortfalls.get();
    // Another replica of the gateway refuses them.
    let first = accepted[0];
    assert_eq!(
        other
            .check_and_insert(key(first), &jkt(first % 7), NOW)
            .await,
        Ok(Admission::Replayed)
    );

    master.kill();
    let killed = monotonic();
    let mut n = 1000u16;
    eventually(30, "service resumes after the failover", || {
        n += 1;
        let (k, j) = (key(n), jkt(n % 7));
        let other = &other;
        async move { other.check_and_insert(k, &j, NOW).await == Ok(Admission::Fresh) }
    })
    .await;
    let resumed = killed.elapsed();
    eprintln!(
        "sentinel failover: service resumed {} ms after the master was killed",
        resumed.as_millis()
    );
    eventually(
        10,
        "the min_replicas store follows the failover",
        || async { store.check_and_insert(key(0), &jkt(0), NOW).await == Ok(Admission::Replayed) },
    )
    .await;
    assert_eq!(metrics.failovers.get(), 1);
    // No accepted proof is forgotten: each is still a replay, on both gateway replicas.
    for n in accepted {
        for s in [&store, &other] {
            assert_eq!(
                s.check_and_insert(key(n), &jkt(n % 7), NOW).await,
                Ok(Admission::Replayed),
                "proof {n} was forgotten"
            );
        }
    }
    // The new master has no replica left: WAIT falls short and the store says so.
    let got = store.check_and_insert(key(5000), &jkt(1), NOW).await;
    assert!(
        matches!(&got, Err(StoreError::Unavailable(m)) if m.contains("WAIT")),
        "{got:?}"
    );
    assert_eq!(metrics.wait_shortfalls.get(), shortfalls_before + 1);
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_a_cluster_refuse_each_others_replays_on_every_shard() {
    let dir = TempDir::new("cluster");
    let mut nodes = Vec::new();
    while nodes.len() < 6 {
        let port = free_port();
        // The cluster bus listens on port + 10000.
        if port > 55_000 || std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_err() {
            continue;
        }
        nodes.push(Proc::server(
            port,
            &dir.0,
            &[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
            ],
        ));
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let status = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "redis-cli --cluster create failed");
    for n in &nodes {
        eventually(20, "cluster state ok", || async {
            text(
                &n.query(&mut redis::cmd("CLUSTER").arg("INFO").clone())
                    .await,
            )
            .contains("cluster_state:ok")
        })
        .await;
    }

    for n in &nodes {
        eventually(20, "replicas in sync", || async {
            let info = text(&n.query(redis::cmd("INFO").arg("replication")).await);
            info.contains("role:master") || info.contains("master_link_status:up")
        })
        .await;
    }
    let seeds = [nodes[0].url(), nodes[1].url()];
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let a = RedisStore::connect_cluster(&seeds, "cl:", TTL, TIMEOUT)
        .await
        .unwrap()
        .with_per_key_limit(3);
    let b = RedisStore::connect_cluster(&seeds[1..], "cl:", TTL, TIMEOUT)
        .await
        .unwrap()
        .with_per_key_limit(3)
        .with_min_replicas(1);
    for n in 0..60u16 {
        let (first, second) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        assert_eq!(
            first.check_and_insert(key(n), &jkt(n), NOW).await,
            Ok(Admission::Fresh),
            "proof {n}"
        );
        assert_eq!(
            second.check_and_insert(key(n), &jkt(n), NOW).await,
            Ok(Admission::Replayed),
            "proof {n}"
        );
    }
    // Keys landed on every master.
    let mut masters_with_keys = 0;
    for n in &nodes {
        let role = text(&n.query(redis::cmd("INFO").arg("replication")).await);
        if role.contains("role:master") {
            let size = n.query(&mut redis::cmd("DBSIZE")).await;
            assert!(matches!(size, Value::Int(s) if s > 0), "{size:?}");
            masters_with_keys += 1;
        }
    }
    assert_eq!(masters_with_keys, 3);
    // The per-key limit holds across both gateways (its keys share the proof key's slot).
    let flooder = jkt(9999);
    for n in 0..3u16 {
        let s = if n % 2 == 0 { &a } else { &b };
        assert_eq!(
            s.check_and_insert(key(20_000 + n), &flooder, NOW).await,
            Ok(Admission::Fresh)
        );
    }
    assert!(matches!(
        a.check_and_insert(key(20_010), &flooder, NOW).await,
        Ok(Admission::KeyLimited { .. })
    ));
    assert!(a.ping().await && b.ping().await);
}

/// Latency of one proof's round trip on loopback: a plain `SET NX PX` (the store before the
/// per-key limit), the admit script, and the script + `WAIT 1` against a master with one
/// replica. Figures, not assertions: `cargo test --lib -- --ignored --nocapture admit_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn admit_latency() {
    let dir = TempDir::new("latency");
    let master = Proc::server(free_port(), &dir.0, &[]);
    let replica = Proc::server(
        free_port(),
        &dir.0,
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    eventually(20, "replica in sync", || async {
        text(&replica.query(redis::cmd("INFO").arg("replication")).await)
            .contains("master_link_status:up")
    })
    .await;
    const N: u16 = 5000;
    let percentiles = |mut v: Vec<Duration>| {
        v.sort();
        let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_micros();
        format!("p50 {} µs, p99 {} µs", at(0.5), at(0.99))
    };
    let mut raw = redis::Client::open(master.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut plain = Vec::new();
    for n in 0..N {
        let t = monotonic();
        let _: Value = redis::cmd("SET")
            .arg(format!("plain:{n}"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(65_000)
            .query_async(&mut raw)
            .await
            .unwrap();
        plain.push(t.elapsed());
    }
    let script = RedisStore::connect(&master.url(), "lat:", TTL, TIMEOUT)
        .await
        .unwrap()
        .with_per_key_limit(6500);
    let waiting = RedisStore::connect(&master.url(), "latw:", TTL, TIMEOUT)
        .await
        .unwrap()
        .with_per_key_limit(6500)
        .with_min_replicas(1);
    let mut s = Vec::with_capacity(usize::from(N));
    let mut w = Vec::with_capacity(usize::from(N));
    for n in 0..N {
        let t = monotonic();
        assert_eq!(
            script.check_and_insert(key(n), &jkt(n % 50), NOW).await,
            Ok(Admission::Fresh)
        );
        s.push(t.elapsed());
        let t = monotonic();
        assert_eq!(
            waiting.check_and_insert(key(n), &jkt(n % 50), NOW).await,
            Ok(Admission::Fresh)
        );
        w.push(t.elapsed());
    }
    eprintln!("SET NX PX:            {}", percentiles(plain));
    eprintln!("admit script:         {}", percentiles(s));
    eprintln!("admit script + WAIT 1: {}", percentiles(w));
}

//! These tests run against real `redis-server` processes that each test starts on a free
//! loopback port and kills when done; they never touch a shared Redis.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::*;

const NOW: UnixTime = UnixTime(1_700_000_000);
const TIMEOUT: Duration = Duration::from_millis(500);
const TTL: u64 = 65;
const JKT: [u8; 32] = [0xab; 32];

/// A `redis-server` child on 127.0.0.1:`port`, killed on drop.
struct TestRedis {
    port: u16,
    password: Option<String>,
    /// Extra `redis-server` arguments (TLS).
    args: Vec<String>,
    child: Option<Child>,
}

impl TestRedis {
    fn start() -> Self {
        Self::start_on(free_port(), None)
    }

    fn start_with_password(password: &str) -> Self {
        Self::start_on(free_port(), Some(password.to_owned()))
    }

    fn start_on(port: u16, password: Option<String>) -> Self {
        let mut this = Self {
            port,
            password,
            args: Vec::new(),
            child: None,
        };
        this.restart();
        this
    }

    /// Starts the server (again) on the same port and waits until it accepts.
    fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()]).args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ]);
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        cmd.args(&self.args);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        let started = monotonic();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server: a hung Redis without closing sockets.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[allow(unreachable_pub)]
mod ports {
    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/e2e/support/ports.rs"
    ));
}
use ports::free_port;

fn prefix(test: &str) -> String {
    format!("dpop-gateway-test:{test}:")
}

async fn store(url: &str, test: &str) -> RedisStore {
    RedisStore::connect(url, &prefix(test), TTL, TIMEOUT)
        .await
        .unwrap()
}

/// Polls `store` with fresh keys until it admits one, for up to 10 s.
async fn until_it_works(store: &RedisStore) -> bool {
    let started = monotonic();
    let mut n = 0u8;
    while started.elapsed() < Duration::from_secs(10) {
        n = n.wrapping_add(1);
        if store.check_and_insert([n; 16], &JKT, NOW).await == Ok(Admission::Fresh) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[test]
fn key_is_prefix_and_lowercase_hex() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Port 1 on loopback: nothing listens, so this also shows connect does not fail.
    let s = rt.block_on(RedisStore::connect(
        "redis://127.0.0.1:1",
        "p:",
        1,
        Duration::from_millis(50),
    ));
    let s = s.unwrap();
    let mut key = [0u8; 16];
    key[0] = 0xab;
    key[15] = 0x0f;
    assert_eq!(
        s.redis_key(&key, &JKT),
        "p:ab00000000000000000000000000000f"
    );
    assert_eq!(s.counter_key(&JKT), format!("p:key:{}", "ab".repeat(16)));
}

#[test]
fn redact_removes_every_copy_of_the_password() {
    let p = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(redact("a s3cret b s3cret", &p(&["s3cret"])), "a *** b ***");
    assert_eq!(redact("a one b two", &p(&["one", "two"])), "a *** b ***");
    assert_eq!(redact("nothing here", &[]), "nothing here");
    assert_eq!(redact("empty", &p(&[""])), "empty");
}

#[tokio::test]
async fn unparseable_url_is_an_error_without_the_password() {
    let err = RedisStore::connect("http://:s3cret@host/", "p:", 1, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if !m.contains("s3cret")),
        "{err:?}"
    );
}

#[tokio::test]
async fn debug_does_not_show_the_password() {
    let s = RedisStore::connect(
        "redis://:s3cret@127.0.0.1:1",
        "p:",
        1,
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
}

#[tokio::test]
async fn first_use_is_fresh_second_is_replayed() {
    let redis = TestRedis::start();
    let s = store(&redis.url(), "fresh").await;
    assert_eq!(
        s.check_and_insert([1; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    assert_eq!(
        s.check_and_insert([1; 16], &JKT, NOW).await,
        Ok(Admission::Replayed)
    );
    assert_eq!(
        s.check_and_insert([2; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    assert!(s.ping().await);
}

#[tokio::test]
async fn a_key_over_its_limit_is_refused_on_every_replica_and_other_keys_are_not() {
    let redis = TestRedis::start();
    let a = store(&redis.url(), "per-key").await.with_per_key_limit(2);
    let b = store(&redis.url(), "per-key").await.with_per_key_limit(2);
    let other = [0xcd; 32];
    assert_eq!(
        a.check_and_insert([1; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    assert_eq!(
        b.check_and_insert([2; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    // The count is shared: the third proof is refused on either replica, for about the TTL.
    match a.check_and_insert([3; 16], &JKT, NOW).await {
        Ok(Admission::KeyLimited { retry_after }) => {
            assert!((60..=TTL).contains(&retry_after), "{retry_after}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b.check_and_insert([4; 16], &JKT, NOW).await,
        Ok(Admission::KeyLimited { .. })
    ));
    // A replay is still a replay; another key is unaffected.
    assert_eq!(
        b.check_and_insert([1; 16], &JKT, NOW).await,
        Ok(Admission::Replayed)
    );
    assert_eq!(
        a.check_and_insert([5; 16], &other, NOW).await,
        Ok(Admission::Fresh)
    );
}

#[tokio::test]
async fn the_per_key_count_frees_as_entries_expire() {
    let redis = TestRedis::start();
    let s = RedisStore::connect(&redis.url(), &prefix("per-key-expiry"), 1, TIMEOUT)
        .await
        .unwrap()
        .with_per_key_limit(1);
    assert_eq!(
        s.check_and_insert([1; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    assert_eq!(
        s.check_and_insert([2; 16], &JKT, NOW).await,
        Ok(Admission::KeyLimited { retry_after: 1 })
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        s.check_and_insert([2; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
}

#[tokio::test]
async fn two_replicas_share_one_redis() {
    let redis = TestRedis::start();
    let a = store(&redis.url(), "replicas").await;
    let b = store(&redis.url(), "replicas").await;
    assert_eq!(
        a.check_and_insert([3; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    assert_eq!(
        b.check_and_insert([3; 16], &JKT, NOW).await,
        Ok(Admission::Replayed)
    );
    assert_eq!(
        b.check_and_insert([4; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    assert_eq!(
        a.check_and_insert([4; 16], &JKT, NOW).await,
        Ok(Admission::Replayed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_uses_over_two_replicas_admit_exactly_one() {
    let redis = TestRedis::start();
    let a = Arc::new(store(&redis.url(), "concurrent").await);
    let b = Arc::new(store(&redis.url(), "concurrent").await);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { s.check_and_insert([5; 16], &JKT, NOW).await })
        })
        .collect();
    let mut fresh = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Admission::Fresh) => fresh += 1,
            Ok(Admission::Replayed) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(fresh, 1);
}

#[tokio::test]
async fn entry_expires_within_the_ttl() {
    let redis = TestRedis::start();
    let s = store(&redis.url(), "ttl").await;
    assert_eq!(
        s.check_and_insert([6; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    let mut raw = redis.raw().await;
    let key = format!("{}{}", prefix("ttl"), "06".repeat(16));
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    let ttl_ms = i64::try_from(TTL * 1000).unwrap();
    assert!(pttl > 0 && pttl <= ttl_ms, "PTTL {pttl}, ttl {ttl_ms}");
}

#[tokio::test]
async fn stopped_redis_is_unavailable_within_the_timeout() {
    let mut redis = TestRedis::start();
    let s = store(&redis.url(), "stopped").await;
    assert_eq!(
        s.check_and_insert([7; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    redis.stop();
    for n in 0..3u8 {
        let started = monotonic();
        let got = s.check_and_insert([8 + n; 16], &JKT, NOW).await;
        assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
        assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1));
    }
    assert!(!s.ping().await);
}

#[tokio::test]
async fn restarted_redis_on_the_same_port_is_used_again() {
    let mut redis = TestRedis::start();
    let s = store(&redis.url(), "restart").await;
    assert_eq!(
        s.check_and_insert([9; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    redis.stop();
    assert!(matches!(
        s.check_and_insert([10; 16], &JKT, NOW).await,
        Err(StoreError::Unavailable(_))
    ));
    redis.restart();
    assert!(until_it_works(&s).await, "the store did not recover");
    assert!(s.ping().await);
}

#[tokio::test]
async fn store_made_while_redis_is_down_works_once_it_starts() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let s = store(&url, "late").await;
    assert!(matches!(
        s.check_and_insert([11; 16], &JKT, NOW).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(!s.ping().await);
    let _redis = TestRedis::start_on(port, None);
    assert!(until_it_works(&s).await, "the store did not connect");
}

#[tokio::test]
async fn password_in_the_url_authenticates() {
    let redis = TestRedis::start_with_password("s3cret");
    let s = store(&redis.url(), "acl").await;
    assert_eq!(
        s.check_and_insert([12; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    assert_eq!(
        s.check_and_insert([12; 16], &JKT, NOW).await,
        Ok(Admission::Replayed)
    );
}

#[tokio::test]
async fn wrong_password_is_unavailable_and_not_shown() {
    let redis = TestRedis::start_with_password("s3cret");
    let url = format!("redis://:wr0ngpass@127.0.0.1:{}", redis.port);
    let s = store(&url, "wrongpass").await;
    // Until the client gives up retrying, calls time out; then the server's refusal shows.
    let started = monotonic();
    let mut saw_server_refusal = false;
    while started.elapsed() < Duration::from_secs(10) && !saw_server_refusal {
        match s.check_and_insert([13; 16], &JKT, NOW).await {
            Err(StoreError::Unavailable(m)) => {
                assert!(!m.contains("wr0ngpass") && !m.contains("s3cret"), "{m}");
                saw_server_refusal = !m.contains("no reply within");
            }
            other => panic!("a wrong password must not admit: {other:?}"),
        }
    }
    assert!(saw_server_refusal);
    assert!(!s.ping().await);
}

#[tokio::test]
async fn hung_redis_is_unavailable_within_the_timeout_then_recovers() {
    let mut redis = TestRedis::start();
    let s = store(&redis.url(), "hung").await;
    assert_eq!(
        s.check_and_insert([14; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    redis.signal("STOP");
    let started = monotonic();
    let got = s.check_and_insert([15; 16], &JKT, NOW).await;
    let took = started.elapsed();
    redis.signal("CONT");
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
    assert!(took < TIMEOUT + Duration::from_secs(1), "took {took:?}");
    assert!(until_it_works(&s).await, "the store did not recover");
    // The entry written before the hang is still there.
    assert_eq!(
        s.check_and_insert([14; 16], &JKT, NOW).await,
        Ok(Admission::Replayed)
    );
    redis.stop();
}

#[tokio::test]
async fn store_recovers_when_its_password_becomes_valid() {
    let redis = TestRedis::start_with_password("s3cret");
    let url = format!("redis://:n3wpass@127.0.0.1:{}", redis.port);
    let s = store(&url, "repass").await;
    assert!(matches!(
        s.check_and_insert([16; 16], &JKT, NOW).await,
        Err(StoreError::Unavailable(_))
    ));
    // The operator fixes the password on the server side: no gateway restart needed.
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("n3wpass")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        until_it_works(&s).await,
        "the store did not pick up the password"
    );
}

#[tokio::test]
async fn rediss_verifies_the_server_with_rustls_ring() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("dpop-gateway-redis-tls-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_pem = ck.cert.pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let mut redis = TestRedis {
        port,
        password: None,
        args: [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-key-file",
            key.to_str().unwrap(),
            "--tls-ca-cert-file",
            cert.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
        ]
        .map(str::to_owned)
        .to_vec(),
        child: None,
    };
    // `--port` is given twice; the later `--port 0` (no plain listener) wins.
    redis.restart();
    let url = format!("rediss://127.0.0.1:{port}");
    let tls = |root: Vec<u8>| {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root),
        };
        redis::Client::build_with_tls(url.as_str(), certs).unwrap()
    };

    let trusted = tls(cert_pem.into_bytes());
    let s = RedisStore::with_client(trusted, &prefix("tls"), TTL, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        s.check_and_insert([17; 16], &JKT, NOW).await,
        Ok(Admission::Fresh)
    );
    assert_eq!(
        s.check_and_insert([17; 16], &JKT, NOW).await,
        Ok(Admission::Replayed)
    );

    // A server whose certificate the client does not trust is never used.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let untrusted = tls(other.cert.pem().into_bytes());
    // A generous timeout: the handshake's refusal, not the clock, must decide (a loaded
    // machine once took over 500 ms).
    let s = RedisStore::with_client(untrusted, &prefix("tls"), TTL, Duration::from_secs(10))
        .await
        .unwrap();
    let got = s.check_and_insert([18; 16], &JKT, NOW).await;
    assert!(
        matches!(&got, Err(StoreError::Unavailable(m)) if m.contains("certificate")),
        "{got:?}"
    );
    redis.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn store_and_its_futures_can_be_shared_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt
        .block_on(RedisStore::connect(
            "redis://127.0.0.1:1",
            "p:",
            1,
            Duration::from_millis(50),
        ))
        .unwrap();
    send_sync(&s);
    send(s.check_and_insert([0; 16], &JKT, NOW));
    send(s.ping());
}

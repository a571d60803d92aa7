//! The shared replay store: one `SET key 1 NX PX ttl` per proof in Redis, so every gateway
//! replica sees every other replica's `jti`s (RFC 9449 §11.1).
//!
//! The connection is a redis-rs [`ConnectionManager`] (one multiplexed connection that
//! reconnects by itself after I/O errors), created lazily: the gateway starts while Redis is
//! down and every check answers [`StoreError::Unavailable`] until Redis does. Every operation is
//! bounded by the configured timeout, so a dead or hung Redis costs a request at most that long.
//!
//! Redis's own clock expires entries, so `now` is not used here. Messages never carry the URL
//! or its password.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Value};

use crate::clock::{monotonic, UnixTime};

use super::{Admission, StoreError};

/// At most one new connection manager per this interval after non-I/O failures (a wrong
/// password, a server demoted to replica), so a broken setup cannot open a connection per request.
const REBUILD_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Connection attempts per (re)connect cycle; a failed cycle is started again by the next call.
const CONNECT_RETRIES: usize = 3;

/// First backoff between connection attempts.
const CONNECT_MIN_DELAY: Duration = Duration::from_millis(50);

/// Longest backoff between connection attempts: a restarted Redis is used within about this long.
const CONNECT_MAX_DELAY: Duration = Duration::from_secs(1);

/// The Redis replay store, shared by every connection, core and replica.
pub struct RedisStore {
    /// Boxed: the client's connection info is large and `ReplayStore` holds this inline.
    client: Box<redis::Client>,
    slot: RwLock<Slot>,
    key_prefix: String,
    ttl_ms: u64,
    timeout: Duration,
    /// The URL's password, so that it can be cut out of any error message.
    password: Option<String>,
}

/// The current connection manager and when it was made.
struct Slot {
    manager: ConnectionManager,
    built_at: Instant,
    generation: u64,
}

// === impl RedisStore ===

impl RedisStore {
    /// A store for `url` (`redis://` or `rediss://`, optionally `user:password@`) whose keys
    /// are `key_prefix` + the hex of the proof key and live `ttl_secs`; each operation is
    /// bounded by `timeout`.
    ///
    /// Fails only on a URL that does not parse; an unreachable Redis gives a store that reports
    /// [`StoreError::Unavailable`] until Redis answers.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        ttl_secs: u64,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| {
            // The parser's messages are fixed strings, never the URL.
            StoreError::Unavailable(format!("replay_cache.redis_url: {e}"))
        })?;
        Self::with_client(client, key_prefix, ttl_secs, timeout).await
    }

    /// [`RedisStore::connect`] with a client already made (tests use one with their own CA).
    async fn with_client(
        client: redis::Client,
        key_prefix: &str,
        ttl_secs: u64,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let password = client
            .get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_owned);
        let manager = new_manager(&client, timeout).map_err(|e| {
            StoreError::Unavailable(redact(&format!("redis: {e}"), password.as_deref()))
        })?;
        let store = Self {
            client: Box::new(client),
            slot: RwLock::new(Slot {
                manager,
                built_at: monotonic(),
                generation: 0,
            }),
            key_prefix: key_prefix.to_owned(),
            // PX 0 is an error in Redis; an entry lives at least 1 ms.
            ttl_ms: ttl_secs.saturating_mul(1000).max(1),
            timeout,
            password,
        };
        // Connect now rather than on the first request; a failure here is not fatal.
        if !store.ping().await {
            tracing::warn!("replay store: redis is not reachable yet; checks fail until it is");
        }
        Ok(store)
    }

    /// Records `key` unless present: one `SET <prefix><hex key> 1 NX PX <ttl_ms>`, atomic across
    /// every replica using this Redis. `OK` is [`Admission::Fresh`], nil is
    /// [`Admission::Replayed`]; an error or a reply slower than the timeout is
    /// [`StoreError::Unavailable`].
    pub async fn check_and_insert(
        &self,
        key: [u8; 16],
        _now: UnixTime,
    ) -> Result<Admission, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis_key(&key))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms);
        match self.query(&cmd).await? {
            Value::Okay => Ok(Admission::Fresh),
            Value::SimpleString(s) if s == "OK" => Ok(Admission::Fresh),
            Value::Nil => Ok(Admission::Replayed),
            other => Err(StoreError::Unavailable(format!(
                "redis: unexpected reply to SET NX: {}",
                reply_kind(&other)
            ))),
        }
    }

    /// Whether Redis answers `PING` within the timeout: for readiness.
    pub async fn ping(&self) -> bool {
        let cmd = redis::cmd("PING");
        match self.query(&cmd).await {
            Ok(Value::SimpleString(s)) => s == "PONG",
            Ok(Value::Okay) => true,
            _ => false,
        }
    }

    /// The Redis key for a proof key: the prefix and 32 lowercase hex digits.
    fn redis_key(&self, key: &[u8; 16]) -> String {
        let mut out = String::with_capacity(self.key_prefix.len() + 32);
        out.push_str(&self.key_prefix);
        crate::hex::push(&mut out, key);
        out
    }

    /// Runs `cmd` on the current manager, bounded by the timeout.
    async fn query(&self, cmd: &redis::Cmd) -> Result<Value, StoreError> {
        let (mut manager, generation) = self.current();
        match tokio::time::timeout(self.timeout, cmd.query_async::<Value>(&mut manager)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                // I/O errors: the manager reconnects by itself. Anything else (authentication,
                // a read-only replica after failover) sticks to a manager, so make a new one.
                if !e.is_io_error() {
                    self.rebuild(generation);
                }
                Err(self.unavailable(&e))
            }
            Err(_elapsed) => Err(StoreError::Unavailable(format!(
                "redis: no reply within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// A clone of the current manager (it is a handle) and its generation.
    fn current(&self) -> (ConnectionManager, u64) {
        let slot = self
            .slot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (slot.manager.clone(), slot.generation)
    }

    /// Replaces the manager of generation `seen`, unless another caller already did or the
    /// current one is younger than [`REBUILD_MIN_INTERVAL`].
    fn rebuild(&self, seen: u64) {
        let mut slot = self
            .slot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.generation != seen
            || monotonic().duration_since(slot.built_at) < REBUILD_MIN_INTERVAL
        {
            return;
        }
        if let Ok(manager) = new_manager(&self.client, self.timeout) {
            slot.manager = manager;
            slot.built_at = monotonic();
            slot.generation = slot.generation.wrapping_add(1);
        }
    }

    fn unavailable(&self, e: &RedisError) -> StoreError {
        StoreError::Unavailable(redact(&format!("redis: {e}"), self.password.as_deref()))
    }
}

impl std::fmt::Debug for RedisStore {
    // Not the client: its connection info holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.key_prefix)
            .field("ttl_ms", &self.ttl_ms)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A lazy manager: it connects on first use, so this needs no live server.
fn new_manager(client: &redis::Client, timeout: Duration) -> Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(CONNECT_RETRIES)
        .set_min_delay(CONNECT_MIN_DELAY)
        .set_max_delay(CONNECT_MAX_DELAY)
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// `msg` with every occurrence of `password` replaced by `***`.
fn redact(msg: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => msg.replace(p, "***"),
        _ => msg.to_owned(),
    }
}

/// The kind of an unexpected reply, without its content.
fn reply_kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Int(_) => "integer",
        Value::BulkString(_) => "bulk string",
        Value::Array(_) => "array",
        Value::SimpleString(_) => "simple string",
        Value::Okay => "OK",
        Value::Map(_) => "map",
        Value::Set(_) => "set",
        Value::Double(_) => "double",
        Value::Boolean(_) => "boolean",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    //! These tests run against real `redis-server` processes that each test starts on a free
    //! loopback port and kills when done; they never touch a shared Redis.

    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;

    use super::*;

    const NOW: UnixTime = UnixTime(1_700_000_000);
    const TIMEOUT: Duration = Duration::from_millis(500);
    const TTL: u64 = 65;

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
            if store.check_and_insert([n; 16], NOW).await == Ok(Admission::Fresh) {
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
        assert_eq!(s.redis_key(&key), "p:ab00000000000000000000000000000f");
    }

    #[test]
    fn redact_removes_every_copy_of_the_password() {
        assert_eq!(redact("a s3cret b s3cret", Some("s3cret")), "a *** b ***");
        assert_eq!(redact("nothing here", None), "nothing here");
        assert_eq!(redact("empty", Some("")), "empty");
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
        assert_eq!(s.check_and_insert([1; 16], NOW).await, Ok(Admission::Fresh));
        assert_eq!(
            s.check_and_insert([1; 16], NOW).await,
            Ok(Admission::Replayed)
        );
        assert_eq!(s.check_and_insert([2; 16], NOW).await, Ok(Admission::Fresh));
        assert!(s.ping().await);
    }

    #[tokio::test]
    async fn two_replicas_share_one_redis() {
        let redis = TestRedis::start();
        let a = store(&redis.url(), "replicas").await;
        let b = store(&redis.url(), "replicas").await;
        assert_eq!(a.check_and_insert([3; 16], NOW).await, Ok(Admission::Fresh));
        assert_eq!(
            b.check_and_insert([3; 16], NOW).await,
            Ok(Admission::Replayed)
        );
        assert_eq!(b.check_and_insert([4; 16], NOW).await, Ok(Admission::Fresh));
        assert_eq!(
            a.check_and_insert([4; 16], NOW).await,
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
                tokio::spawn(async move { s.check_and_insert([5; 16], NOW).await })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Admission::Fresh) => fresh += 1,
                Ok(Admission::Replayed) => {}
                Err(e) => panic!("store error: {e:?}"),
            }
        }
        assert_eq!(fresh, 1);
    }

    #[tokio::test]
    async fn entry_expires_within_the_ttl() {
        let redis = TestRedis::start();
        let s = store(&redis.url(), "ttl").await;
        assert_eq!(s.check_and_insert([6; 16], NOW).await, Ok(Admission::Fresh));
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
        assert_eq!(s.check_and_insert([7; 16], NOW).await, Ok(Admission::Fresh));
        redis.stop();
        for n in 0..3u8 {
            let started = monotonic();
            let got = s.check_and_insert([8 + n; 16], NOW).await;
            assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
            assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1));
        }
        assert!(!s.ping().await);
    }

    #[tokio::test]
    async fn restarted_redis_on_the_same_port_is_used_again() {
        let mut redis = TestRedis::start();
        let s = store(&redis.url(), "restart").await;
        assert_eq!(s.check_and_insert([9; 16], NOW).await, Ok(Admission::Fresh));
        redis.stop();
        assert!(matches!(
            s.check_and_insert([10; 16], NOW).await,
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
            s.check_and_insert([11; 16], NOW).await,
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
            s.check_and_insert([12; 16], NOW).await,
            Ok(Admission::Fresh)
        );
        assert_eq!(
            s.check_and_insert([12; 16], NOW).await,
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
            match s.check_and_insert([13; 16], NOW).await {
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
            s.check_and_insert([14; 16], NOW).await,
            Ok(Admission::Fresh)
        );
        redis.signal("STOP");
        let started = monotonic();
        let got = s.check_and_insert([15; 16], NOW).await;
        let took = started.elapsed();
        redis.signal("CONT");
        assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
        assert!(took < TIMEOUT + Duration::from_secs(1), "took {took:?}");
        assert!(until_it_works(&s).await, "the store did not recover");
        // The entry written before the hang is still there.
        assert_eq!(
            s.check_and_insert([14; 16], NOW).await,
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
            s.check_and_insert([16; 16], NOW).await,
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
            s.check_and_insert([17; 16], NOW).await,
            Ok(Admission::Fresh)
        );
        assert_eq!(
            s.check_and_insert([17; 16], NOW).await,
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
        let got = s.check_and_insert([18; 16], NOW).await;
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
        send(s.check_and_insert([0; 16], NOW));
        send(s.ping());
    }
}

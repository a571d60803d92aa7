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
//!
//! The per-key limit (`replay_cache.per_key_limit`) lives in Redis beside the entries, so that
//! every replica counts the same: per proof key a sorted set of its live entries scored by
//! their expiry (ms, Redis's clock), living as long as its newest entry. The check, the insert
//! and the count are one Lua script ([`ADMIT`]): still one round trip per proof, and atomic.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value};

use crate::clock::{monotonic, UnixTime};

use super::{Admission, StoreError};

/// At most one new connection per this interval after failures (a wrong password, a server
/// demoted to replica, a sentinel failover), so a broken setup cannot open one per request.
const REBUILD_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Connection attempts per (re)connect cycle; a failed cycle is started again by the next call.
const CONNECT_RETRIES: usize = 3;

/// First backoff between connection attempts.
const CONNECT_MIN_DELAY: Duration = Duration::from_millis(50);

/// Longest backoff between connection attempts: a restarted Redis is used within about this long.
const CONNECT_MAX_DELAY: Duration = Duration::from_secs(1);

/// The shortest bound on (re)establishing a connection: asking a sentinel for the master and
/// checking its role, or discovering a cluster's slots, takes a few round trips.
const ESTABLISH_MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// One proof, atomically: `KEYS[1]` the entry, `KEYS[2]` its key's sorted set of live entries;
/// `ARGV` the entry's lifetime (ms), the per-key limit (0: none) and the entry's member in the
/// set. Returns 1 (recorded), 0 (a replay) or minus the ms until the key's oldest entry
/// expires (at its limit; nothing recorded). `TIME` makes the script non-deterministic, which
/// Redis 5+ replicates by effects (the default from 7).
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if limit > 0 and redis.call('ZCARD', KEYS[2]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return -math.max(1, tonumber(oldest[2]) - now)
end
redis.call('SET', KEYS[1], 1, 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
";

/// The Redis replay store, shared by every connection, core and replica.
pub struct RedisStore {
    /// Where connections come from.
    source: Source,
    slot: RwLock<Slot>,
    key_prefix: String,
    ttl_ms: u64,
    timeout: Duration,
    /// Live entries one proof key may hold (0: no limit, only in tests of the store itself).
    per_key_limit: u64,
    /// Cluster: keys carry the proof key's hash tag (`{…}`), so one script's keys share a slot.
    hash_tags: bool,
    /// [`ADMIT`], run by its SHA1 (`EVALSHA`), loaded again when Redis lost it.
    admit: redis::Script,
    /// `replay_cache.min_replicas`: `WAIT` for this many replicas after an insert (0: no WAIT).
    min_replicas: u64,
    /// The URLs' passwords, so that they can be cut out of any error message.
    passwords: Vec<String>,
    metrics: Option<RedisMetrics>,
}

/// Counters of the Redis backends, when the gateway's metrics are wired in.
#[derive(Clone)]
pub struct RedisMetrics {
    /// `dpop_gateway_replay_store_failovers_total`: the sentinels named a new master.
    pub failovers: IntCounter,
    /// `dpop_gateway_replay_store_wait_shortfalls_total`: `WAIT` saw fewer than `min_replicas`.
    pub wait_shortfalls: IntCounter,
}

/// Where the store's connection comes from.
enum Source {
    /// `redis`: one server. Boxed: the client's connection info is large.
    Node(Box<redis::Client>),
    /// `redis_sentinel`: the master the sentinels name, asked again after any failure.
    Sentinel(Box<tokio::sync::Mutex<SentinelClient>>),
    /// `redis_cluster`: the crate's cluster client (slot map, MOVED/ASK, reconnects).
    Cluster(Box<ClusterClient>),
}

/// A connection of any backend: each is a cheap handle onto one multiplexed connection (per
/// node, for a cluster).
#[derive(Clone)]
enum Conn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The current connection and how it came to be.
struct Slot {
    /// `None` until a connection was established (sentinel, cluster).
    conn: Option<Conn>,
    /// The last attempt to (re)establish one.
    attempted_at: Option<Instant>,
    generation: u64,
    /// The server the connection is to (sentinel: the master), for failover logs.
    server: Option<String>,
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
        let passwords = client
            .get_connection_info()
            .redis_settings()
            .password()
            .map(str::to_owned)
            .into_iter()
            .collect();
        let store = Self::new(
            Source::Node(Box::new(client)),
            key_prefix,
            ttl_secs,
            timeout,
            passwords,
        );
        store.start().await;
        Ok(store)
    }

    /// A store on the master that the sentinels at `urls` name `master`, asked again after any
    /// failure (a failover needs no restart). A URL's `rediss://` and `user:password@` apply to
    /// the sentinels and, from the first URL, to the master too.
    pub async fn connect_sentinel(
        urls: &[&str],
        master: &str,
        key_prefix: &str,
        ttl_secs: u64,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let infos = parse_urls(urls)?;
        let passwords = passwords_of(&infos);
        let mut node = SentinelNodeConnectionInfo::default();
        if let Some(first) = infos.first() {
            node = node.set_redis_connection_info(first.redis_settings().clone());
            if matches!(first.addr(), redis::ConnectionAddr::TcpTls { .. }) {
                node = node.set_tls_mode(redis::TlsMode::Secure);
            }
        }
        let client = SentinelClient::build(infos, master, Some(node), SentinelServerType::Master)
            .map_err(|e| {
            StoreError::Unavailable(redact(&format!("replay_cache.redis_urls: {e}"), &passwords))
        })?;
        let store = Self::new(
            Source::Sentinel(Box::new(tokio::sync::Mutex::new(client))),
            key_prefix,
            ttl_secs,
            timeout,
            passwords,
        );
        store.start().await;
        Ok(store)
    }

    /// A store on the Redis Cluster reached through the seed nodes `urls` (the crate's async
    /// cluster client: slot map discovery, MOVED/ASK, reconnects). Entry and per-key keys share
    /// a hash tag, the proof key's, so the admit script's two keys are on one shard and proof
    /// keys spread over every shard.
    pub async fn connect_cluster(
        urls: &[&str],
        key_prefix: &str,
        ttl_secs: u64,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let infos = parse_urls(urls)?;
        let passwords = passwords_of(&infos);
        // Our own bounds apply to each operation; the client's must not cut a WAIT short.
        let client = ClusterClient::builder(infos)
            .connection_timeout(timeout)
            .response_timeout(timeout.saturating_mul(2))
            .build()
            .map_err(|e| {
                StoreError::Unavailable(redact(
                    &format!("replay_cache.redis_urls: {e}"),
                    &passwords,
                ))
            })?;
        let mut store = Self::new(
            Source::Cluster(Box::new(client)),
            key_prefix,
            ttl_secs,
            timeout,
            passwords,
        );
        store.hash_tags = true;
        store.start().await;
        Ok(store)
    }

    fn new(
        source: Source,
        key_prefix: &str,
        ttl_secs: u64,
        timeout: Duration,
        passwords: Vec<String>,
    ) -> Self {
        Self {
            source,
            slot: RwLock::new(Slot {
                conn: None,
                attempted_at: None,
                generation: 0,
                server: None,
            }),
            key_prefix: key_prefix.to_owned(),
            // PX 0 is an error in Redis; an entry lives at least 1 ms.
            ttl_ms: ttl_secs.saturating_mul(1000).max(1),
            timeout,
            per_key_limit: 0,
            admit: redis::Script::new(ADMIT),
            min_replicas: 0,
            hash_tags: false,
            passwords,
            metrics: None,
        }
    }

    /// Establishes the first connection now rather than on the first request; a failure here
    /// is not fatal.
    async fn start(&self) {
        self.recover(0).await;
        if !self.ping().await {
            tracing::warn!("replay store: redis is not reachable yet; checks fail until it is");
        }
    }

    /// The store waiting for `n` replicas (`WAIT`) after each insert (`replay_cache.min_replicas`).
    pub fn with_min_replicas(mut self, n: u64) -> Self {
        self.min_replicas = n;
        self
    }

    /// The store counting failovers and `WAIT` shortfalls in `metrics`.
    pub fn with_metrics(mut self, metrics: RedisMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The store with at most `limit` live entries per proof key (`replay_cache.per_key_limit`).
    pub fn with_per_key_limit(mut self, limit: u64) -> Self {
        self.per_key_limit = limit;
        self
    }

    /// Records `key`, a proof of the key whose thumbprint is `jkt`, unless present or `jkt`
    /// holds its limit of live entries: one [`ADMIT`] script, atomic across every replica using
    /// this Redis (the entry is `SET <prefix><hex key> 1 PX <ttl_ms>`, as a plain `SET NX`
    /// would make it). With `min_replicas`, a recorded entry counts only once `WAIT` confirms
    /// that many replicas have it. An error, a shortfall or a reply slower than the timeout is
    /// [`StoreError::Unavailable`].
    pub async fn check_and_insert(
        &self,
        key: [u8; 16],
        jkt: &[u8; 32],
        _now: UnixTime,
    ) -> Result<Admission, StoreError> {
        let mut member = String::with_capacity(32);
        crate::hex::push(&mut member, &key);
        let mut invocation = self.admit.key(self.redis_key(&key, jkt));
        invocation
            .key(self.counter_key(jkt))
            .arg(self.ttl_ms)
            .arg(self.per_key_limit)
            .arg(member);
        let reply = self
            .bounded(self.timeout, async {
                let (conn, generation) = self.current();
                let Some(mut conn) = conn else {
                    return Err((not_connected(), generation));
                };
                invocation
                    .invoke_async::<Value>(&mut conn)
                    .await
                    .map_err(|e| (e, generation))
            })
            .await?;
        let admission = match reply {
            Value::Int(1) => Admission::Fresh,
            Value::Int(0) => Admission::Replayed,
            Value::Int(ms) if ms < 0 => Admission::KeyLimited {
                retry_after: ms.unsigned_abs().div_ceil(1000).max(1),
            },
            other => {
                return Err(StoreError::Unavailable(format!(
                    "redis: unexpected reply to the admit script: {}",
                    reply_kind(&other)
                )))
            }
        };
        if admission == Admission::Fresh && self.min_replicas > 0 {
            self.wait_for_replicas().await?;
        }
        Ok(admission)
    }

    /// `WAIT min_replicas timeout` on the connection that made the insert: Redis answers how
    /// many replicas acknowledged every write so far (for a cluster, the fewest over the
    /// masters). Fewer than `min_replicas` is a failure: the entry could be lost in a failover.
    async fn wait_for_replicas(&self) -> Result<(), StoreError> {
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.min_replicas).arg(timeout_ms);
        // WAIT itself gives up after `timeout`; the client allows it a little longer to answer.
        let bound = self.timeout.saturating_add(self.timeout / 2);
        let reply = self.query_within(bound, &cmd).await?;
        let acknowledged = match reply {
            Value::Int(n) => u64::try_from(n).unwrap_or(0),
            other => {
                return Err(StoreError::Unavailable(format!(
                    "redis: unexpected reply to WAIT: {}",
                    reply_kind(&other)
                )))
            }
        };
        if acknowledged < self.min_replicas {
            if let Some(m) = &self.metrics {
                m.wait_shortfalls.inc();
            }
            return Err(StoreError::Unavailable(format!(
                "redis: WAIT: {acknowledged} of min_replicas {} replicas acknowledged within {} ms",
                self.min_replicas, timeout_ms
            )));
        }
        Ok(())
    }

    /// Whether Redis answers `PING` within the timeout: for readiness (a cluster: every master).
    pub async fn ping(&self) -> bool {
        let cmd = redis::cmd("PING");
        match self.query_within(self.timeout, &cmd).await {
            Ok(Value::SimpleString(s)) => s == "PONG",
            Ok(Value::Okay) => true,
            _ => false,
        }
    }

    /// The Redis key for a proof key: the prefix and 32 lowercase hex digits (a cluster: the
    /// prefix, the hash tag of the proof key's thumbprint, then the 32 digits).
    fn redis_key(&self, key: &[u8; 16], jkt: &[u8; 32]) -> String {
        let mut out = String::with_capacity(self.key_prefix.len() + 68);
        out.push_str(&self.key_prefix);
        if self.hash_tags {
            push_tag(&mut out, jkt);
        }
        crate::hex::push(&mut out, key);
        out
    }

    /// The sorted set of a proof key's live entries: the prefix, `key:` and the hex of the
    /// thumbprint's first 16 bytes (a cluster: as its hash tag).
    fn counter_key(&self, jkt: &[u8; 32]) -> String {
        let mut out = String::with_capacity(self.key_prefix.len() + 38);
        out.push_str(&self.key_prefix);
        out.push_str("key:");
        if self.hash_tags {
            push_tag(&mut out, jkt);
        } else {
            crate::hex::push(&mut out, &jkt[..16]);
        }
        out
    }

    /// Runs `cmd` on the current connection, bounded by `bound`.
    async fn query_within(&self, bound: Duration, cmd: &Cmd) -> Result<Value, StoreError> {
        self.bounded(bound, async {
            let (conn, generation) = self.current();
            let Some(mut conn) = conn else {
                return Err((not_connected(), generation));
            };
            cmd.query_async::<Value>(&mut conn)
                .await
                .map_err(|e| (e, generation))
        })
        .await
    }

    /// `op` (on a connection of the generation it reports with its error), bounded by `bound`.
    /// A failure may replace the connection (see [`RedisStore::recover`]).
    async fn bounded<F>(&self, bound: Duration, op: F) -> Result<Value, StoreError>
    where
        F: std::future::Future<Output = Result<Value, (RedisError, u64)>>,
    {
        match tokio::time::timeout(bound, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err((e, generation))) => {
                // A single server's I/O errors: the manager reconnects by itself. Anything
                // else (authentication, a read-only replica after failover) sticks to a
                // manager, so make a new one. Behind sentinels, any failure may be a failover:
                // ask them again. A cluster client follows MOVED/ASK itself; past that, anew.
                let renew = match &self.source {
                    Source::Node(_) => !e.is_io_error(),
                    Source::Sentinel(_) | Source::Cluster(_) => true,
                };
                let err = self.unavailable(&e);
                if renew {
                    self.recover(generation).await;
                }
                Err(err)
            }
            Err(_elapsed) => {
                let generation = self.current().1;
                if matches!(self.source, Source::Sentinel(_)) {
                    // A master that vanished without a reset may only time out.
                    self.recover(generation).await;
                }
                Err(StoreError::Unavailable(format!(
                    "redis: no reply within {} ms",
                    bound.as_millis()
                )))
            }
        }
    }

    /// A clone of the current connection (it is a handle), if any, and its generation.
    fn current(&self) -> (Option<Conn>, u64) {
        let slot = self
            .slot
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (slot.conn.clone(), slot.generation)
    }

    /// Replaces the connection of generation `seen`, unless another caller already did or
    /// tried within [`REBUILD_MIN_INTERVAL`]. Sentinel: the master is asked again, and a new
    /// one is logged and counted as a failover.
    async fn recover(&self, seen: u64) {
        {
            let mut slot = self
                .slot
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let recent = slot
                .attempted_at
                .is_some_and(|t| monotonic().duration_since(t) < REBUILD_MIN_INTERVAL);
            if slot.generation != seen || recent {
                return;
            }
            slot.attempted_at = Some(monotonic());
        }
        let bound = self.timeout.max(ESTABLISH_MIN_TIMEOUT);
        let established = match tokio::time::timeout(bound, self.establish()).await {
            Ok(Ok(established)) => established,
            Ok(Err(e)) => {
                let msg = redact(&format!("redis: {e}"), &self.passwords);
                tracing::warn!(error = %msg, "replay store: cannot connect");
                return;
            }
            Err(_elapsed) => {
                tracing::warn!(
                    after_ms = bound.as_millis(),
                    "replay store: cannot connect in time"
                );
                return;
            }
        };
        let (conn, server) = established;
        let mut slot = self
            .slot
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let (Some(old), Some(new)) = (&slot.server, &server) {
            if old != new && matches!(self.source, Source::Sentinel(_)) {
                tracing::warn!(from = %old, to = %new, "replay store: sentinel failover, new master");
                if let Some(m) = &self.metrics {
                    m.failovers.inc();
                }
            }
        }
        if server.is_some() {
            slot.server = server;
        }
        slot.conn = Some(conn);
        slot.generation = slot.generation.wrapping_add(1);
    }

    /// A new connection and the server it goes to.
    async fn establish(&self) -> Result<(Conn, Option<String>), RedisError> {
        match &self.source {
            Source::Node(client) => {
                let server = client.get_connection_info().addr().to_string();
                Ok((Conn::Node(new_manager(client, self.timeout)?), Some(server)))
            }
            Source::Sentinel(sentinel) => {
                let client = sentinel.lock().await.async_get_client().await?;
                let server = client.get_connection_info().addr().to_string();
                Ok((
                    Conn::Node(new_manager(&client, self.timeout)?),
                    Some(server),
                ))
            }
            Source::Cluster(client) => {
                Ok((Conn::Cluster(client.get_async_connection().await?), None))
            }
        }
    }

    fn unavailable(&self, e: &RedisError) -> StoreError {
        StoreError::Unavailable(redact(&format!("redis: {e}"), &self.passwords))
    }
}

impl std::fmt::Debug for RedisStore {
    // Not the client: its connection info holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.key_prefix)
            .field("ttl_ms", &self.ttl_ms)
            .field("timeout", &self.timeout)
            .field("min_replicas", &self.min_replicas)
            .finish_non_exhaustive()
    }
}

// === impl Conn ===

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A lazy manager: it connects on first use, so this needs no live server.
fn new_manager(client: &redis::Client, timeout: Duration) -> Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(CONNECT_RETRIES)
        .set_min_delay(CONNECT_MIN_DELAY)
        .set_max_delay(CONNECT_MAX_DELAY)
        .set_connection_timeout(Some(timeout))
        // Each operation is bounded by the store itself; this one must not cut a WAIT short.
        .set_response_timeout(Some(timeout.saturating_mul(2)));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// `{` + the hex of the thumbprint's first 16 bytes + `}`: a Redis Cluster hash tag.
fn push_tag(out: &mut String, jkt: &[u8; 32]) {
    out.push('{');
    crate::hex::push(out, &jkt[..16]);
    out.push('}');
}

/// The error a store without a connection yet answers.
fn not_connected() -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "not connected yet"))
}

/// `redis_urls`, parsed; the parser's messages never carry the URL.
fn parse_urls(urls: &[&str]) -> Result<Vec<redis::ConnectionInfo>, StoreError> {
    urls.iter()
        .map(|u| {
            u.into_connection_info()
                .map_err(|e| StoreError::Unavailable(format!("replay_cache.redis_urls: {e}")))
        })
        .collect()
}

fn passwords_of(infos: &[redis::ConnectionInfo]) -> Vec<String> {
    infos
        .iter()
        .filter_map(|i| i.redis_settings().password().map(str::to_owned))
        .collect()
}

/// `msg` with every occurrence of each of `passwords` replaced by `***`.
fn redact(msg: &str, passwords: &[String]) -> String {
    let mut out = msg.to_owned();
    for p in passwords.iter().filter(|p| !p.is_empty()) {
        out = out.replace(p.as_str(), "***");
    }
    out
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
mod tests;

#[cfg(test)]
mod ha_tests;

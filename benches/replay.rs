//! The replay store: `MemoryStore::check_and_insert` with about a million live entries, next to
//! a moka cache of `u128` keys at the same size (what `replay/memory.rs` was chosen over), and a
//! bare ring ES256 verify (what every insert rides along with).
//!
//! Besides the criterion benches, a measured run (`cargo bench --bench replay`) fills each store
//! with 1,000,000 keys in a fresh child process and reports the RSS it took and the fill time,
//! and runs the memory store as a gateway does (a million live entries, expiring and replaced
//! for three windows) to show the steady state costs the same.
//!
//! Steady state: time advances one second every 666,667 inserts and entries live one second,
//! so between 0.67 M and 1.33 M entries (1 M on average) are live while criterion measures.

// reason: a bench binary is its own crate; `pub` in its modules documents their surface.
#![allow(unreachable_pub, missing_docs)]
// reason: fixed fixtures set up before measuring, like a test's; a broken one must stop the run.
#![allow(clippy::unwrap_used)]

mod common;

use std::hint::black_box;
use std::process::Command;

use criterion::Criterion;
use dpop_gateway::clock::{self, UnixTime};
use dpop_gateway::replay::memory::MemoryStore;

use common::{Fixture, Issuer, NOW};

/// Inserts per simulated second (see the module doc).
const PER_SECOND: u64 = 666_667;

/// The child-process switch for the memory comparison.
const MEM_ENV: &str = "DPOP_BENCH_REPLAY_MEM";

/// Entries in the memory comparison.
const ENTRIES: u64 = 1_000_000;

/// A key that looks like `replay_key()` output: SHA-256 of the counter, truncated.
/// A counter in no registry: the bench measures the store, not the exposition.
fn expired_counter() -> prometheus::IntCounter {
    prometheus::IntCounter::new("expired", "expired").unwrap()
}

fn key(n: u64) -> [u8; 16] {
    let d = ring::digest::digest(&ring::digest::SHA256, &n.to_le_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d.as_ref()[..16]);
    k
}

fn store_insert(store: &MemoryStore, n: u64) -> bool {
    let now = UnixTime(NOW.as_secs() + n / PER_SECOND);
    store.check_and_insert(key(n), now).is_ok()
}

fn benches(c: &mut Criterion) -> Vec<(String, String)> {
    let issuer = Issuer::new();
    let es256 = Fixture::new(dpop_gateway::jose::Algorithm::ES256, &issuer);
    let mut rows = Vec::new();
    let test_mode = !common::measuring();
    let prefill = if test_mode { 1_000 } else { ENTRIES };

    let mut ring = c.benchmark_group("ring");
    ring.bench_function("ES256", |b| b.iter(|| black_box(es256.ring_verify())));
    ring.finish();

    let mut g = c.benchmark_group("replay");
    // The hashing of the key is part of both benches (and of the gateway's work per proof).
    g.bench_function("key_digest", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            key(black_box(n))
        })
    });
    {
        let store = MemoryStore::new(2_000_000, 1, expired_counter());
        for n in 0..prefill {
            store_insert(&store, n);
        }
        let mut n = prefill;
        g.bench_function("memory_1M", |b| {
            b.iter(|| {
                n += 1;
                store_insert(&store, n)
            })
        });
    }
    {
        let cache = moka::sync::Cache::<u128, ()>::builder()
            .max_capacity(ENTRIES)
            .time_to_live(std::time::Duration::from_secs(60))
            .build();
        for n in 0..prefill {
            cache.insert(u128::from_le_bytes(key(n)), ());
        }
        let mut n = prefill;
        g.bench_function("moka_1M", |b| {
            b.iter(|| {
                n += 1;
                let k = u128::from_le_bytes(key(n));
                // Insert-if-absent, as the replay check needs.
                cache.entry(k).or_insert(()).is_fresh()
            })
        });
    }
    g.finish();
    for id in ["replay/key_digest", "replay/memory_1M", "replay/moka_1M"] {
        rows.push((id.to_owned(), common::ring_id(es256.alg)));
    }
    rows
}

/// `VmRSS` or `VmHWM` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In a child: fill one store with [`ENTRIES`] keys, print `rss_kib ns_per_insert`.
fn fill_in_child(which: &str) {
    let keys: Vec<[u8; 16]> = (0..ENTRIES).map(key).collect();
    let before = status_kib("VmRSS:");
    let start = clock::monotonic();
    let held: Box<dyn std::any::Any> = match which {
        "memory-churn" => {
            // A million live entries the way a gateway holds them: 16,667 proofs a second for
            // 4 minutes with a 60 s window, so three windows' worth expire and are replaced.
            let rate = ENTRIES / 60;
            let store = MemoryStore::new(ENTRIES as usize * 11 / 10, 60, expired_counter());
            for n in 0..rate * 240 {
                let _ = store.check_and_insert(key(n), UnixTime(NOW.as_secs() + n / rate));
            }
            let ns = start.elapsed().as_nanos() as f64 / (rate * 240) as f64;
            let after = status_kib("VmRSS:");
            println!("{} {ns:.1} {}", after.saturating_sub(before), store.len());
            return;
        }
        "memory" => {
            let store = MemoryStore::new(ENTRIES as usize * 11 / 10, 60, expired_counter());
            for k in &keys {
                let _ = store.check_and_insert(*k, NOW);
            }
            Box::new(store)
        }
        _ => {
            let cache = moka::sync::Cache::<u128, ()>::builder()
                .max_capacity(ENTRIES)
                .time_to_live(std::time::Duration::from_secs(60))
                .build();
            for k in &keys {
                cache.entry(u128::from_le_bytes(*k)).or_insert(());
            }
            cache.run_pending_tasks();
            Box::new(cache)
        }
    };
    let ns = start.elapsed().as_nanos() as f64 / ENTRIES as f64;
    let after = status_kib("VmRSS:");
    println!("{} {ns:.1}", after.saturating_sub(before));
    drop(black_box(held));
}

/// Runs both fills in fresh processes and prints the comparison table.
fn memory_comparison() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    println!("\n## replay store vs moka: {ENTRIES} live u128 keys, each in a fresh process\n");
    println!("| store | RSS growth | time per insert |");
    println!("|---|---:|---:|");
    for which in ["memory", "moka", "memory-churn"] {
        let out = Command::new(&exe).env(MEM_ENV, which).output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut it = text.split_whitespace();
        let (Some(kib), Some(ns)) = (it.next(), it.next()) else {
            println!("| {which} | (child failed) | |");
            continue;
        };
        let mib = kib.parse::<f64>().unwrap_or(0.0) / 1024.0;
        match it.next() {
            // Steady state: `live` entries after three windows of inserts and expiries.
            Some(live) => println!(
                "| {which} ({live} live, after 4M inserts with expiry) | {mib:.1} MiB | {ns} ns |"
            ),
            None => println!("| {which} | {mib:.1} MiB | {ns} ns |"),
        }
    }
}

fn main() {
    if let Ok(which) = std::env::var(MEM_ENV) {
        fill_in_child(&which);
        return;
    }
    common::run("replay", benches);
    if common::measuring() {
        memory_comparison();
    }
}

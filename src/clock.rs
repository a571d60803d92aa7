//! The only place the gateway reads the wall clock.
//!
//! Verification code (`dpop`, `nonce`, `token::jwt`) takes `now` as an argument so that every rule
//! is a unit test with a fixed time; the server asks a [`Clock`] once per request.

use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds since the Unix epoch (what JWT `iat`, `exp` and `nbf` count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current time, in whole seconds since the Unix epoch.
    fn now(&self) -> UnixTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

/// A clock that stays where it is set: for tests and for `explain --at`.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicU64);

// === impl UnixTime ===

impl UnixTime {
    /// The number of seconds since the epoch.
    pub fn as_secs(self) -> u64 {
        self.0
    }
}

// === impl SystemClock ===

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // reason: this is the one allowed clock read
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UnixTime(secs)
    }
}

// === impl FixedClock ===

impl FixedClock {
    /// A clock that reads `t` until it is moved.
    pub fn new(t: UnixTime) -> Self {
        Self(AtomicU64::new(t.0))
    }

    #[cfg(test)]
    /// Moves the clock to `t`.
    pub fn set(&self, t: UnixTime) {
        self.0.store(t.0, Ordering::Relaxed);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::Relaxed))
    }
}

/// Microseconds since the Unix epoch, for log timestamps only; never for checks.
#[allow(clippy::disallowed_methods)] // reason: clock.rs is where clock reads live
pub fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A monotonic instant, for measuring durations (metrics, timeouts); never for checks.
#[allow(clippy::disallowed_methods)] // reason: clock.rs is where clock reads live
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

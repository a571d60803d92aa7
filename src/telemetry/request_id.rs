//! `X-Request-Id`: the client's (or the proxy's in front), when it is a sane token, else a new
//! random one.

use http::HeaderValue;

/// `X-Request-Id`: the client's (or the proxy's in front), when it is a sane token, else a new
/// random one; set on the forwarded request, the response and the access log.
pub(crate) const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept.
const MAX_REQUEST_ID: usize = 128;

pub(crate) fn request_id(headers: &mut http::HeaderMap) -> HeaderValue {
    let mut given = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(v), None) = (given.next(), given.next()) {
        let ok = !v.is_empty()
            && v.len() <= MAX_REQUEST_ID
            && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
        if ok {
            return v.clone();
        }
    }
    // A random per-process prefix and a counter: unique without a syscall per request.
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        u64::from_be_bytes(bytes)
    });
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut id = String::with_capacity(32);
    crate::hex::push(&mut id, &prefix.to_be_bytes());
    crate::hex::push(&mut id, &n.to_be_bytes());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    headers.insert(X_REQUEST_ID, value.clone());
    value
}

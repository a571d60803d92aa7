//! `Authorization` and `DPoP` request headers (RFC 9449 §7.1, RFC 6750 §2.1): the input is
//! `name: value` lines, as a client could send them; the credential extraction must never
//! panic, whatever the count, case, scheme or bytes.

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value.trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let _ = dpop_gateway::fuzzing::credentials(&headers);
});

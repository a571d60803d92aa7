//! RFC 3339 UTC timestamps for log lines, from Unix time, without a date library.

/// `n` in decimal, zero-padded to `width` digits.
pub(super) fn padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i.min(digits.len().saturating_sub(width))..]);
}

/// `2026-11-23T15:07:51.661101Z`, as tracing-subscriber's default timer writes it.
pub(super) fn rfc3339_micros(out: &mut Vec<u8>, unix_micros: u64) {
    // The date and time up to the second change once a second: kept per thread.
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let secs = unix_micros / 1_000_000;
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        let mut text = Vec::with_capacity(20);
        rfc3339_seconds(&mut text, secs);
        if let Ok(p) = <[u8; 20]>::try_from(text.as_slice()) {
            prefix = p;
            SECOND.set((secs, prefix));
        } else {
            // Years past 9999: not cached, written in full.
            out.extend_from_slice(&text);
            padded(out, unix_micros % 1_000_000, 6);
            out.push(b'Z');
            return;
        }
    }
    out.extend_from_slice(&prefix);
    padded(out, unix_micros % 1_000_000, 6);
    out.push(b'Z');
}

/// `2026-11-23T15:07:51.` for `secs` since the epoch.
pub(super) fn rfc3339_seconds(out: &mut Vec<u8>, secs: u64) {
    let (y, m, d) = civil_from_days(secs / 86_400);
    let tod = secs % 86_400;
    padded(out, y, 4);
    out.push(b'-');
    padded(out, m, 2);
    out.push(b'-');
    padded(out, d, 2);
    out.push(b'T');
    padded(out, tod / 3600, 2);
    out.push(b':');
    padded(out, tod / 60 % 60, 2);
    out.push(b':');
    padded(out, tod % 60, 2);
    out.push(b'.');
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub(super) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

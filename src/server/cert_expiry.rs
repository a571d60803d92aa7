//! The `notAfter` of an X.509 certificate (RFC 5280 §4.1.2.5), read from its DER with a minimal
//! walk: Certificate -> tbsCertificate -> \[version\] serial signature issuer validity. Only what
//! the expiry metric needs; the certificate itself is verified by rustls, not here.

/// Unix time of the certificate's `notAfter`, or `None` when the DER is not a certificate this
/// walk understands.
pub(crate) fn not_after(der: &[u8]) -> Option<i64> {
    let (cert, _) = element(der, 0x30)?;
    let (tbs, _) = element(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = skip(rest)?; // [0] version
    }
    rest = skip(rest)?; // serialNumber
    rest = skip(rest)?; // signature
    rest = skip(rest)?; // issuer
    let (validity, _) = element(rest, 0x30)?;
    let after = skip(validity)?; // notBefore
    let tag = *after.first()?;
    let (time, _) = element(after, tag)?;
    match tag {
        0x17 => utc_time(time),
        0x18 => generalized_time(time),
        _ => None,
    }
}

/// The content of the DER element at the start of `data` if its tag is `tag`, and what follows.
fn element(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *data.first()? != tag {
        return None;
    }
    let first = *data.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in data.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((data.get(header..end)?, data.get(end..)?))
}

/// What follows the element at the start of `data`, whatever its tag.
fn skip(data: &[u8]) -> Option<&[u8]> {
    element(data, *data.first()?).map(|(_, rest)| rest)
}

/// `YYMMDDHHMMSSZ` (RFC 5280 §4.1.2.5.1: YY < 50 is 20YY).
fn utc_time(t: &[u8]) -> Option<i64> {
    if t.len() != 13 || t[12] != b'Z' {
        return None;
    }
    let yy = digits(&t[0..2])?;
    let year = if yy < 50 { 2000 + yy } else { 1900 + yy };
    civil(year, &t[2..12])
}

/// `YYYYMMDDHHMMSSZ` (RFC 5280 §4.1.2.5.2).
fn generalized_time(t: &[u8]) -> Option<i64> {
    if t.len() != 15 || t[14] != b'Z' {
        return None;
    }
    civil(digits(&t[0..4])?, &t[4..14])
}

/// Seconds since the epoch of `year` and `MMDDHHMMSS`.
fn civil(year: i64, t: &[u8]) -> Option<i64> {
    let (month, day) = (digits(&t[0..2])?, digits(&t[2..4])?);
    let (h, m, s) = (digits(&t[4..6])?, digits(&t[6..8])?, digits(&t[8..10])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

fn digits(d: &[u8]) -> Option<i64> {
    d.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["gw.test".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 15);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        // 2031-07-15T00:00:00Z
        assert_eq!(not_after(cert.der()), Some(1_941_840_000));
    }

    #[test]
    fn utc_and_generalized_times() {
        assert_eq!(utc_time(b"700101000000Z"), Some(0));
        assert_eq!(utc_time(b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(generalized_time(b"20500101000000Z"), Some(2_524_608_000));
        assert_eq!(utc_time(b"701301000000Z"), None);
    }

    #[test]
    fn garbage_is_none_never_a_panic() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01",
        ] {
            assert_eq!(not_after(bad), None);
        }
    }
}

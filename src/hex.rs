//! Lowercase hexadecimal, the one encoder for request ids, replay keys and fingerprints.

/// The digits, by value.
const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowercase hex of `bytes` to `out`.
pub(crate) fn push(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_every_nibble_lowercase() {
        let mut s = String::from("k:");
        super::push(&mut s, &[0x00, 0x9f, 0xa0, 0xff]);
        assert_eq!(s, "k:009fa0ff");
    }
}

//! `htu` comparison (RFC 9449 §4.3 point 9): both sides without query and fragment, normalised
//! per RFC 3986 §6.2.2 (case of scheme and host, percent-encoding case and unreserved
//! characters, dot segments) and §6.2.3 (default port, empty path is `/`). Pure: no I/O.
//!
//! Only absolute `http`/`https` URIs are accepted. Anything ambiguous is refused rather than
//! guessed at: userinfo, malformed percent-encoding, non-ASCII, controls, spaces and the
//! characters RFC 3986 never allows (`"<>\^`{|}`).

use std::fmt::Write as _;

/// Why a URI could not be normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HtuError {
    /// A character no URI contains: non-ASCII, a control, a space, or one of `"<>\^`{|}`, or a
    /// character not allowed in the path (RFC 3986 §3.3).
    InvalidChar(char),
    /// No `scheme://` prefix (RFC 3986 §4.3: an absolute URI with an authority).
    NotAbsolute,
    /// A scheme other than `http` or `https`.
    UnsupportedScheme(String),
    /// `user@` or `user:password@` in the authority (deprecated, RFC 3986 §3.2.1).
    Userinfo,
    /// The host is empty.
    EmptyHost,
    /// The host has a character a reg-name cannot have, or is a malformed IP literal.
    BadHost,
    /// The port is not a number from 0 to 65535.
    BadPort,
    /// A `%` not followed by two hex digits (RFC 3986 §2.1).
    BadPercentEncoding,
}

/// Normalises an absolute http(s) URI for comparison, dropping query and fragment.
pub fn normalize(uri: &str) -> Result<String, HtuError> {
    if let Some(c) = uri.chars().find(|c| !is_uri_char(*c)) {
        return Err(HtuError::InvalidChar(c));
    }
    // Fragment first: a `?` after `#` belongs to the fragment.
    let uri = uri.split('#').next().unwrap_or_default();
    let uri = uri.split('?').next().unwrap_or_default();

    let (scheme, rest) = uri.split_once("://").ok_or(HtuError::NotAbsolute)?;
    if !is_scheme(scheme) {
        return Err(HtuError::NotAbsolute);
    }
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(HtuError::UnsupportedScheme(scheme)),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = authority_parts(authority)?;

    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(&scheme);
    out.push_str("://");
    push_host(host, &mut out)?;
    if let Some(port) = port {
        if port != default_port {
            // Writing to a String cannot fail.
            let _ = write!(out, ":{port}");
        }
    }
    // RFC 3986 §6.2.2 order: percent-encoding first, so `%2E%2E` is a dot segment too.
    let decoded = normalize_path_encoding(path)?;
    let path = remove_dot_segments(&decoded);
    if path.is_empty() {
        out.push('/');
    } else {
        out.push_str(&path);
    }
    Ok(out)
}

/// Checks an authority as a request names it (a `Host` field value, an absolute-form target's
/// or HTTP/2's `:authority`): `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2) and nothing
/// else: no userinfo (RFC 9110 §4.2.4, RFC 9113 §8.3.1), no path, no whitespace, not empty, no
/// `,` (a list of hosts), a port of at most 65535. The same grammar as an `htu`'s authority.
pub fn check_authority(authority: &str) -> Result<(), HtuError> {
    if let Some(c) = authority.chars().find(|c| !is_uri_char(*c)) {
        return Err(HtuError::InvalidChar(c));
    }
    authority_parts(authority).map(|_| ())
}

/// The host and port of an authority whose characters are URI characters; see
/// [`check_authority`].
fn authority_parts(authority: &str) -> Result<(&str, Option<u16>), HtuError> {
    if authority.contains('@') {
        return Err(HtuError::Userinfo);
    }
    let (host, port) = split_host_port(authority)?;
    check_host(host)?;
    Ok((host, port))
}

/// An IPv6 literal that parses, or a reg-name / IPv4 address with well-formed percent-encoding.
/// A `,` is refused although RFC 3986 allows it in a reg-name: no host has one, and a field
/// value with one reads as a list of hosts (RFC 9110 §5.3).
fn check_host(host: &str) -> Result<(), HtuError> {
    if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // IPvFuture and zone identifiers are refused: std parses plain IPv6 only.
        return literal
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| HtuError::BadHost);
    }
    let bytes = host.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let valid = bytes.get(i + 1).and_then(|h| hex(*h)).is_some()
                && bytes.get(i + 2).and_then(|l| hex(*l)).is_some();
            if !valid {
                return Err(HtuError::BadPercentEncoding);
            }
            i += 3;
        } else if is_reg_name_char(b) && b != b',' {
            i += 1;
        } else {
            return Err(HtuError::BadHost);
        }
    }
    Ok(())
}

/// Splits `host[:port]` / `[v6]:port`; an empty port is no port (RFC 3986 §6.2.3).
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), HtuError> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(HtuError::BadHost)?;
        let (host, after) = authority.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(HtuError::BadHost),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(HtuError::EmptyHost);
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            // Leading zeros are allowed by the grammar; the number is what counts.
            let trimmed = p.trim_start_matches('0');
            if trimmed.len() > 5 {
                return Err(HtuError::BadPort);
            }
            Some(if trimmed.is_empty() {
                0
            } else {
                trimmed.parse::<u16>().map_err(|_| HtuError::BadPort)?
            })
        }
        Some(_) => return Err(HtuError::BadPort),
    };
    Ok((host, port))
}

/// Lower-cases a host [`check_host`] passed; a reg-name's percent-encoding is normalised.
fn push_host(host: &str, out: &mut String) -> Result<(), HtuError> {
    if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        out.push('[');
        out.push_str(&literal.to_ascii_lowercase());
        out.push(']');
        return Ok(());
    }
    push_normalized(host, is_reg_name_char, true, out)
        .map_err(|e| e.map_or(HtuError::BadPercentEncoding, |_| HtuError::BadHost))
}

/// Normalises the percent-encoding of a request path (no query), RFC 3986 §6.2.2.1-2: `%XX`
/// of an unreserved character is decoded, every other keeps upper-case hex digits. The same
/// rule [`normalize`] applies to an `htu`'s path, so a path normalised here compares equal to
/// any proof that names it in another spelling. Dot segments are left for the caller, which
/// refuses them.
pub fn normalize_path_encoding(path: &str) -> Result<String, HtuError> {
    let mut out = String::with_capacity(path.len());
    push_normalized(path, is_path_char, false, &mut out)
        .map_err(|e| e.unwrap_or(HtuError::BadPercentEncoding))?;
    Ok(out)
}

/// Appends `input` with percent-encodings normalised: `%XX` of an unreserved character is
/// decoded, any other keeps upper-case hex digits (RFC 3986 §6.2.2.1-2). `Err(None)` is bad
/// percent-encoding, `Err(Some(_))` a character `allowed` refuses.
fn push_normalized(
    input: &str,
    allowed: fn(u8) -> bool,
    lower: bool,
    out: &mut String,
) -> Result<(), Option<HtuError>> {
    let bytes = input.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|h| hex(*h)),
                bytes.get(i + 2).and_then(|l| hex(*l)),
            ) else {
                return Err(None);
            };
            let decoded = hi << 4 | lo;
            if is_unreserved(decoded) {
                out.push(char::from(if lower {
                    decoded.to_ascii_lowercase()
                } else {
                    decoded
                }));
            } else {
                let _ = write!(out, "%{decoded:02X}");
            }
            i += 3;
        } else if allowed(b) {
            out.push(char::from(if lower { b.to_ascii_lowercase() } else { b }));
            i += 1;
        } else {
            return Err(Some(HtuError::InvalidChar(char::from(b))));
        }
    }
    Ok(())
}

/// RFC 3986 §5.2.4, on a path that is empty or starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut output = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest;
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") {
            input = &input[3..];
            pop_segment(&mut output);
        } else if input == "/.." {
            input = "/";
            pop_segment(&mut output);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    output
}

fn pop_segment(output: &mut String) {
    let cut = output.rfind('/').unwrap_or(0);
    output.truncate(cut);
}

/// Printable ASCII minus space and the characters RFC 3986 never allows.
fn is_uri_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}')
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §2.2.
fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// reg-name minus `%` (handled separately), RFC 3986 §3.2.2.
fn is_reg_name_char(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b)
}

/// pchar or `/`, minus `%` (handled separately), RFC 3986 §3.3.
/// RFC 3986 `pchar` and `/`, percent-encodings aside.
pub(crate) fn is_path_char(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@' | b'/')
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

// === impl HtuError ===

impl std::fmt::Display for HtuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HtuError::InvalidChar(c) => write!(f, "URI has a character not allowed: {c:?}"),
            HtuError::NotAbsolute => f.write_str("URI is not absolute"),
            HtuError::UnsupportedScheme(s) => {
                let s: String = s.chars().take(16).collect();
                write!(f, "URI scheme {s} is not http or https")
            }
            HtuError::Userinfo => f.write_str("URI has userinfo"),
            HtuError::EmptyHost => f.write_str("URI has an empty host"),
            HtuError::BadHost => f.write_str("URI host is malformed"),
            HtuError::BadPort => f.write_str("URI port is not a number up to 65535"),
            HtuError::BadPercentEncoding => f.write_str("URI has malformed percent-encoding"),
        }
    }
}

impl std::error::Error for HtuError {}

#[cfg(test)]
mod tests;

//! The URI rules the gateway applies wherever a URI is read (RFC 3986): the character classes,
//! an authority as a request names it (the Host rule), percent-encoding normalisation
//! (§6.2.2), dot segments (§5.2.4), and the canonical request path routes match and the
//! upstream receives. `htu` comparison (`dpop::htu`), routing (`route`) and the client-facing
//! URI (`request_uri`) all use these, so a path or authority means the same thing to each.
//! Pure: no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::config::EncodedSlashes;

/// Why a URI could not be normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriError {
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

/// Checks an authority as a request names it (a `Host` field value, an absolute-form target's
/// or HTTP/2's `:authority`): `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2) and nothing
/// else: no userinfo (RFC 9110 §4.2.4, RFC 9113 §8.3.1), no path, no whitespace, not empty, no
/// `,` (a list of hosts), a port of at most 65535. The same grammar as an `htu`'s authority.
pub(crate) fn check_authority(authority: &str) -> Result<(), UriError> {
    if let Some(c) = authority.chars().find(|c| !is_uri_char(*c)) {
        return Err(UriError::InvalidChar(c));
    }
    authority_parts(authority).map(|_| ())
}

/// The host and port of an authority whose characters are URI characters; see
/// [`check_authority`].
pub(crate) fn authority_parts(authority: &str) -> Result<(&str, Option<u16>), UriError> {
    if authority.contains('@') {
        return Err(UriError::Userinfo);
    }
    let (host, port) = split_host_port(authority)?;
    check_host(host)?;
    Ok((host, port))
}

/// An IPv6 literal that parses, or a reg-name / IPv4 address with well-formed percent-encoding.
/// A `,` is refused although RFC 3986 allows it in a reg-name: no host has one, and a field
/// value with one reads as a list of hosts (RFC 9110 §5.3).
pub(crate) fn check_host(host: &str) -> Result<(), UriError> {
    if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        // IPvFuture and zone identifiers are refused: std parses plain IPv6 only.
        return literal
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| UriError::BadHost);
    }
    let bytes = host.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let valid = bytes.get(i + 1).and_then(|h| hex(*h)).is_some()
                && bytes.get(i + 2).and_then(|l| hex(*l)).is_some();
            if !valid {
                return Err(UriError::BadPercentEncoding);
            }
            i += 3;
        } else if is_reg_name_char(b) && b != b',' {
            i += 1;
        } else {
            return Err(UriError::BadHost);
        }
    }
    Ok(())
}

/// Splits `host[:port]` / `[v6]:port`; an empty port is no port (RFC 3986 §6.2.3).
pub(crate) fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), UriError> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or(UriError::BadHost)?;
        let (host, after) = authority.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(UriError::BadHost),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UriError::EmptyHost);
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            // Leading zeros are allowed by the grammar; the number is what counts.
            let trimmed = p.trim_start_matches('0');
            if trimmed.len() > 5 {
                return Err(UriError::BadPort);
            }
            Some(if trimmed.is_empty() {
                0
            } else {
                trimmed.parse::<u16>().map_err(|_| UriError::BadPort)?
            })
        }
        Some(_) => return Err(UriError::BadPort),
    };
    Ok((host, port))
}

/// Lower-cases a host [`check_host`] passed; a reg-name's percent-encoding is normalised.
pub(crate) fn push_host(host: &str, out: &mut String) -> Result<(), UriError> {
    if let Some(literal) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        out.push('[');
        out.push_str(&literal.to_ascii_lowercase());
        out.push(']');
        return Ok(());
    }
    push_normalized(host, is_reg_name_char, true, out)
        .map_err(|e| e.map_or(UriError::BadPercentEncoding, |_| UriError::BadHost))
}

/// Normalises the percent-encoding of a request path (no query), RFC 3986 §6.2.2.1-2: `%XX`
/// of an unreserved character is decoded, every other keeps upper-case hex digits. The same
/// rule `dpop::htu::normalize` applies to an `htu`'s path, so a path normalised here compares equal to
/// any proof that names it in another spelling. Dot segments are left for the caller, which
/// refuses them.
pub(crate) fn normalize_path_encoding(path: &str) -> Result<String, UriError> {
    let mut out = String::with_capacity(path.len());
    push_normalized(path, is_path_char, false, &mut out)
        .map_err(|e| e.unwrap_or(UriError::BadPercentEncoding))?;
    Ok(out)
}

/// Appends `input` with percent-encodings normalised: `%XX` of an unreserved character is
/// decoded, any other keeps upper-case hex digits (RFC 3986 §6.2.2.1-2). `Err(None)` is bad
/// percent-encoding, `Err(Some(_))` a character `allowed` refuses.
pub(crate) fn push_normalized(
    input: &str,
    allowed: fn(u8) -> bool,
    lower: bool,
    out: &mut String,
) -> Result<(), Option<UriError>> {
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
            return Err(Some(UriError::InvalidChar(char::from(b))));
        }
    }
    Ok(())
}

/// RFC 3986 §5.2.4, on a path that is empty or starts with `/`.
pub(crate) fn remove_dot_segments(path: &str) -> String {
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
pub(crate) fn is_uri_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}')
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
pub(crate) fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// RFC 3986 §2.3.
pub(crate) fn is_unreserved(b: u8) -> bool {
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

/// The path routes match and the upstream receives, or why the request is refused before
/// routing. What RFC 3986 §6.2.2 makes equivalent is normalised, as `htu` is: percent-encoded
/// unreserved characters (`ALPHA DIGIT - . _ ~`) are decoded and every other percent-encoding
/// gets upper-case hex (the query is not part of the path and is not touched). What a server
/// behind us could read as another path than the one routes matched is refused: dot segments
/// (`.`, `..`, percent-encoded too), `;` parameters on them (`..;`, which servlet containers
/// read as `..`), empty segments, a `\`, malformed percent-encoding, and `%2F` / `%5C` unless
/// `slashes` is `keep`; with `keep`, an encoded slash also separates segments for the dot
/// check (`a%2F..%2Fb` is refused: a server that decodes it would resolve the `..`).
pub(crate) fn canonical_path(
    path: &str,
    slashes: EncodedSlashes,
) -> Result<Cow<'_, str>, &'static str> {
    if is_plainly_canonical(path) {
        return Ok(Cow::Borrowed(path));
    }
    canonical_path_fully(path, slashes)
}

/// [`canonical_path`] without its fast path.
fn canonical_path_fully(path: &str, slashes: EncodedSlashes) -> Result<Cow<'_, str>, &'static str> {
    if path.contains('\\') {
        return Err("the request path contains a backslash");
    }
    if path.contains("//") {
        return Err("the request path contains an empty segment");
    }
    let normal = normalize_path_encoding(path).map_err(|_| "the request path is malformed")?;
    if slashes == EncodedSlashes::Reject && (normal.contains("%2F") || normal.contains("%5C")) {
        return Err("the request path contains an encoded slash (%2F or %5C)");
    }
    let mut segments = normal
        .split('/')
        .flat_map(|s| s.split("%2F"))
        .flat_map(|s| s.split("%5C"));
    if segments.any(|seg| {
        seg == "."
            || seg == ".."
            || [".;", "..;", ".%3B", "..%3B"]
                .iter()
                .any(|p| seg.starts_with(p))
    }) {
        return Err("the request path contains a dot segment");
    }
    Ok(if normal == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normal)
    })
}

/// Most paths need none of [`canonical_path`]'s work: without `%` there is nothing to decode,
/// without a segment starting with `.` there are no dot segments or `..;`, and with only path
/// characters and no `//` nothing else can be refused. (A property test holds this against the
/// full check.)
fn is_plainly_canonical(path: &str) -> bool {
    path.starts_with('/')
        && path.bytes().all(|b| b != b'%' && is_path_char(b))
        && !path.contains("//")
        && !path.contains("/.")
}

// === impl UriError ===

impl std::fmt::Display for UriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UriError::InvalidChar(c) => write!(f, "URI has a character not allowed: {c:?}"),
            UriError::NotAbsolute => f.write_str("URI is not absolute"),
            UriError::UnsupportedScheme(s) => {
                let s: String = s.chars().take(16).collect();
                write!(f, "URI scheme {s} is not http or https")
            }
            UriError::Userinfo => f.write_str("URI has userinfo"),
            UriError::EmptyHost => f.write_str("URI has an empty host"),
            UriError::BadHost => f.write_str("URI host is malformed"),
            UriError::BadPort => f.write_str("URI port is not a number up to 65535"),
            UriError::BadPercentEncoding => f.write_str("URI has malformed percent-encoding"),
        }
    }
}

impl std::error::Error for UriError {}

#[cfg(test)]
mod tests;

//! `htu` comparison (RFC 9449 §4.3 point 9): both sides without query and fragment, normalised
//! per RFC 3986 §6.2.2 (case of scheme and host, percent-encoding case and unreserved
//! characters, dot segments) and §6.2.3 (default port, empty path is `/`). Pure: no I/O.
//!
//! Only absolute `http`/`https` URIs are accepted. Anything ambiguous is refused rather than
//! guessed at: userinfo, malformed percent-encoding, non-ASCII, controls, spaces and the
//! characters RFC 3986 never allows (`"<>\^`{|}`).

use std::fmt::Write as _;

use crate::uri::{
    authority_parts, is_scheme, is_uri_char, normalize_path_encoding, push_host,
    remove_dot_segments, UriError,
};

/// Normalises an absolute http(s) URI for comparison, dropping query and fragment.
pub fn normalize(uri: &str) -> Result<String, UriError> {
    if let Some(c) = uri.chars().find(|c| !is_uri_char(*c)) {
        return Err(UriError::InvalidChar(c));
    }
    // Fragment first: a `?` after `#` belongs to the fragment.
    let uri = uri.split('#').next().unwrap_or_default();
    let uri = uri.split('?').next().unwrap_or_default();

    let (scheme, rest) = uri.split_once("://").ok_or(UriError::NotAbsolute)?;
    if !is_scheme(scheme) {
        return Err(UriError::NotAbsolute);
    }
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(UriError::UnsupportedScheme(scheme)),
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

#[cfg(test)]
mod tests;

//! `htu` comparison (RFC 9449 §4.3 point 9): both sides without query and fragment, normalised
//! per RFC 3986 §6.2.2 (case of scheme and host, percent-encoding case and unreserved
//! characters, dot segments) and §6.2.3 (default port, empty path is `/`).

/// Why a URI could not be normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HtuError {
    /// Implementer's variants (not absolute, not http(s), bad percent-encoding, ...).
    Todo,
}

/// Normalises an absolute http(s) URI for comparison, dropping query and fragment.
pub fn normalize(uri: &str) -> Result<String, HtuError> {
    todo!("{uri}")
}

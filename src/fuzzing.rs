//! Entry points for the coverage-guided fuzz targets in `fuzz/` (cargo feature `fuzzing`):
//! the parsers a client or a config file reaches that are not public otherwise. Not an API.

/// Runs the credential extraction a request's `Authorization` and `DPoP` headers go through
/// (RFC 9449 §7.1, RFC 6750 §2.1); whether they were accepted.
pub fn credentials(headers: &http::HeaderMap) -> bool {
    matches!(crate::credentials::extract(headers), Ok(Some(_)))
}

/// The request-path rule routing and forwarding use (RFC 3986 §6.2.2 normalisation, dot
/// segments and encoded slashes refused or kept): the normal form, or why it is refused.
pub fn canonical_path(path: &str, keep_encoded_slashes: bool) -> Result<String, &'static str> {
    let slashes = if keep_encoded_slashes {
        crate::config::EncodedSlashes::Keep
    } else {
        crate::config::EncodedSlashes::Reject
    };
    crate::uri::canonical_path(path, slashes).map(|p| p.into_owned())
}

//! Entry points for the coverage-guided fuzz targets in `fuzz/` (cargo feature `fuzzing`):
//! the parsers a client or a config file reaches that are not public otherwise. Not an API.

/// Runs the credential extraction a request's `Authorization` and `DPoP` headers go through
/// (RFC 9449 §7.1, RFC 6750 §2.1); whether they were accepted.
pub fn credentials(headers: &http::HeaderMap) -> bool {
    matches!(crate::credentials::extract(headers), Ok(Some(_)))
}

//! `dpop-gateway check`: the configuration as `run` would load it, and then every file it
//! names read and parsed the way `run` reads it (`tls.cert` / `tls.key`, `access_token.
//! jwks_file`, `access_token.ca_file`), so that a missing or broken file is reported before a
//! deployment, at the key that names it (`file:line:column: message`).

use std::path::Path;

use crate::config::{Config, ConfigError, KeySource, ProcessEnv, TokenFormat};
use crate::server::tls::{self, TlsError};
use crate::token::http::read_ca_file;

/// Loads `path` (as [`Config::load`]) and checks the files it names.
pub fn check(path: &Path) -> Result<Config, ConfigError> {
    let (origin, text) = Config::read_text(path)?;
    let config = Config::from_yaml_str(&text, &origin, &ProcessEnv)?;
    check_files(&config, &text, &origin)?;
    Ok(config)
}

/// Reads and parses every file `config` names; the first that fails is reported at its key.
pub fn check_files(config: &Config, text: &str, origin: &str) -> Result<(), ConfigError> {
    let at = |key: &str, message: String| {
        ConfigError::at_path(origin, text, key, format!("{key}: {message}"))
    };
    if let Some(t) = &config.tls {
        tls::server_config(&t.cert, &t.key).map_err(|e| {
            let key = match &e {
                TlsError::Read { path, .. } if path == &t.cert => "tls.cert",
                TlsError::CertPem { .. } | TlsError::NoCertificate { .. } => "tls.cert",
                TlsError::Read { .. }
                | TlsError::KeyPem { .. }
                | TlsError::NoKey { .. }
                | TlsError::Rejected { .. } => "tls.key",
            };
            at(key, e.to_string())
        })?;
    }
    let one = config.access_tokens.len() == 1;
    for (i, at_config) in config.access_tokens.iter().enumerate() {
        let p = if one {
            "access_token".to_owned()
        } else {
            format!("access_token[{i}]")
        };
        if let (TokenFormat::Jwt, KeySource::File(path)) = (at_config.format, &at_config.keys) {
            jwks_file(path).map_err(|e| at(&format!("{p}.jwks_file"), e))?;
        }
        if let Some(path) = &at_config.ca_file {
            ca_file(path).map_err(|e| at(&format!("{p}.ca_file"), e))?;
        }
    }
    Ok(())
}

/// What `run` requires of `access_token.jwks_file` (the same reader): a JWKS with at least one
/// usable key.
fn jwks_file(path: &Path) -> Result<(), String> {
    crate::token::jwt::read_jwks_file(path)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// What `run` requires of `access_token.ca_file`: PEM certificates usable as trust anchors.
fn ca_file(path: &Path) -> Result<(), String> {
    let certs = read_ca_file(path).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(())
}

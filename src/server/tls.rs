//! TLS for the main listener: a rustls `ServerConfig` (ring provider, ALPN `h2` then
//! `http/1.1`) built from a PEM chain and key, and a [`ReloadingAcceptor`] that picks up a new
//! pair when the files change (a write, a rename, or a Kubernetes `..data` symlink swap).
//!
//! A bad new pair is logged and the old one kept: a half-written rotation must not take the
//! listener down.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use super::watchers::FileStamp;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocols offered, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate/key pair could not be loaded.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: String,
    },
    /// The certificate file is not valid PEM.
    CertPem {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        error: String,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file is not valid PEM.
    KeyPem {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        error: String,
    },
    /// The key file holds no PKCS#8, PKCS#1 or SEC1 private key.
    NoKey {
        /// The key file.
        path: PathBuf,
    },
    /// rustls refused the pair (the key does not match the certificate, or its type is not
    /// supported).
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        error: String,
    },
}

/// A TLS acceptor whose configuration can be swapped while connections are being accepted.
pub struct ReloadingAcceptor {
    current: RwLock<TlsAcceptor>,
}

/// Builds the server configuration from a PEM certificate chain and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_chain(cert)?;
    let private_key = read_key(key)?;
    let rejected = |e: rustls::Error| TlsError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        error: e.to_string(),
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(rejected)?
            .with_no_client_auth()
            .with_single_cert(chain, private_key)
            .map_err(rejected)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        error: e.to_string(),
    })
}

pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CertPem {
            path: path.to_owned(),
            error: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// Unix time of the `notAfter` of the leaf certificate in the PEM chain at `path`, for the
/// expiry metric; `None` when it cannot be read.
pub(crate) fn leaf_not_after(path: &Path) -> Option<i64> {
    let chain = read_chain(path).ok()?;
    super::cert_expiry::not_after(chain.first()?.as_ref())
}

pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        e => TlsError::KeyPem {
            path: path.to_owned(),
            error: e.to_string(),
        },
    })
}

// === impl ReloadingAcceptor ===

impl ReloadingAcceptor {
    /// An acceptor serving `config` until a reload replaces it.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            current: RwLock::new(TlsAcceptor::from(config)),
        }
    }

    /// Loads the pair at `cert` and `key`.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        server_config(cert, key).map(Self::new)
    }

    /// The acceptor for the next connection (cheap: an `Arc` clone).
    pub fn acceptor(&self) -> TlsAcceptor {
        // A poisoned lock still holds a complete acceptor: the writer only assigns.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the configuration used for new connections.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = TlsAcceptor::from(config);
    }

    /// Polls `cert` and `key` every `interval` and swaps in the new pair when either changes
    /// and the pair loads; a pair that does not load is logged and the old one kept (it is
    /// tried again on the next change). Call it right after loading: the files as they are at
    /// this call are taken to be the ones being served. The task ends when the acceptor is
    /// dropped.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        cert: PathBuf,
        key: PathBuf,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_watcher_with(cert, key, interval, |_| {})
    }

    /// As [`spawn_watcher`](Self::spawn_watcher), calling `on_reload(true)` after a new pair
    /// is applied and `on_reload(false)` after a change that did not load (for metrics).
    pub fn spawn_watcher_with(
        self: &Arc<Self>,
        cert: PathBuf,
        key: PathBuf,
        interval: Duration,
        on_reload: impl Fn(bool) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let this: Weak<Self> = Arc::downgrade(self);
        // Stamped now, not when the task first runs: a change made right after this call
        // must count as a change.
        let mut seen = (FileStamp::of(&cert), FileStamp::of(&key));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(acceptor) = this.upgrade() else {
                    return;
                };
                let now = (FileStamp::of(&cert), FileStamp::of(&key));
                if now == seen {
                    continue;
                }
                // Remembered even when the load fails, so a bad pair is logged once per change.
                seen = now;
                match server_config(&cert, &key) {
                    Ok(config) => {
                        acceptor.replace(config);
                        on_reload(true);
                        tracing::info!(cert = %cert.display(), key = %key.display(), "TLS certificate reloaded");
                    }
                    Err(error) => {
                        on_reload(false);
                        tracing::warn!(%error, "TLS certificate change not applied; keeping the previous pair");
                    }
                }
            }
        })
    }
}

// === impl TlsError ===

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, error } => write!(f, "{}: cannot read: {error}", path.display()),
            TlsError::CertPem { path, error } => {
                write!(
                    f,
                    "{}: not a valid PEM certificate chain: {error}",
                    path.display()
                )
            }
            TlsError::NoCertificate { path } => {
                write!(f, "{}: no CERTIFICATE block found", path.display())
            }
            TlsError::KeyPem { path, error } => write!(
                f,
                "{}: not a valid PEM private key: {error}",
                path.display()
            ),
            TlsError::NoKey { path } => write!(
                f,
                "{}: no private key found (PKCS#8, PKCS#1 or SEC1 PEM expected)",
                path.display()
            ),
            TlsError::Rejected { cert, key, error } => write!(
                f,
                "{} and {}: certificate and key refused: {error}",
                cert.display(),
                key.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests
pub(super) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A unique, empty directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("dpop-gateway-tls-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        pub(crate) fn write(&self, name: &str, content: &str) -> PathBuf {
            let path = self.0.join(name);
            // Write then rename, as a rotation would: the watcher never sees half a file.
            let tmp = self.0.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A self-signed pair for localhost: (cert PEM, key PEM).
    fn pair() -> (String, String) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    }

    fn served_cert(acceptor: &ReloadingAcceptor) -> Arc<ServerConfig> {
        acceptor.acceptor().config().clone()
    }

    #[test]
    fn loads_a_pem_pair_and_offers_h2_then_http11() {
        let dir = TempDir::new();
        let (cert, key) = pair();
        let config =
            server_config(&dir.write("tls.crt", &cert), &dir.write("tls.key", &key)).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn missing_file_error_names_it() {
        let dir = TempDir::new();
        let (_, key) = pair();
        let cert_path = dir.0.join("absent.crt");
        let err = server_config(&cert_path, &dir.write("tls.key", &key)).unwrap_err();
        assert!(
            matches!(err, TlsError::Read { ref path, .. } if *path == cert_path),
            "{err}"
        );
        assert!(err.to_string().contains("absent.crt"));
    }

    #[test]
    fn bad_key_error_names_the_key_file() {
        let dir = TempDir::new();
        let (cert, _) = pair();
        let key_path = dir.write("broken.key", "not a key\n");
        let err = server_config(&dir.write("tls.crt", &cert), &key_path).unwrap_err();
        assert!(
            matches!(err, TlsError::NoKey { ref path } if *path == key_path),
            "{err}"
        );
        assert!(err.to_string().contains("broken.key"));
    }

    #[test]
    fn cert_file_without_a_certificate_is_refused() {
        let dir = TempDir::new();
        let (_, key) = pair();
        let cert_path = dir.write("empty.crt", "");
        let err = server_config(&cert_path, &dir.write("tls.key", &key)).unwrap_err();
        assert!(
            matches!(err, TlsError::NoCertificate { ref path } if *path == cert_path),
            "{err}"
        );
    }

    #[test]
    fn key_of_another_certificate_is_refused() {
        let dir = TempDir::new();
        let (cert, _) = pair();
        let (_, other_key) = pair();
        let err = server_config(
            &dir.write("tls.crt", &cert),
            &dir.write("tls.key", &other_key),
        )
        .unwrap_err();
        assert!(matches!(err, TlsError::Rejected { .. }), "{err}");
    }

    /// Waits (up to 10 s) until `f` holds.
    async fn eventually(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn watcher_picks_up_a_new_pair_and_keeps_the_old_one_on_garbage() {
        let dir = TempDir::new();
        let (cert, key) = pair();
        let cert_path = dir.write("tls.crt", &cert);
        let key_path = dir.write("tls.key", &key);
        let acceptor = Arc::new(ReloadingAcceptor::load(&cert_path, &key_path).unwrap());
        let first = served_cert(&acceptor);
        let watcher = acceptor.spawn_watcher(
            cert_path.clone(),
            key_path.clone(),
            Duration::from_millis(20),
        );

        // A new valid pair: the key first, then the cert, as a rotation might write them.
        let (cert2, key2) = pair();
        dir.write("tls.key", &key2);
        dir.write("tls.crt", &cert2);
        assert!(eventually(|| !Arc::ptr_eq(&served_cert(&acceptor), &first)).await);
        let second = served_cert(&acceptor);

        // Garbage: the serving pair stays.
        dir.write("tls.crt", "-----BEGIN CERTIFICATE-----\ngarbage\n");
        // Give the watcher several rounds to (not) act; no timing assert, only "unchanged".
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(Arc::ptr_eq(&served_cert(&acceptor), &second));

        // Fixed again: picked up.
        dir.write("tls.crt", &cert2);
        assert!(eventually(|| !Arc::ptr_eq(&served_cert(&acceptor), &second)).await);

        drop(acceptor);
        // The watcher notices the drop on its next round and ends.
        tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .unwrap()
            .unwrap();
    }
}

//! A throwaway PKI for end-to-end TLS tests: a CA and a server certificate for `localhost` and
//! `127.0.0.1`, made with rcgen and written to a unique temp directory (removed on drop), and a
//! rustls client configuration that trusts only that CA.

// reason: test support: not every test uses every helper, and a failure here is a test failure.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// A test CA and a server certificate signed by it, on disk.
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate chain file (leaf then CA), PEM.
    pub cert_path: PathBuf,
    /// The server private key file (PKCS#8), PEM.
    pub key_path: PathBuf,
    /// The directory holding both; removed on drop.
    pub dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
}

// === impl TestPki ===

impl TestPki {
    /// A new CA and server pair in a fresh temp directory.
    pub fn new() -> TestPki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dpop-gateway-e2e-pki-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create pki dir");

        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "dpop-gateway test CA");
        let ca_cert = params.self_signed(&ca_key).expect("CA cert");
        let pki = TestPki {
            ca_pem: ca_cert.pem(),
            cert_path: dir.join("tls.crt"),
            key_path: dir.join("tls.key"),
            dir,
            ca: Issuer::new(params, ca_key),
        };
        pki.rotate();
        pki
    }

    /// Issues a new server certificate and key and writes them over the old files (each
    /// written to a temp file and renamed, as a rotation would). Returns the leaf, PEM.
    pub fn rotate(&self) -> String {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = params.signed_by(&key, &self.ca).expect("server cert").pem();
        write_atomically(&self.key_path, &key.serialize_pem());
        write_atomically(&self.cert_path, &format!("{leaf}{}", self.ca_pem));
        leaf
    }

    /// A server configuration for this PKI's certificate offering `alpn`, requiring a client
    /// certificate issued by this CA when `require_client_cert`.
    pub fn server_config(
        &self,
        alpn: &[&[u8]],
        require_client_cert: bool,
    ) -> Arc<rustls::ServerConfig> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_path)
            .expect("cert file")
            .collect::<Result<_, _>>()
            .expect("cert PEM");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&self.key_path).expect("key PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("CA PEM"))
                .expect("CA into the root store");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key).expect("server config");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Issues a client certificate (CN `name`) and writes it and its key under this PKI's
    /// directory; returns the two paths.
    pub fn client_pair(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca).expect("client cert").pem();
        let cert_path = self.dir.join(format!("{name}.crt"));
        let key_path = self.dir.join(format!("{name}.key"));
        write_atomically(&key_path, &key.serialize_pem());
        write_atomically(&cert_path, &cert);
        (cert_path, key_path)
    }

    /// The CA certificate written to a file under this PKI's directory.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.join("ca.pem");
        write_atomically(&path, &self.ca_pem);
        path
    }

    /// A client configuration trusting only this CA (ring provider), offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let ca = CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("CA PEM");
        roots.add(ca).expect("CA into the root store");
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_atomically(path: &Path, content: &str) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("pki");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).expect("write pki file");
    std::fs::rename(&tmp, path).expect("rename pki file");
}

/// A gateway whose main listener serves a fresh test certificate (its admin listener stays
/// plain HTTP).
pub async fn tls_gateway() -> (TestPki, crate::support::TestGateway) {
    let pki = TestPki::new();
    let gw = crate::support::TestGateway::start_with(crate::support::Options {
        extra: format!(
            "tls:\n  cert: \"{}\"\n  key: \"{}\"",
            pki.cert_path.display(),
            pki.key_path.display()
        ),
        ..crate::support::Options::default()
    })
    .await;
    (pki, gw)
}

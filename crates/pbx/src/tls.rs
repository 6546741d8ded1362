//! TLS for SIP (`tls:` listeners): the server certificate, from files named in the config or
//! made once at first start (self-signed, for the SIP domain) and kept next to the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("could not make a self-signed certificate: {0}")]
    Generate(String),
    #[error("certificate and key do not form a usable TLS configuration: {0}")]
    Config(String),
}

/// Where the certificate and key are: configured, or generated beside the database.
pub fn paths(config: &Config) -> (PathBuf, PathBuf, bool) {
    match (&config.tls_certificate, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ => {
            let dir = config
                .database
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (dir.join("tls-cert.pem"), dir.join("tls-key.pem"), true)
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(data).map_err(err)
}

/// Builds the acceptor, generating a self-signed certificate on first use if none is set.
pub fn acceptor(config: &Config) -> Result<TlsAcceptor, TlsError> {
    let (cert_path, key_path, generated) = paths(config);
    if generated && !cert_path.exists() {
        let names = vec![config.domain.clone(), "localhost".to_owned()];
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        write(&key_path, ck.key_pair.serialize_pem().as_bytes(), 0o600)?;
        write(&cert_path, ck.cert.pem().as_bytes(), 0o644)?;
        tracing::info!(certificate = %cert_path.display(), "made a self-signed TLS certificate");
    }
    let cert_pem = read(&cert_path)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key_pem = read(&key_path)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or(TlsError::NoKey { path: key_path })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

//! TLS (rustls with the ring provider): PEM files, or a self-signed certificate generated at
//! start and written where clients can trust it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::{ServerError, TlsMode};

fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ServerError> {
    let cert_bytes =
        std::fs::read(cert).map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    let key_bytes =
        std::fs::read(key).map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "{}: no certificate found",
            cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_bytes.as_slice())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| ServerError::Tls(format!("{}: no private key found", key.display())))?;
    Ok((certs, key))
}

/// The acceptor for `mode`, and under `SelfSigned` the certificate path clients should trust.
pub(crate) fn acceptor(
    mode: &TlsMode,
    data_dir: &Path,
    host: &str,
) -> Result<Option<(TlsAcceptor, Option<PathBuf>)>, ServerError> {
    match mode {
        TlsMode::None => Ok(None),
        TlsMode::Files { cert, key } => {
            let (certs, key) = read_pem(cert, key)?;
            Ok(Some((server_config(certs, key)?, None)))
        }
        TlsMode::SelfSigned => {
            let mut names = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned(),
            ];
            if !names.iter().any(|n| n == host) && !host.is_empty() && host != "0.0.0.0" {
                names.push(host.to_owned());
            }
            let generated = rcgen::generate_simple_self_signed(names)
                .map_err(|e| ServerError::Tls(e.to_string()))?;
            let dir = data_dir.join("tls");
            std::fs::create_dir_all(&dir).map_err(|e| ServerError::Tls(e.to_string()))?;
            let cert_path = dir.join("cert.pem");
            let key_path = dir.join("key.pem");
            let write = |path: &Path, text: &str, mode: u32| -> Result<(), ServerError> {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(mode)
                    .open(path)
                    .map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))?;
                f.write_all(text.as_bytes())
                    .map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))
            };
            write(&cert_path, &generated.cert.pem(), 0o644)?;
            write(&key_path, &generated.signing_key.serialize_pem(), 0o600)?;
            let (certs, key) = read_pem(&cert_path, &key_path)?;
            Ok(Some((server_config(certs, key)?, Some(cert_path))))
        }
    }
}

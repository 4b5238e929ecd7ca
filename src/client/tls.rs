//! `wss://` for the client: the rustls configuration from [`ConnectOptions`], the TLS
//! handshake, and errors that say which check failed.

use super::stream::Stream;
use super::{ClientError, ConnectOptions};
use crate::proto::Url;
use crate::tls::AcceptAnything;
use rustls::pki_types::ServerName;
use rustls::CertificateError;
use std::fmt;
use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The check a server's certificate failed (see [`ClientError::Certificate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateCheck {
    /// It has expired (its "not after" is past).
    Expired,
    /// It is not valid yet (its "not before" is to come): often a wrong clock.
    NotValidYet,
    /// It is for other names than the one in the URL.
    WrongName,
    /// It does not chain to a trusted root: a self-signed certificate, or a private CA
    /// not given with [`ConnectOptions::ca`].
    UnknownIssuer,
    /// Its issuer revoked it.
    Revoked,
    /// A signature in the chain is wrong, or the certificate does not parse.
    BadSignature,
    /// Another check (an extension, the key usage …): the error says which.
    Other,
}

impl CertificateCheck {
    fn of(error: &CertificateError) -> CertificateCheck {
        match error {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertificateCheck::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertificateCheck::NotValidYet
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertificateCheck::WrongName
            }
            CertificateError::UnknownIssuer => CertificateCheck::UnknownIssuer,
            CertificateError::Revoked => CertificateCheck::Revoked,
            CertificateError::BadSignature | CertificateError::BadEncoding => {
                CertificateCheck::BadSignature
            }
            _ => CertificateCheck::Other,
        }
    }
}

impl fmt::Display for CertificateCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertificateCheck::Expired => "it has expired",
            CertificateCheck::NotValidYet => "it is not valid yet (is this machine's clock right?)",
            CertificateCheck::WrongName => "it is for another name than the URL's host",
            CertificateCheck::UnknownIssuer => {
                "its issuer is unknown: it does not chain to a trusted root (for a private CA, \
                 pass it with --ca FILE / ConnectOptions::ca)"
            }
            CertificateCheck::Revoked => "it has been revoked",
            CertificateCheck::BadSignature => "a signature in its chain is invalid",
            CertificateCheck::Other => "it failed a check",
        })
    }
}

/// rustls' account of a failed check, with a sentence for the cases it only names (webpki's
/// error inside `CertificateError::Other`).
pub(super) fn describe(error: &CertificateError) -> String {
    let text = error.to_string();
    if matches!(error, CertificateError::Other(_)) && text.contains("CaUsedAsEndEntity") {
        return "the server presents a CA certificate as its own; give it a leaf certificate \
                (basicConstraints CA:FALSE) signed by that CA, and trust the CA"
            .to_owned();
    }
    text
}

/// The rustls client configuration `options` ask for: the webpki roots (Mozilla's, compiled
/// in), or only the CAs of [`ConnectOptions::ca`]; no verification at all with
/// [`ConnectOptions::danger_accept_invalid_certs`]; ALPN `http/1.1`; TLS 1.3 and 1.2.
pub(super) fn client_config(
    options: &ConnectOptions,
) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    if let Some(config) = &options.tls_config {
        return Ok(config.clone());
    }
    let provider = crate::tls::crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(ClientError::Tls)?;
    let mut config = if options.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if options.ca.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else {
            for cert in &options.ca {
                roots.add(cert.clone()).map_err(ClientError::Tls)?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS handshake over `tcp`, bounded by `timeout`: SNI is the URL's host (an IP address
/// is checked against the certificate's IP addresses, and sends no SNI).
pub(super) fn connect(
    url: &Url,
    tcp: TcpStream,
    options: &ConnectOptions,
) -> Result<Stream, ClientError> {
    const DURING: &str = "the TLS handshake";
    let config = client_config(options)?;
    let host = url.host();
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        ClientError::Tls(rustls::Error::General(format!(
            "{host} is not a valid DNS name or IP address for TLS"
        )))
    })?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(ClientError::Tls)?;
    let mut tcp = tcp;
    let deadline = options
        .connect_timeout
        .and_then(|t| Instant::now().checked_add(t));
    while conn.is_handshaking() {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout { during: DURING });
            }
            let left = Some(left.max(Duration::from_millis(1)));
            tcp.set_read_timeout(left).map_err(ClientError::Io)?;
            tcp.set_write_timeout(left).map_err(ClientError::Io)?;
        }
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(handshake_error(e, host)),
        }
    }
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
}

fn handshake_error(e: io::Error, host: &str) -> ClientError {
    const DURING: &str = "the TLS handshake";
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match tls {
        Some(rustls::Error::InvalidCertificate(error)) => ClientError::Certificate {
            host: host.to_string(),
            check: CertificateCheck::of(&error),
            error,
        },
        Some(error) => ClientError::Tls(error),
        None if super::is_timeout(e.kind()) => ClientError::Timeout { during: DURING },
        None if super::is_lost(e.kind()) => ClientError::ConnectionLost(Some(e)),
        None => ClientError::Io(e),
    }
}

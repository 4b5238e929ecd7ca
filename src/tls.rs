//! TLS (`wss://`) with [rustls](https://docs.rs/rustls) on its `aws-lc-rs` crypto provider
//! (feature `tls`): the server's certificate and key ([`TlsConfig`]), PEM loading shared by
//! the server and the client, and [`Session`], TLS for an event loop (rustls' handshake, then
//! this crate's own records), which the server's TLS listeners use.
//!
//! ```no_run
//! use rfc6455::server::Builder;
//! use rfc6455::tls::TlsConfig;
//! # #[derive(Clone)] struct Echo;
//! # impl rfc6455::server::Handler for Echo {
//! #     fn message(&mut self, _: &mut rfc6455::server::Context<'_>, _: rfc6455::Message<'_>) {}
//! # }
//! let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
//! let server = Builder::new().listen_tls("0.0.0.0:443").tls(tls).bind(Echo)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Why aws-lc-rs (rustls' default provider) and not `ring`: speed where a busy server spends
//! its TLS time, AES-GCM on the records. On this project's machine (a Xeon with AVX-512 and
//! VAES) aws-lc's AES-128-GCM seals a 16 KiB record in 1.18 µs where ring's takes 1.79 µs
//! (1.5×; ring has no AVX-512 code), and `rfc6455 load` c over wss:// runs 1.09× faster. It
//! also brings the post-quantum hybrid key exchange (X25519MLKEM768) that browsers offer
//! first. The cost is build time: aws-lc-sys compiles AWS-LC from C with the `cc` crate (no
//! cmake, Go or NASM on Linux x86-64, where it was measured), about 40 s more than ring on a
//! fresh 2-core machine. The numbers are in the README.

pub use rustls;
pub use session::Session;

#[cfg(any(feature = "client", fuzzing, feature = "__fuzz"))]
mod danger;
mod session;
#[cfg(any(feature = "client", fuzzing, feature = "__fuzz"))]
pub(crate) use danger::AcceptAnything;
use rustls::crypto::aws_lc_rs as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The crypto provider every TLS configuration of this crate uses: aws-lc-rs' with the key
/// exchange groups and the cipher suites in browsers' order.
///
/// Groups X25519MLKEM768 (the post-quantum hybrid), X25519, P-256, P-384, as Chrome and
/// Firefox offer them: rustls 0.23.48 lists P-384 before X25519, and a TLS 1.3 server takes
/// the client's first group it supports, so our client would make every handshake with a
/// server that lacks the hybrid pay for P-384 (with ring, whose P-384 is generic code, ten
/// times the instructions per handshake: benches/LOAD.md). The server's own order does not
/// choose; this changes what our client offers.
///
/// AES-128-GCM first, as browsers order their suites (rustls lists AES-256-GCM first): it is
/// TLS 1.3's mandatory suite and takes 10 rounds a block instead of 14. A rustls server
/// follows the client's order, so this changes what our client offers; on the server under
/// `load` c over wss:// it was 12 % fewer cipher instructions and 6.6 % fewer in all per
/// message (callgrind, benches/LOAD.md).
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use provider::kx_group::{SECP256R1, SECP384R1, X25519, X25519MLKEM768};
    use rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256;
    use rustls::CipherSuite::{TLS13_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256};
    let mut provider = provider::default_provider();
    provider.kx_groups = vec![X25519MLKEM768, X25519, SECP256R1, SECP384R1];
    // A stable sort: the AES-128-GCM suites first, the rest in rustls' order.
    let aes128 = [
        TLS13_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    provider
        .cipher_suites
        .sort_by_key(|suite| !aes128.contains(&suite.suite()));
    Arc::new(provider)
}

/// Reads every certificate of a PEM file (`-----BEGIN CERTIFICATE-----`), in order.
/// Fails with a message naming the file if it cannot be read or holds none.
pub fn load_certs(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let pem = std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read the certificate file {}: {e}", path.display()),
        )
    })?;
    certs_from_pem(&pem).map_err(|e| with_path(e, path))
}

/// Every certificate of a PEM text.
pub fn certs_from_pem(pem: &[u8]) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "no certificate in it (expected -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file: PKCS#8 (`BEGIN PRIVATE KEY`, any of RSA,
/// ECDSA P-256/P-384, Ed25519), PKCS#1 (`BEGIN RSA PRIVATE KEY`) or SEC1
/// (`BEGIN EC PRIVATE KEY`).
pub fn load_private_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    let pem = std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read the key file {}: {e}", path.display()),
        )
    })?;
    private_key_from_pem(&pem).map_err(|e| with_path(e, path))
}

/// The first private key of a PEM text.
pub fn private_key_from_pem(pem: &[u8]) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        invalid(format!(
            "no usable private key in it ({e}; expected BEGIN PRIVATE KEY, BEGIN RSA PRIVATE \
             KEY or BEGIN EC PRIVATE KEY)"
        ))
    })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A certificate chain and its key, checked to belong together.
fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> io::Result<CertifiedKey> {
    CertifiedKey::from_der(certs, key, &crypto_provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            invalid("the private key does not belong to the certificate".into())
        }
        e => invalid(format!("unusable certificate or key: {e}")),
    })
}

/// The server's certificate, swappable while the server runs: every new handshake asks it
/// for the current pair, connections already open keep theirs.
#[derive(Debug)]
struct Certificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// The server side of TLS: a rustls [`ServerConfig`](rustls::ServerConfig) for
/// [`Builder::tls`](crate::server::Builder::tls).
///
/// [`from_pem_files`](Self::from_pem_files) makes the usual one: TLS 1.3 and 1.2 (rustls'
/// safe cipher suites only), ALPN `http/1.1`, session resumption by stateless tickets
/// (shared by every loop thread, so a client resumes whichever thread it lands on) and a
/// session cache for TLS 1.2 clients without tickets. Its certificate can be replaced
/// without a restart: [`reload`](Self::reload) (the server calls it on SIGHUP) reads the
/// files again and, if the new pair is good, new handshakes use it; connections already open
/// are not touched. A bad new pair is refused and the old one kept.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
    /// Set when made from files (so it can reload).
    reload: Option<Arc<Reload>>,
}

struct Reload {
    cert: PathBuf,
    key: PathBuf,
    certificate: Arc<Certificate>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TlsConfig");
        if let Some(reload) = &self.reload {
            d.field("cert", &reload.cert).field("key", &reload.key);
        }
        d.finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads a certificate chain (PEM, leaf first) and its private key (PEM: RSA, ECDSA or
    /// Ed25519) and makes the server configuration. Fails with a message naming the file
    /// and what is wrong with it: unreadable, no certificate, no key, or a key that does
    /// not belong to the certificate.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> io::Result<TlsConfig> {
        let (cert, key) = (cert.as_ref().to_path_buf(), key.as_ref().to_path_buf());
        let pair = certified_key(load_certs(&cert)?, load_private_key(&key)?)?;
        let certificate = Arc::new(Certificate {
            current: RwLock::new(Arc::new(pair)),
        });
        let config = server_config(certificate.clone())?;
        Ok(TlsConfig {
            config,
            reload: Some(Arc::new(Reload {
                cert,
                key,
                certificate,
            })),
        })
    }

    /// The same from PEM text in memory (no reload).
    pub fn from_pem(cert: &[u8], key: &[u8]) -> io::Result<TlsConfig> {
        let pair = certified_key(certs_from_pem(cert)?, private_key_from_pem(key)?)?;
        let certificate = Arc::new(Certificate {
            current: RwLock::new(Arc::new(pair)),
        });
        Ok(TlsConfig {
            config: server_config(certificate)?,
            reload: None,
        })
    }

    /// A rustls configuration of your own (client certificates, other ALPN, another
    /// provider). [`reload`](Self::reload) does nothing with it. The server's [`Session`]s
    /// take the traffic keys over from rustls once each handshake is over, so (in a copy, if
    /// it differs) secret extraction is turned on and 0-RTT data off
    /// (`max_early_data_size = 0`).
    pub fn from_rustls(mut config: Arc<rustls::ServerConfig>) -> TlsConfig {
        if !config.enable_secret_extraction || config.max_early_data_size != 0 {
            let config = Arc::make_mut(&mut config);
            config.enable_secret_extraction = true;
            config.max_early_data_size = 0;
        }
        TlsConfig {
            config,
            reload: None,
        }
    }

    /// The rustls configuration.
    pub fn rustls(&self) -> &Arc<rustls::ServerConfig> {
        &self.config
    }

    /// Reads the certificate and key files again; if they make a good pair, new handshakes
    /// use it from now on. On any error the current pair stays. Returns the files read, for
    /// a log line; `Ok(None)` when this configuration was not made from files.
    pub fn reload(&self) -> io::Result<Option<(&Path, &Path)>> {
        let Some(reload) = &self.reload else {
            return Ok(None);
        };
        let pair = certified_key(load_certs(&reload.cert)?, load_private_key(&reload.key)?)?;
        *reload
            .certificate
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
        Ok(Some((&reload.cert, &reload.key)))
    }
}

fn server_config(certificate: Arc<Certificate>) -> io::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| invalid(format!("TLS configuration: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // `Session` takes the traffic keys over from rustls after the handshake.
    config.enable_secret_extraction = true;
    config.ticketer =
        provider::Ticketer::new().map_err(|e| invalid(format!("TLS session tickets: {e}")))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(Arc::new(config))
}

/// What one [`Session::read`] handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plaintext {
    /// Bytes of plaintext at the start of `buf`; 0 at the end of the stream (the peer's
    /// close_notify or TCP EOF).
    pub len: usize,
    /// This call's socket read came back short (the socket was empty) and every record
    /// decrypted so far is handed out: under edge-triggered readiness (epoll and kqueue, as
    /// mio uses them) bytes arriving later raise a new event, so the caller can wait for it
    /// instead of reading again only to learn `WouldBlock`. Never set at the end of the
    /// stream, which a caller sees by reading on.
    pub drained: bool,
}

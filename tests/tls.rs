//! wss:// end to end over real sockets on 127.0.0.1: the mio server's TLS listeners with our
//! client and with tungstenite over a rustls stream (a client no one here wrote), plain HTTP
//! to the TLS port, a stalled TLS handshake, the certificate checks that must fail (expired,
//! wrong name, unknown CA) each with its own error, and reloading the certificate.
//! Certificates are made at test time with rcgen (RSA from a fixed key in tests/data, which
//! is faster than generating one).
#![cfg(all(feature = "tls", feature = "server", feature = "client"))]

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair,
    SignatureAlgorithm,
};
use rfc6455::client::{CertificateCheck, Client, ClientError, ConnectOptions};
use rfc6455::server::{Builder, Context, Handle, Handler, Timeouts};
use rfc6455::tls::rustls;
use rfc6455::tls::{Session, TlsConfig};
use rfc6455::{CloseCode, Event, Message};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct Echo;

impl Handler for Echo {
    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let _ = ctx.send(message);
    }
}

/// A test CA and what it signs.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn der(&self) -> rustls::pki_types::CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf for `names` (DNS names or IP addresses), signed by this CA: (cert PEM, key PEM).
    fn leaf(&self, names: &[&str], key: KeyPair, expired: bool) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn ecdsa() -> KeyPair {
    KeyPair::generate().unwrap()
}

fn key_for(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).unwrap()
}

fn rsa() -> KeyPair {
    KeyPair::from_pem_and_sign_algo(
        include_str!("data/rsa2048.pkcs8.pem"),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap()
}

/// The same RSA key as PKCS#1 (`BEGIN RSA PRIVATE KEY`), as older tools write it.
const RSA_PKCS1: &str = include_str!("data/rsa2048.pkcs1.pem");

/// A fresh directory for certificate files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rfc6455-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a pair to files and returns their paths.
fn write_pair(dir: &std::path::Path, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

/// A running echo server with one TLS listener (and one plain one): (tls addr, plain addr,
/// handle).
fn serve(tls: TlsConfig, timeouts: Timeouts) -> (SocketAddr, SocketAddr, Handle) {
    let server = Builder::new()
        .listen("127.0.0.1:0")
        .listen_tls("127.0.0.1:0")
        .tls(tls)
        .threads(2)
        .timeouts(timeouts)
        .shutdown_on_signals(false)
        .bind(Echo)
        .unwrap();
    let plain = server.local_addrs()[0];
    let secure = server.tls_addrs()[0];
    assert_eq!(server.local_addrs()[1], secure);
    let handle = server.handle();
    std::thread::spawn(move || server.run().unwrap());
    (secure, plain, handle)
}

fn trusting(ca: &Ca) -> ConnectOptions {
    ConnectOptions::default()
        .ca(vec![ca.der()])
        .read_timeout(Some(BOUND))
        .connect_timeout(Some(BOUND))
}

fn echo_round_trips(client: &mut Client) {
    client.send_text("hello over TLS").unwrap();
    match client.recv().unwrap() {
        Event::Message(Message::Text(t)) => assert_eq!(t, "hello over TLS"),
        other => panic!("{other:?}"),
    }
    // Larger than rustls' buffer limit and a TLS record, both ways.
    let big: Vec<u8> = (0..3 << 20).map(|i| (i * 7 % 251) as u8).collect();
    client.send_binary(&big).unwrap();
    match client.recv().unwrap() {
        Event::Message(Message::Binary(b)) => assert!(b[..] == big[..], "echo differs"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn our_client_echoes_over_wss_with_ecdsa_ed25519_and_rsa_keys() {
    let ca = Ca::new("test CA");
    for (name, key) in [
        ("ecdsa", ecdsa()),
        ("ed25519", key_for(&rcgen::PKCS_ED25519)),
        ("rsa", rsa()),
    ] {
        let dir = temp_dir(name);
        let rsa = name == "rsa";
        let (cert, mut key) = ca.leaf(&["localhost", "127.0.0.1"], key, false);
        if rsa {
            key = RSA_PKCS1.to_string();
        }
        let (cert, key) = write_pair(&dir, &(cert, key));
        let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
        let (secure, plain, handle) = serve(tls, Timeouts::default());
        for host in ["localhost", "127.0.0.1"] {
            let url = format!("wss://{host}:{}/", secure.port());
            let mut client = Client::connect_with(&url, &trusting(&ca)).unwrap();
            assert!(client.is_tls());
            echo_round_trips(&mut client);
            let reply = client.close(CloseCode::NORMAL, "bye").unwrap();
            assert_eq!(
                reply.map(|f| f.code),
                Some(CloseCode::NORMAL),
                "{name} {host}"
            );
        }
        // The plain listener beside it still speaks ws://.
        let mut client = Client::connect_with(&format!("ws://{plain}/"), &trusting(&ca)).unwrap();
        assert!(!client.is_tls());
        echo_round_trips(&mut client);
        handle.shutdown();
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// rustls' default provider, aws-lc-rs, as it comes.
fn stock_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls client configuration trusting `ca`, for clients that are not ours.
fn rustls_client(ca: &Ca) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let provider = stock_provider();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[test]
fn tungstenite_over_rustls_echoes_over_wss_with_tls12_and_tls13() {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), false);
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
        Timeouts::default(),
    );
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der()).unwrap();
        let provider = stock_provider();
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = "localhost".try_into().unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(secure).unwrap();
        tcp.set_read_timeout(Some(BOUND)).unwrap();
        let tls = rustls::StreamOwned::new(conn, tcp);
        let url = format!("wss://localhost:{}/", secure.port());
        let (mut ws, _) = tungstenite::client(url.as_str(), tls).unwrap();
        let negotiated = ws.get_ref().conn.protocol_version();
        assert_eq!(negotiated, Some(version.version));
        assert_eq!(ws.get_ref().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        ws.send(tungstenite::Message::text("from tungstenite"))
            .unwrap();
        assert_eq!(
            ws.read().unwrap(),
            tungstenite::Message::text("from tungstenite")
        );
        let big = vec![0x5a; 1 << 20];
        ws.send(tungstenite::Message::binary(big.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::binary(big));
        ws.close(None).unwrap();
        loop {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    handle.shutdown();
}

/// Our client's configuration offers the post-quantum hybrid X25519MLKEM768 first, then
/// X25519 (never P-384 first: ten times the instructions per handshake with ring, see
/// benches/LOAD.md), as browsers do, and our server takes it; and AES-128-GCM.
#[test]
fn our_client_and_server_agree_on_x25519mlkem768_and_aes_128_gcm() {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), false);
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
        Timeouts::default(),
    );
    let config = trusting(&ca).with_shared_tls().unwrap().tls_config.unwrap();
    let groups: Vec<_> = config
        .crypto_provider()
        .kx_groups
        .iter()
        .map(|g| g.name())
        .collect();
    assert_eq!(
        groups[..2],
        [
            rustls::NamedGroup::X25519MLKEM768,
            rustls::NamedGroup::X25519
        ]
    );
    let mut conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let mut tcp = TcpStream::connect(secure).unwrap();
    tcp.set_read_timeout(Some(BOUND)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let group = conn.negotiated_key_exchange_group().map(|g| g.name());
    assert_eq!(group, Some(rustls::NamedGroup::X25519MLKEM768));
    // And AES-128-GCM, browsers' first choice (rustls lists AES-256-GCM first).
    let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
    assert_eq!(suite, Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
    handle.shutdown();
}

#[test]
fn tls_sessions_resume() {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), false);
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
        Timeouts::default(),
    );
    let config = rustls_client(&ca);
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let name = "localhost".try_into().unwrap();
        let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let mut tcp = TcpStream::connect(secure).unwrap();
        tcp.set_read_timeout(Some(BOUND)).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        // TLS 1.3 tickets come after the handshake: read them (a request, then the 400
        // answer) so the next connection can resume.
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 4"), "{answer:?}");
        kinds.push(conn.handshake_kind());
    }
    assert_eq!(kinds[0], Some(rustls::HandshakeKind::Full));
    assert_eq!(kinds[1], Some(rustls::HandshakeKind::Resumed), "{kinds:?}");
    assert_eq!(kinds[2], Some(rustls::HandshakeKind::Resumed), "{kinds:?}");
    handle.shutdown();
}

#[test]
fn plain_http_to_the_tls_port_gets_a_400_and_a_clean_close() {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), false);
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
        Timeouts::default(),
    );
    let mut tcp = TcpStream::connect(secure).unwrap();
    tcp.set_read_timeout(Some(BOUND)).unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    // Everything up to a FIN, not a reset: read_to_end fails on ECONNRESET.
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer)
        .expect("a clean close (FIN), not a reset");
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("TLS"), "{answer}");

    // Garbage that is not HTTP either: a TLS alert, then a clean close.
    let mut tcp = TcpStream::connect(secure).unwrap();
    tcp.set_read_timeout(Some(BOUND)).unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer)
        .expect("a clean close (FIN), not a reset");
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "a TLS alert record: {answer:?}"
    );
    handle.shutdown();
}

#[test]
fn a_stalled_tls_handshake_is_dropped_by_the_handshake_timeout_and_blocks_no_one() {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), false);
    let mut timeouts = Timeouts::default();
    timeouts.handshake = Duration::from_millis(500);
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
        timeouts,
    );
    // Half a ClientHello: a record header promising 512 bytes, and 3 of them. One server
    // thread would be stuck forever if the handshake blocked.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut tcp = TcpStream::connect(secure).unwrap();
        tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
            .unwrap();
        tcp.set_read_timeout(Some(BOUND)).unwrap();
        stalled.push(tcp);
    }
    let started = Instant::now();
    // Others get through meanwhile (both loop threads hold stalled connections).
    for _ in 0..4 {
        let url = format!("wss://localhost:{}/", secure.port());
        let mut client = Client::connect_with(&url, &trusting(&ca)).unwrap();
        client.send_text("still served").unwrap();
        assert!(matches!(client.recv().unwrap(), Event::Message(_)));
    }
    for mut tcp in stalled {
        let mut rest = Vec::new();
        // Dropped: EOF (or a reset, which is as good: the peer never finished a record).
        let _ = tcp.read_to_end(&mut rest);
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(5), "dropped after {waited:?}");
    }
    handle.shutdown();
}

fn connect_error(url: &str, options: &ConnectOptions) -> ClientError {
    Client::connect_with(url, options).expect_err("the certificate must not verify")
}

#[test]
fn certificates_that_do_not_verify_fail_with_the_check_that_failed() {
    let ca = Ca::new("test CA");
    // Expired.
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), true);
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
        Timeouts::default(),
    );
    let url = format!("wss://localhost:{}/", secure.port());
    let err = connect_error(&url, &trusting(&ca));
    match &err {
        ClientError::Certificate { check, host, .. } => {
            assert_eq!(*check, CertificateCheck::Expired, "{err}");
            assert_eq!(host, "localhost");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("expired"), "{err}");
    handle.shutdown();

    // For another name.
    let (cert, key) = ca.leaf(&["example.com"], ecdsa(), false);
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
        Timeouts::default(),
    );
    let url = format!("wss://localhost:{}/", secure.port());
    let err = connect_error(&url, &trusting(&ca));
    assert!(
        matches!(
            err,
            ClientError::Certificate {
                check: CertificateCheck::WrongName,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("another name"), "{err}");

    // Signed by a CA the client does not trust; and by default (the webpki roots) a test CA
    // is unknown too.
    let other = Ca::new("another CA");
    let (cert, key) = other.leaf(&["localhost"], ecdsa(), false);
    handle.shutdown();
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
        Timeouts::default(),
    );
    let url = format!("wss://localhost:{}/", secure.port());
    for options in [trusting(&ca), ConnectOptions::default()] {
        let err = connect_error(&url, &options);
        assert!(
            matches!(
                err,
                ClientError::Certificate {
                    check: CertificateCheck::UnknownIssuer,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("issuer is unknown"), "{err}");
    }

    // A CA certificate used as the server's own (what a bare `openssl req -x509` makes): a
    // check rustls only names, explained.
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = ecdsa();
    let self_signed = params.self_signed(&key).unwrap();
    handle.shutdown();
    let (secure, _, handle) = serve(
        TlsConfig::from_pem(self_signed.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap(),
        Timeouts::default(),
    );
    let url = format!("wss://localhost:{}/", secure.port());
    let options = ConnectOptions::default().ca(vec![self_signed.der().clone()]);
    let err = connect_error(&url, &options);
    assert!(
        matches!(
            err,
            ClientError::Certificate {
                check: CertificateCheck::Other,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("leaf certificate"), "{err}");

    // Only the loudly named option gets through, and then it is TLS all the same.
    let options = ConnectOptions::default().danger_accept_invalid_certs(true);
    let mut client = Client::connect_with(&url, &options).unwrap();
    assert!(client.is_tls());
    echo_round_trips(&mut client);
    handle.shutdown();
}

#[test]
fn a_reload_replaces_the_certificate_for_new_handshakes_and_keeps_open_connections() {
    let first = Ca::new("first CA");
    let second = Ca::new("second CA");
    let dir = temp_dir("reload");
    let (cert, key) = write_pair(&dir, &first.leaf(&["localhost"], ecdsa(), false));
    let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
    let (secure, _, handle) = serve(tls.clone(), Timeouts::default());
    let url = format!("wss://localhost:{}/", secure.port());
    let mut live = Client::connect_with(&url, &trusting(&first)).unwrap();

    write_pair(&dir, &second.leaf(&["localhost"], ecdsa(), false));
    assert_eq!(tls.reload().unwrap(), Some((cert.as_path(), key.as_path())));
    let mut fresh = Client::connect_with(&url, &trusting(&second)).unwrap();
    echo_round_trips(&mut fresh);
    echo_round_trips(&mut live);

    // A bad pair (the key of another certificate) is refused; the second stays.
    let (_, other_key) = second.leaf(&["localhost"], ecdsa(), false);
    std::fs::write(&key, other_key).unwrap();
    let err = tls.reload().unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    std::fs::write(&cert, "not a certificate").unwrap();
    let err = tls.reload().unwrap_err();
    assert!(err.to_string().contains("no certificate"), "{err}");
    Client::connect_with(&url, &trusting(&second)).unwrap();
    echo_round_trips(&mut live);
    handle.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tls_config_errors_name_the_file_and_the_problem() {
    let dir = temp_dir("errors");
    let missing = dir.join("missing.pem");
    let err = TlsConfig::from_pem_files(&missing, &missing).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let ca = Ca::new("CA");
    let (cert, _) = ca.leaf(&["localhost"], ecdsa(), false);
    let (c, k) = write_pair(&dir, &(cert.clone(), cert));
    let err = TlsConfig::from_pem_files(&c, &k).unwrap_err();
    assert!(err.to_string().contains("no usable private key"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A reader over bytes that counts its reads (those that say `WouldBlock` too); `WouldBlock`
/// once they are all read.
struct Counted<'a> {
    bytes: &'a [u8],
    reads: usize,
}

impl<'a> Counted<'a> {
    fn new(bytes: &'a [u8]) -> Counted<'a> {
        Counted { bytes, reads: 0 }
    }
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads += 1;
        if self.bytes.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// A reader over bytes, then the end of the stream (a TCP FIN): 0.
struct ThenFin<'a>(&'a [u8]);

impl Read for ThenFin<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// What a rustls connection has to send, as bytes.
fn flight<D>(conn: &mut rustls::ConnectionCommon<D>) -> Vec<u8> {
    let mut wire = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut wire).unwrap();
    }
    wire
}

/// What a session has to send, as bytes.
fn session_flight(session: &mut Session) -> Vec<u8> {
    let mut wire = Vec::new();
    assert!(session.write_records(&mut wire).unwrap());
    wire
}

/// Feeds `wire` to a rustls connection: the plaintext it gave, or its error.
fn feed<D>(conn: &mut rustls::ConnectionCommon<D>, wire: &[u8]) -> Result<Vec<u8>, rustls::Error> {
    let mut wire = wire;
    let mut plain = Vec::new();
    while !wire.is_empty() {
        conn.read_tls(&mut wire).unwrap();
        conn.process_new_packets()?;
        let _ = conn.reader().read_to_end(&mut plain);
    }
    Ok(plain)
}

/// A provider whose only cipher suite is `suite`.
fn only(suite: rustls::CipherSuite) -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.retain(|s| s.suite() == suite);
    Arc::new(provider)
}

/// A server `Session` and a rustls client (not ours) through the handshake in memory, on
/// `suite` (TLS 1.3 or 1.2, as the suite is).
fn session_and_client(suite: rustls::CipherSuite) -> (Session, rustls::ClientConnection) {
    let (mut session, mut client) = session_and_client_before_finished(suite);
    let wire = flight(&mut client);
    let mut socket = Counted::new(&wire);
    let mut buf = vec![0u8; 1024];
    match session.read(&mut socket, &mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("plaintext with the Finished: {other:?}"),
    }
    feed(&mut client, &session_flight(&mut session)).unwrap();
    assert!(!session.is_handshaking(), "the handshake did not complete");
    (session, client)
}

/// The same, up to the client's last flight (its Finished), which is left queued in the
/// client: what the test queues next travels with it.
fn session_and_client_before_finished(
    suite: rustls::CipherSuite,
) -> (Session, rustls::ClientConnection) {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), false);
    let config = TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let mut session = Session::server(config.rustls().clone()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let mut client_config = rustls::ClientConfig::builder_with_provider(only(suite))
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // For the tests that seal records by hand with the client's keys.
    client_config.enable_secret_extraction = true;
    let name = "localhost".try_into().unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..10 {
        let wire = flight(&mut client);
        let mut socket = Counted::new(&wire);
        match session.read(&mut socket, &mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("plaintext during the handshake: {other:?}"),
        }
        feed(&mut client, &session_flight(&mut session)).unwrap();
        if !client.is_handshaking() {
            break;
        }
    }
    assert!(
        !client.is_handshaking(),
        "the client's handshake did not complete"
    );
    assert_eq!(client.negotiated_cipher_suite().unwrap().suite(), suite);
    (session, client)
}

/// Reads everything `socket` holds through `session`.
fn read_all(session: &mut Session, socket: &mut Counted<'_>, buf: &mut [u8]) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        match session.read(socket, buf) {
            Ok(read) if read.len == 0 => break,
            Ok(read) => got.extend_from_slice(&buf[..read.len]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("after {} bytes: {e}", got.len()),
        }
    }
    got
}

/// Our records against rustls' own in both directions, in every suite of both versions:
/// 300,000 bytes from a rustls client come out of the session byte for byte, in socket reads
/// of up to 64 KiB (rustls' `read_tls` takes 4 KiB), opened straight into the caller's buffer
/// and (a buffer smaller than a record) in place and handed out in pieces; 300,000 bytes
/// sealed by the session from pairs of slices come out of the client, in records gathered
/// from both slices and in records sealed from one; close_notify each way.
#[test]
fn session_records_agree_with_rustls_in_every_suite() {
    use rustls::CipherSuite::*;
    let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for suite in [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ] {
        let (mut session, mut client) = session_and_client(suite);
        client.set_buffer_limit(None);
        for room in [64 * 1024, 1000] {
            let mut buf = vec![0u8; room];
            client.writer().write_all(&sent).unwrap();
            let wire = flight(&mut client);
            let mut socket = Counted::new(&wire);
            let got = read_all(&mut session, &mut socket, &mut buf);
            assert!(
                got == sent,
                "{suite:?}, {room}-byte buffer: {} bytes, not what was sent",
                got.len()
            );
            if room == 64 * 1024 {
                let most = wire.len().div_ceil(44 * 1024) + 2;
                assert!(
                    socket.reads <= most,
                    "{suite:?}: {} socket reads for {} bytes",
                    socket.reads,
                    wire.len()
                );
            }
        }
        let mut buf = vec![0u8; 64 * 1024];

        // Sealed from two slices at a time (a frame header and its payload, as the server
        // writes them), up to 64 KiB a call: 3 bytes and the rest (the first record gathered
        // from both), then 4 bytes and 16 KiB (two records either way: one from each slice).
        for head in [3, 4] {
            let mut written = 0;
            let mut wire = Vec::new();
            while written < sent.len() {
                let rest = &sent[written..];
                let (a, b) = rest.split_at(rest.len().min(head));
                let b = match head {
                    3 => b,
                    _ => &b[..b.len().min(16 * 1024)],
                };
                let slices = [std::io::IoSlice::new(a), std::io::IoSlice::new(b)];
                written += session.write_vectored(&slices).unwrap();
                wire.extend_from_slice(&session_flight(&mut session));
            }
            let back = feed(&mut client, &wire).unwrap();
            assert!(
                back == sent,
                "{suite:?}, {head}-byte heads: the client read {} bytes, not ours",
                back.len()
            );
        }

        session.send_close_notify();
        feed(&mut client, &session_flight(&mut session)).unwrap();
        let mut rest = Vec::new();
        assert_eq!(
            client.reader().read_to_end(&mut rest).unwrap(),
            0,
            "{suite:?}"
        );
        client.send_close_notify();
        let wire = flight(&mut client);
        let mut socket = Counted::new(&wire);
        assert_eq!(
            session.read(&mut socket, &mut buf).unwrap().len,
            0,
            "{suite:?}"
        );
    }
}

/// A short socket read with every record handed out says the socket is empty
/// (`Plaintext::drained`), so that the server and the load tool skip the read that would only
/// say `WouldBlock` (one syscall per echo); a read that filled its room does not say so.
#[test]
fn session_says_when_the_socket_is_empty() {
    let (mut session, mut client) =
        session_and_client(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    client.writer().write_all(b"hello").unwrap();
    let wire = flight(&mut client);
    let mut socket = Counted::new(&wire);
    let read = session.read(&mut socket, &mut buf).unwrap();
    assert_eq!(&buf[..read.len], b"hello");
    assert!(read.drained, "one short read of a whole record: {read:?}");
    assert_eq!(socket.reads, 1);

    client.writer().write_all(&[7u8; 1000]).unwrap();
    let wire = flight(&mut client);
    let mut socket = Counted::new(&wire[..500]);
    match session.read(&mut socket, &mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("half a record: {other:?}"),
    }
    // Read again (a FIN may wait behind half a record: see the next test).
    assert_eq!(socket.reads, 2, "half a record");
    let mut socket = Counted::new(&wire[500..]);
    let read = session.read(&mut socket, &mut buf).unwrap();
    assert_eq!(&buf[..read.len], &[7u8; 1000][..]);
    assert!(read.drained, "the rest of the record: {read:?}");
    assert_eq!(socket.reads, 1);

    // More ciphertext than one read takes (64 KiB): not drained.
    client.set_buffer_limit(None);
    client.writer().write_all(&[1u8; 100_000]).unwrap();
    let wire = flight(&mut client);
    let mut socket = Counted::new(&wire);
    let read = session.read(&mut socket, &mut buf).unwrap();
    assert!(read.len > 0 && !read.drained, "a full read: {read:?}");
    let got = read.len + read_all(&mut session, &mut socket, &mut buf).len();
    assert_eq!(got, 100_000);
}

/// Half a record and then the peer's FIN, all there at one event: the end of the stream is
/// seen (a caller draining to the end after an event that reported the FIN gets no further
/// event), not `WouldBlock`.
#[test]
fn session_sees_a_fin_behind_half_a_record() {
    let (mut session, mut client) =
        session_and_client(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    client.writer().write_all(&[7u8; 1000]).unwrap();
    let wire = flight(&mut client);
    let mut socket = ThenFin(&wire[..500]);
    match session.read(&mut socket, &mut buf) {
        Ok(read) if read.len == 0 => {}
        other => panic!("half a record, then FIN: {other:?}"),
    }
}

/// The peer's close_notify with more bytes behind it in the same read ends the stream: the
/// plaintext before it is handed out, the bytes after it dropped, and the call returns.
#[test]
fn session_returns_after_close_notify_and_junk() {
    let (mut session, mut client) =
        session_and_client(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    client.writer().write_all(b"last words").unwrap();
    client.send_close_notify();
    let mut wire = flight(&mut client);
    wire.extend_from_slice(&[0x17; 8192]);
    let mut socket = Counted::new(&wire);
    let read = session.read(&mut socket, &mut buf).unwrap();
    assert_eq!(&buf[..read.len], b"last words");
    assert_eq!(session.read(&mut socket, &mut buf).unwrap().len, 0);
}

/// The client asks for a KeyUpdate and sends data under its new key; the session reads it,
/// answers, and its next data is read by the client.
fn key_update_both_ways(session: &mut Session, client: &mut rustls::ClientConnection) {
    let mut buf = vec![0u8; 64 * 1024];
    client.refresh_traffic_keys().unwrap();
    client.writer().write_all(b"under the new key").unwrap();
    let wire = flight(client);
    let mut socket = Counted::new(&wire);
    assert_eq!(
        read_all(session, &mut socket, &mut buf),
        b"under the new key"
    );
    session
        .write_vectored(&[std::io::IoSlice::new(b"our answer")])
        .unwrap();
    let back = feed(client, &session_flight(session)).unwrap();
    assert_eq!(back, b"our answer");
}

/// TLS 1.3 KeyUpdate both ways: the client asks for one (update_requested); the session moves
/// to the client's next key, answers with its own and moves too; data flows both ways after.
#[test]
fn session_follows_and_answers_a_key_update() {
    let (mut session, mut client) =
        session_and_client(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    key_update_both_ways(&mut session, &mut client);
    // And the client's key after that one.
    client.refresh_traffic_keys().unwrap();
    client.writer().write_all(b"again").unwrap();
    let wire = flight(&mut client);
    let mut socket = Counted::new(&wire);
    assert_eq!(read_all(&mut session, &mut socket, &mut buf), b"again");
}

/// Bad records fail with their alert, which the peer receives: a flipped byte
/// (bad_record_mac), a length over the limit (record_overflow), a record type TLS 1.3 does
/// not allow after the handshake (unexpected_message).
#[test]
fn session_refuses_bad_records_with_their_alert() {
    type Alert = rustls::AlertDescription;
    type Spoil = fn(&mut Vec<u8>);
    let cases: [(&str, Spoil, Alert); 3] = [
        (
            "flipped",
            |w| *w.last_mut().unwrap() ^= 1,
            Alert::BadRecordMac,
        ),
        (
            "oversized",
            |w| w[3..5].copy_from_slice(&[0x41, 0x01]),
            Alert::RecordOverflow,
        ),
        ("handshake type", |w| w[0] = 22, Alert::UnexpectedMessage),
    ];
    for (name, spoil, alert) in cases {
        let (mut session, mut client) =
            session_and_client(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        client.writer().write_all(b"a message").unwrap();
        let mut wire = flight(&mut client);
        spoil(&mut wire);
        let mut socket = Counted::new(&wire);
        match session.read(&mut socket, &mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {}
            other => panic!("{name}: {other:?}"),
        }
        match feed(&mut client, &session_flight(&mut session)) {
            Err(rustls::Error::AlertReceived(got)) => assert_eq!(got, alert, "{name}"),
            other => panic!("{name}: the client got {other:?}"),
        }
    }
}

/// Our `Session` as a client (the load tool's) against a rustls server: it keeps the session
/// tickets the server sends after the handshake (read on our record path), and the next
/// connection with the same configuration resumes.
#[test]
fn client_session_keeps_tickets_and_resumes() {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), false);
    let server_config = TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let mut client_config = (*rustls_client(&ca)).clone();
    client_config.enable_secret_extraction = true;
    let client_config = Arc::new(client_config);
    let mut buf = vec![0u8; 64 * 1024];
    for round in 0..2 {
        let mut server = rustls::ServerConnection::new(server_config.rustls().clone()).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut session = Session::client(client_config.clone(), name).unwrap();
        for _ in 0..10 {
            feed(&mut server, &session_flight(&mut session)).unwrap();
            let wire = flight(&mut server);
            let mut socket = Counted::new(&wire);
            let _ = read_all(&mut session, &mut socket, &mut buf);
            if !session.is_handshaking() && !server.is_handshaking() {
                break;
            }
        }
        feed(&mut server, &session_flight(&mut session)).unwrap();
        assert!(
            !session.is_handshaking(),
            "round {round}: the handshake did not complete"
        );
        assert_eq!(session.resumed(), round == 1, "round {round}");
        // Data both ways, and the tickets the server sends now.
        server.writer().write_all(b"from the server").unwrap();
        let wire = flight(&mut server);
        let mut socket = Counted::new(&wire);
        assert_eq!(
            read_all(&mut session, &mut socket, &mut buf),
            b"from the server"
        );
        session
            .write_vectored(&[std::io::IoSlice::new(b"from the client")])
            .unwrap();
        let got = feed(&mut server, &session_flight(&mut session)).unwrap();
        assert_eq!(got, b"from the client");
    }
}

/// A peer sending records that carry no data without end (here key updates, each of which
/// costs the session a key derivation) is refused after 64 in a row, as rustls refuses it;
/// a few are fine.
#[test]
fn session_refuses_endless_key_updates() {
    let (mut session, mut client) =
        session_and_client(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    for round in 0..2 {
        let updates = if round == 0 { 3 } else { 80 };
        let mut wire = Vec::new();
        for _ in 0..updates {
            client.refresh_traffic_keys().unwrap();
            wire.extend_from_slice(&flight(&mut client));
        }
        if round == 0 {
            client.writer().write_all(b"still here").unwrap();
            wire.extend_from_slice(&flight(&mut client));
        }
        let mut socket = Counted::new(&wire);
        let mut got = Vec::new();
        let end = loop {
            match session.read(&mut socket, &mut buf) {
                Ok(read) if read.len == 0 => break Ok(()),
                Ok(read) => got.extend_from_slice(&buf[..read.len]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e.kind()),
            }
        };
        if round == 0 {
            assert_eq!(got, b"still here");
            assert_eq!(end, Err(std::io::ErrorKind::WouldBlock));
        } else {
            assert_eq!(end, Err(std::io::ErrorKind::InvalidData), "80 key updates");
        }
    }
}

/// Damaged input after the handshake never panics and never hangs: valid records from a
/// rustls client with bytes flipped, cut, repeated or inserted (a fixed seed, 300 cases)
/// end in plaintext, `WouldBlock`, the end of the stream or an `InvalidData` error.
#[test]
fn session_survives_damaged_records() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for case in 0..300 {
        let (mut session, mut client) =
            session_and_client(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        client.set_buffer_limit(None);
        let len = (next() % 40_000) as usize;
        client.writer().write_all(&vec![b'z'; len]).unwrap();
        if next() % 3 == 0 {
            client.refresh_traffic_keys().unwrap();
            client.writer().write_all(b"after").unwrap();
        }
        let mut wire = flight(&mut client);
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % wire.len().max(1);
            match next() % 4 {
                0 => wire[at] ^= 1 << (next() % 8),
                1 => wire.truncate(at),
                2 => {
                    let piece = wire[at..].iter().take(64).copied().collect::<Vec<_>>();
                    wire.extend_from_slice(&piece);
                }
                _ => wire.insert(at, next() as u8),
            }
        }
        let mut socket = Counted::new(&wire);
        let mut buf = vec![0u8; 1 + (next() % 70_000) as usize];
        for _ in 0..10_000 {
            match session.read(&mut socket, &mut buf) {
                Ok(read) if read.len == 0 => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => break,
                Err(e) => panic!("case {case}: {e}"),
            }
        }
        let mut out = Vec::new();
        let _ = session.write_records(&mut out);
    }
}

/// What the client sends right behind its Finished, in the same read, is the session's to
/// open, not rustls': a request and then close_notify (the request is handed out, then the
/// end); a KeyUpdate asking for ours and data (the data is handed out, our answer and our
/// next data are under keys the client follows).
#[test]
fn session_opens_what_comes_with_the_finished() {
    let suite = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;
    let mut buf = vec![0u8; 64 * 1024];

    let (mut session, mut client) = session_and_client_before_finished(suite);
    client.writer().write_all(b"a request").unwrap();
    client.send_close_notify();
    let wire = flight(&mut client);
    let mut socket = Counted::new(&wire);
    let mut got = Vec::new();
    let end = loop {
        match session.read(&mut socket, &mut buf) {
            Ok(read) if read.len == 0 => break true,
            Ok(read) => got.extend_from_slice(&buf[..read.len]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(got, b"a request");
    assert!(end, "close_notify behind the request was not seen");
    assert!(!session.is_handshaking());

    let (mut session, mut client) = session_and_client_before_finished(suite);
    key_update_both_ways(&mut session, &mut client);
}

/// A small deterministic generator for the randomised tests below.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.below(256) as u8).collect()
    }
}

/// A socket that takes at most `cap` bytes per write and `budget` in all, then says
/// `WouldBlock`, keeping what it took.
struct Trickle {
    wire: Vec<u8>,
    cap: usize,
    budget: usize,
}

impl Write for Trickle {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(self.cap).min(self.budget);
        if n == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        self.wire.extend_from_slice(&b[..n]);
        self.budget -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Random traffic both ways in four suites, two sessions on one thread (they share its spare
/// outgoing buffer): 1-4 slices of sizes around the record limit sealed per round, the socket
/// taking part of them and more written while records wait; the client's messages, with key
/// updates, read through buffers from 1 byte to 64 KiB. Every byte arrives, in order.
#[test]
fn session_random_slices_partial_writes_and_buffers() {
    use rustls::CipherSuite::*;
    let sizes = [
        0, 1, 2, 3, 4, 5, 100, 1000, 16383, 16384, 16385, 16387, 20000, 32767, 32768, 32769, 40000,
    ];
    let rooms = [1, 7, 100, 16383, 16384, 16385, 16401, 17000, 65536];
    for (seed, suite) in [
        TLS13_AES_128_GCM_SHA256,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = Lcg(seed as u64 + 7);
        let mut pairs = [session_and_client(suite), session_and_client(suite)];
        for (_, client) in pairs.iter_mut() {
            client.set_buffer_limit(None);
        }
        let tls13 = matches!(
            suite,
            TLS13_AES_128_GCM_SHA256 | TLS13_CHACHA20_POLY1305_SHA256
        );
        for round in 0..300 {
            let (session, client) = &mut pairs[rng.below(2)];
            // Session to client.
            let data: Vec<Vec<u8>> = (0..1 + rng.below(4))
                .map(|_| {
                    let len = sizes[rng.below(sizes.len())];
                    rng.bytes(len)
                })
                .collect();
            let slices: Vec<_> = data.iter().map(|d| std::io::IoSlice::new(d)).collect();
            let mut expect = Vec::new();
            match session.write_vectored(&slices) {
                Ok(k) => expect.extend_from_slice(&data.concat()[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            let mut socket = Trickle {
                wire: Vec::new(),
                cap: 1 + rng.below(9000),
                budget: rng.below(70000),
            };
            let all_went = session.write_records(&mut socket).unwrap();
            let mut wire = socket.wire;
            if !all_went || rng.below(2) == 0 {
                // More written while records wait.
                let len = rng.below(20000);
                let extra = rng.bytes(len);
                let both = [std::io::IoSlice::new(b"hd"), std::io::IoSlice::new(&extra)];
                let k = match session.write_vectored(&both) {
                    Ok(k) => k,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                    Err(e) => panic!("{e}"),
                };
                expect.extend_from_slice(&[&b"hd"[..], &extra].concat()[..k]);
                wire.extend_from_slice(&session_flight(session));
            }
            let back = feed(client, &wire).unwrap_or_else(|e| panic!("{suite:?} {round}: {e}"));
            assert!(
                back == expect,
                "{suite:?} round {round}: {} bytes, not the {} sent",
                back.len(),
                expect.len()
            );
            // Client to session.
            if tls13 && rng.below(4) == 0 {
                client.refresh_traffic_keys().unwrap();
            }
            let mut sent = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let len = sizes[rng.below(sizes.len())];
                let d = rng.bytes(len);
                client.writer().write_all(&d).unwrap();
                sent.extend_from_slice(&d);
            }
            let wire = flight(client);
            let mut socket = Counted::new(&wire);
            let room = rooms[rng.below(rooms.len())];
            let got = read_all(session, &mut socket, &mut vec![0u8; room]);
            assert!(
                got == sent,
                "{suite:?} round {round}, {room}-byte buffer: {} bytes, not the {} sent",
                got.len(),
                sent.len()
            );
            if session.wants_write() {
                // The answer to a key update: no data.
                assert!(feed(client, &session_flight(session)).unwrap().is_empty());
            }
        }
    }
}

/// A TLS 1.3 record sealed by hand with the client's key: `content`, the inner type `kind`,
/// then `pad` zeros (RFC 8446 §5.4; rustls never pads).
fn seal13(key: &LessSafeKey, iv: &[u8], seq: u64, content: &[u8], kind: u8, pad: usize) -> Vec<u8> {
    let mut inner = content.to_vec();
    inner.push(kind);
    inner.resize(inner.len() + pad, 0);
    let mut record = vec![23, 3, 3];
    record.extend_from_slice(&((inner.len() + 16) as u16).to_be_bytes());
    let mut nonce: [u8; 12] = iv.try_into().unwrap();
    for (n, s) in nonce[4..].iter_mut().zip(seq.to_be_bytes()) {
        *n ^= s;
    }
    let aad: [u8; 5] = record[..5].try_into().unwrap();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut inner,
    )
    .unwrap();
    record.extend_from_slice(&inner);
    record
}

/// Padded TLS 1.3 records (empty ones, padding up to 300 bytes, a padded user_canceled alert,
/// content up to 16 KiB) through buffers of every kind: opened straight into the buffer,
/// opened in place and all handed out, opened in place with part held for the next read. The
/// content type is found after the padding, never in what follows the record in the buffer.
#[test]
fn session_opens_padded_records_into_any_buffer() {
    for room in [1, 11, 12, 100, 211, 212, 600, 16001, 16300, 65536] {
        let (mut session, client) =
            session_and_client(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let (mut seq, secrets) = client.dangerous_extract_secrets().unwrap().tx;
        let rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv } = secrets else {
            panic!("not AES-128-GCM");
        };
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key.as_ref()).unwrap());
        let mut wire = Vec::new();
        let mut sent = Vec::new();
        let mut record = |content: &[u8], kind: u8, pad: usize| {
            wire.extend(seal13(&key, iv.as_ref(), seq, content, kind, pad));
            seq += 1;
        };
        for (i, (len, pad)) in [
            (10, 0),
            (10, 200),
            (0, 5),
            (1, 255),
            (500, 100),
            (3, 0),
            (16000, 300),
            (16383, 0),
            (200, 0),
        ]
        .into_iter()
        .enumerate()
        {
            let content: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8 | 1).collect();
            record(&content, 23, pad);
            sent.extend_from_slice(&content);
        }
        record(&[1, 90], 21, 40); // user_canceled, padded
        record(b"tail", 23, 0);
        sent.extend_from_slice(b"tail");
        let mut socket = Counted::new(&wire);
        // Not zeros: a content type looked for past the plaintext would find these.
        let mut buf = vec![0xAAu8; room];
        let got = read_all(&mut session, &mut socket, &mut buf);
        assert!(
            got == sent,
            "{room}-byte buffer: {} bytes, not the {} sent",
            got.len(),
            sent.len()
        );
    }
}

//! wss:// end to end over real sockets on 127.0.0.1: the mio server's TLS listeners with our
//! client and with tungstenite over a rustls stream (a client no one here wrote), plain HTTP
//! to the TLS port, a stalled TLS handshake, the certificate checks that must fail (expired,
//! wrong name, unknown CA) each with its own error, and reloading the certificate.
//! Certificates are made at test time with rcgen (RSA from a fixed key in tests/data, which
//! is faster than generating one).
#![cfg(all(feature = "tls", feature = "server", feature = "client"))]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair,
    SignatureAlgorithm,
};
use rfc6455::client::{CertificateCheck, Client, ClientError, ConnectOptions};
use rfc6455::server::{Builder, Context, Handle, Handler, Timeouts};
use rfc6455::tls::rustls;
use rfc6455::tls::TlsConfig;
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

/// What `conn` has to send, as bytes.
fn flight<D>(conn: &mut rustls::ConnectionCommon<D>) -> Vec<u8> {
    let mut wire = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut wire).unwrap();
    }
    wire
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

/// A server and a client connection that completed their handshake in memory, the server's
/// side read through `tls::read_plaintext`.
fn pair_in_memory() -> (rustls::ServerConnection, rustls::ClientConnection) {
    let ca = Ca::new("test CA");
    let (cert, key) = ca.leaf(&["localhost"], ecdsa(), false);
    let server_config = rustls::ServerConfig::builder_with_provider(stock_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            rfc6455::tls::certs_from_pem(cert.as_bytes()).unwrap(),
            rfc6455::tls::private_key_from_pem(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    let name = "localhost".try_into().unwrap();
    let mut client = rustls::ClientConnection::new(rustls_client(&ca), name).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    // The handshake, in memory; the server's side through read_plaintext.
    for _ in 0..10 {
        let wire = flight(&mut client);
        let mut socket = Counted {
            bytes: &wire,
            reads: 0,
        };
        match rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("plaintext during the handshake: {other:?}"),
        }
        let back = flight(&mut server);
        let mut back = &back[..];
        while !back.is_empty() {
            client.read_tls(&mut back).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
    }
    assert!(!server.is_handshaking(), "the handshake did not complete");
    (server, client)
}

/// `tls::read_plaintext` (the server's and the load tool's TLS read) takes up to 44 KiB of
/// ciphertext per socket read where rustls' `read_tls` takes 4 KiB, leaves none behind, and
/// hands out exactly what was sent; then `WouldBlock`, then 0 after close_notify.
#[test]
fn read_plaintext_reads_the_socket_in_large_pieces() {
    let (mut server, mut client) = pair_in_memory();
    let mut buf = vec![0u8; 64 * 1024];
    let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    client.set_buffer_limit(None);
    client.writer().write_all(&sent).unwrap();
    client.send_close_notify();
    let wire = flight(&mut client);
    let mut socket = Counted {
        bytes: &wire,
        reads: 0,
    };
    let mut got = Vec::new();
    loop {
        match rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf) {
            Ok(read) if read.len == 0 => break,
            Ok(read) => got.extend_from_slice(&buf[..read.len]),
            Err(e) => panic!("after {} bytes: {e}", got.len()),
        }
    }
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "the plaintext differs");
    assert!(socket.bytes.is_empty(), "ciphertext left in the socket");
    // 300,000 bytes are ~300 KiB of ciphertext: rustls' read_tls alone would take 74 reads.
    let most = wire.len().div_ceil(44 * 1024) + 1;
    assert!(
        socket.reads <= most,
        "{} socket reads for {} bytes of ciphertext",
        socket.reads,
        wire.len()
    );
}

/// A short socket read with every record handed out says the socket is empty
/// (`Plaintext::drained`), so that the server and the load tool skip the read that would only
/// say `WouldBlock` (one syscall per echo); a read that filled its room does not say so.
#[test]
fn read_plaintext_says_when_the_socket_is_empty() {
    let (mut server, mut client) = pair_in_memory();
    let mut buf = vec![0u8; 64 * 1024];
    client.writer().write_all(b"hello").unwrap();
    let wire = flight(&mut client);
    let mut socket = Counted {
        bytes: &wire,
        reads: 0,
    };
    let read = rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf).unwrap();
    assert_eq!(&buf[..read.len], b"hello");
    assert!(read.drained, "one short read of a whole record: {read:?}");
    assert_eq!(socket.reads, 1);

    client.writer().write_all(&[7u8; 1000]).unwrap();
    let wire = flight(&mut client);
    let mut socket = Counted {
        bytes: &wire[..500],
        reads: 0,
    };
    match rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("half a record: {other:?}"),
    }
    // Read again (a FIN may wait behind half a record: see the next test).
    assert_eq!(socket.reads, 2, "half a record");
    let mut socket = Counted {
        bytes: &wire[500..],
        reads: 0,
    };
    let read = rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf).unwrap();
    assert_eq!(&buf[..read.len], &[7u8; 1000][..]);
    assert!(read.drained, "the rest of the record: {read:?}");
    assert_eq!(socket.reads, 1);

    // More ciphertext than one read takes (44 KiB with a 64 KiB buffer): not drained.
    client.set_buffer_limit(None);
    client.writer().write_all(&[1u8; 100_000]).unwrap();
    let wire = flight(&mut client);
    let mut socket = Counted {
        bytes: &wire,
        reads: 0,
    };
    let read = rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf).unwrap();
    assert!(read.len > 0 && !read.drained, "a full read: {read:?}");
    let mut got = read.len;
    while got < 100_000 {
        got += rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf)
            .unwrap()
            .len;
    }
    assert_eq!(got, 100_000);
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

/// Half a record and then the peer's FIN, all there at one event: the end of the stream is
/// seen (a caller draining to the end after an event that reported the FIN gets no further
/// event), not `WouldBlock`.
#[test]
fn read_plaintext_sees_a_fin_behind_half_a_record() {
    let (mut server, mut client) = pair_in_memory();
    let mut buf = vec![0u8; 64 * 1024];
    client.writer().write_all(&[7u8; 1000]).unwrap();
    let wire = flight(&mut client);
    let mut socket = ThenFin(&wire[..500]);
    match rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf) {
        Ok(read) if read.len == 0 => {}
        other => panic!("half a record, then FIN: {other:?}"),
    }
}

/// The peer's close_notify with more bytes behind it in the same read (junk, or a peer
/// trying its luck) ends the stream: the bytes after it are dropped, and the call returns
/// (rustls takes nothing after close_notify; feeding it again spun forever).
#[test]
fn read_plaintext_returns_after_close_notify_and_junk() {
    let (mut server, mut client) = pair_in_memory();
    let mut buf = vec![0u8; 64 * 1024];
    client.writer().write_all(b"last words").unwrap();
    client.send_close_notify();
    let mut wire = flight(&mut client);
    wire.extend_from_slice(&[0x17; 8192]);
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut socket = Counted {
            bytes: &wire,
            reads: 0,
        };
        let mut got = Vec::new();
        let end = loop {
            match rfc6455::tls::read_plaintext(&mut server, &mut socket, &mut buf) {
                Ok(read) if read.len == 0 => break Ok(()),
                Ok(read) => got.extend_from_slice(&buf[..read.len]),
                Err(e) => break Err(e.kind()),
            }
        };
        let _ = done.send((got, end));
    });
    let (got, end) = result
        .recv_timeout(Duration::from_secs(10))
        .expect("read_plaintext did not return within 10 s after close_notify and junk");
    assert_eq!(got, b"last words");
    assert_eq!(end, Ok(()));
}

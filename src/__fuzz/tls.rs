//! `tls::Session`'s records under a peer that misbehaves: after a real in-memory handshake,
//! one session (the reader: the server, or the client with byte 0's bit 6 set) reads what the
//! other (the peer) seals for it, and what the input adds (records of any type, length and
//! padding, raw bytes, flipped bytes, key updates), through a socket that hands out the bytes
//! in pieces of any size.
//!
//! Input: byte 0 picks the suite (its low 6 bits mod 5; TLS 1.3: AES-128-GCM, AES-256-GCM,
//! ChaCha20-Poly1305; TLS 1.2: ECDHE-ECDSA with AES-128-GCM, ChaCha20-Poly1305), or with its
//! top bit set, the rest is fed raw to a server session that has not shaken hands (rustls'
//! parser is fuzzed by rustls; this is the session's own feeding of it). Every input makes a
//! full handshake (no resumption: an input's outcome never depends on the inputs before it).
//! Then operations, each a byte and its arguments, until the input ends (at most 200), by the
//! first byte modulo 10:
//! 0. The peer sends application data: u16 length (mod 20,000) of [`pattern`], given to
//!    `write_vectored` as up to three slices cut at two u16 points.
//! 1. The peer seals a record of its choosing: type byte, u16 content length (mod 17,000),
//!    the content (the input's next bytes, then `a`s up to the length), u16 padding (mod 300,
//!    TLS 1.3).
//! 2. Raw bytes into the connection: a length byte, then that many bytes.
//! 3. A byte in flight flipped: u16 position (mod what is in flight), the XOR byte (odd).
//! 4. The reader reads: u16 buffer size (mod 70,000, plus 1), u16 bytes per socket read (plus
//!    1).
//! 5. The peer sends a KeyUpdate (TLS 1.3), asking for one back if the next byte is odd.
//! 6. The peer sends close_notify.
//! 7. The reader sends application data (u16 length, mod 20,000) and the peer reads it all
//!    (a failed reader is only offered it).
//! 8. The peer's records go onto the connection.
//! 9. The peer closes TCP after them (the reader's reads then end; later records go nowhere).
//!
//! Properties ([`Run`] keeps the model: `open_record`'s rules, in its order):
//! - No panic; the plaintext the reader hands out is always a prefix of the application data
//!   the peer sealed, in order (nothing forged, reordered, repeated or lost in the middle),
//!   and nothing sealed after close_notify or after a record the reader must refuse.
//! - A record the reader must refuse (over 2^14 + 256 bytes, over 16 KiB of content, no
//!   type, an unexpected type, a fatal or malformed alert, a handshake message other than a
//!   lone well-formed KeyUpdate or a client's ticket, the 33rd record in a row without data,
//!   anything after a KeyUpdate the peer sealed without moving its own keys), while every
//!   record reaches the reader as sealed: the reader fails, however the bytes were cut.
//! - While the input only sends what a correct peer sends (application data, key updates,
//!   user_canceled, empty records, close_notify, TCP's end; no raw or flipped bytes), the
//!   reader never fails, and at the end it has handed out exactly what was sent before the
//!   end, then the end of the stream; what the reader sends the peer opens, and after the
//!   reader has read a KeyUpdate request, it answers with its own before its next data (the
//!   peer opens that data with fresh keys).
//! - A failure is for good: every later read fails too, and so does every write (op 7), which
//!   seals nothing.
//! - Between calls a session holds at most one cut record, one read's worth of plaintext and
//!   64 KiB of records plus the one that passed the mark.

use crate::tls::{AcceptAnything, Session, TlsConfig};
use rustls::pki_types::ServerName;
use rustls::CipherSuite;
use std::io::{self, IoSlice, Read, Write};
use std::sync::{Arc, OnceLock};

/// A self-signed ECDSA P-256 certificate and its key, for this harness only (the client does
/// not verify it). Made with `openssl req -x509 -newkey ec -pkeyopt
/// ec_paramgen_curve:P-256 -days 36500`.
const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBnzCCAUSgAwIBAgIUEYQoW9Y50RWVQTK5PWjjee36c70wCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZnV6ei5pbnZhbGlkMCAXDTI2MTIwNTE0MTE1N1oYDzIxMjYx
MTExMTQxMTU3WjAXMRUwEwYDVQQDDAxmdXp6LmludmFsaWQwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAThVkmKsx85OysGSMSbdeyqpGyuYAizoGPRqCqN4SMxuOVQ
j4+eMYCUnhQTlFZp3dor9bRdPOSXMrWjUrbCUF7Vo2wwajAdBgNVHQ4EFgQUkaz9
D3z54llTHl9KPBoe79cQfcUwHwYDVR0jBBgwFoAUkaz9D3z54llTHl9KPBoe79cQ
fcUwDwYDVR0TAQH/BAUwAwEB/zAXBgNVHREEEDAOggxmdXp6LmludmFsaWQwCgYI
KoZIzj0EAwIDSQAwRgIhAIagQr4NAEOweKV1SDkbFt60doyKqShK2t7oDpGDEca0
AiEAlAAAxOw/sfn0j6sYEHX1FEWWPL2RUIli1RGy72c4HNQ=
-----END CERTIFICATE-----
";
const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgX2crz3WyPa9mSD6T
fxW1Zyn64O5bFhYuP7hVBPv+sQyhRANCAAThVkmKsx85OysGSMSbdeyqpGyuYAiz
oGPRqCqN4SMxuOVQj4+eMYCUnhQTlFZp3dor9bRdPOSXMrWjUrbCUF7V
-----END PRIVATE KEY-----
";

const SUITES: [(CipherSuite, bool); 5] = [
    (CipherSuite::TLS13_AES_128_GCM_SHA256, true),
    (CipherSuite::TLS13_AES_256_GCM_SHA384, true),
    (CipherSuite::TLS13_CHACHA20_POLY1305_SHA256, true),
    (CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, false),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        false,
    ),
];

/// The most plaintext in a record, and the most a TLS 1.3 record's inner plaintext may exceed
/// it by (RFC 8446 §5.2, §5.4).
const MAX_PLAINTEXT: usize = 1 << 14;
const MAX_EXPANSION_13: usize = 256;
/// Records in a row without application data a session takes (`MAX_IDLE_RECORDS`).
const MAX_IDLE: u32 = 32;
/// The bounds of what a session holds between calls (`READ_SIZE`, a TLS 1.2 record with
/// its header, `OUT_LIMIT` and a record past it).
const MAX_PARTIAL: usize = 5 + MAX_PLAINTEXT + 2048;
const MAX_HELD: usize = 64 * 1024 + MAX_PARTIAL;
const MAX_WAITING: usize = 64 * 1024 + MAX_PARTIAL;

/// The server configuration, and a client one per suite.
struct Configs {
    server: Arc<rustls::ServerConfig>,
    clients: Vec<Arc<rustls::ClientConfig>>,
}

fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let server = TlsConfig::from_pem(CERT.as_bytes(), KEY.as_bytes())
            .expect("the harness's certificate")
            .rustls()
            .clone();
        let clients = SUITES
            .iter()
            .map(|&(suite, tls13)| {
                let mut provider = rustls::crypto::aws_lc_rs::default_provider();
                provider.cipher_suites.retain(|s| s.suite() == suite);
                // X25519 alone: ML-KEM would only slow each input's handshake.
                provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519];
                let version = match tls13 {
                    true => &rustls::version::TLS13,
                    false => &rustls::version::TLS12,
                };
                let provider = Arc::new(provider);
                // Any certificate (the server's is the fixed one above); signatures checked.
                let verifier = Arc::new(AcceptAnything(provider.clone()));
                let mut config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_protocol_versions(&[version])
                    .expect("the harness's suites")
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_no_client_auth();
                config.enable_secret_extraction = true;
                // A full handshake for every input: a ticket kept from an earlier input would
                // make an input's outcome depend on what ran before it.
                config.resumption = rustls::client::Resumption::disabled();
                Arc::new(config)
            })
            .collect();
        Configs { server, clients }
    })
}

/// One direction of an in-memory TCP connection: written bytes wait until read; a read
/// takes at most `chunk` bytes, and `WouldBlock` when there are none.
struct Pipe {
    bytes: Vec<u8>,
    at: usize,
    chunk: usize,
    /// The writer closed (TCP FIN): reads end with `Ok(0)`, writes go nowhere.
    closed: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            bytes: Vec::new(),
            at: 0,
            chunk: usize::MAX,
            closed: false,
        }
    }

    fn unread(&mut self) -> &mut [u8] {
        &mut self.bytes[self.at..]
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.bytes.len() - self.at);
        if n == 0 && !buf.is_empty() && !self.closed {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        if self.at == self.bytes.len() {
            self.bytes.clear();
            self.at = 0;
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.closed {
            self.bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The input, read from the front; past its end every number is 0.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> usize {
        usize::from(self.u8()) << 8 | usize::from(self.u8())
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// The application data of the `n`th byte sent one way: different at every offset for a
/// long while, so a repeated or reordered record shows.
fn pattern(from: usize, len: usize, salt: u8) -> Vec<u8> {
    (from..from + len)
        .map(|i| (i as u8) ^ ((i >> 8) as u8).wrapping_mul(31) ^ salt)
        .collect()
}

pub fn check_tls_session(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    if first & 0x80 != 0 {
        return raw_handshake(rest);
    }
    let suite = usize::from(first & 0x3F) % SUITES.len();
    let tls13 = SUITES[suite].1;
    let configs = configs();
    let name = ServerName::try_from("fuzz.invalid").expect("a name");
    let mut client = Session::client(configs.clients[suite].clone(), name).expect("a client");
    let mut server = Session::server(configs.server.clone()).expect("a server");
    let (mut up, mut down) = (Pipe::new(), Pipe::new());
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..16 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        client.write_records(&mut up).expect("a pipe takes all");
        let _ = server.read(&mut up, &mut buf);
        server.write_records(&mut down).expect("a pipe takes all");
        let _ = client.read(&mut down, &mut buf);
    }
    assert!(
        !client.is_handshaking() && !server.is_handshaking(),
        "the in-memory handshake did not finish"
    );
    // The client has read the server's tickets (TLS 1.3) in the last round.
    client.write_records(&mut up).expect("a pipe takes all");
    // Byte 0's bit 6: the client session is the one that reads (a server misbehaving).
    let swapped = first & 0x40 != 0;
    let (mut peer, mut reader, mut to_reader, mut to_peer) = match swapped {
        false => (client, server, up, down),
        true => (server, client, down, up),
    };

    let mut input = Input(rest);
    let mut state = Run {
        tls13,
        clean: true,
        in_sync: true,
        tcp_closed: false,
        sent: Vec::new(),
        close_at: None,
        must_fail_at: None,
        sure_to_fail: false,
        delivered: Vec::new(),
        eof: false,
        failed: false,
        // A client has counted the records of the server's session tickets (one, as rustls
        // sends them) among the records without data.
        idle: reader.fuzz_idle(),
        asked: false,
        client_reads: swapped,
        keys_apart: false,
    };
    let mut ops = 0;
    while !input.0.is_empty() && ops < 200 {
        ops += 1;
        match input.u8() % 10 {
            0 => {
                let len = input.u16() % 20_000;
                let (a, b) = (input.u16() % (len + 1), input.u16() % (len + 1));
                let (a, b) = (a.min(b), a.max(b));
                let data = pattern(state.sent.len(), len, 0);
                let slices = [
                    IoSlice::new(&data[..a]),
                    IoSlice::new(&data[a..b]),
                    IoSlice::new(&data[b..]),
                ];
                let taken = send_all(&mut peer, &mut to_reader, &slices);
                state.data(&data[..taken]);
            }
            1 => {
                let kind = input.u8();
                let len = input.u16() % 17_000;
                // The content: the input's next bytes, then 'a's (so that any size can be
                // had from a short input).
                let mut content = input.bytes(len).to_vec();
                content.resize(len, b'a');
                let padding = match tls13 {
                    true => input.u16() % 300,
                    false => 0,
                };
                if peer.fuzz_seal(kind, &content, padding) {
                    state.record(kind, content, padding);
                }
            }
            2 => {
                let n = usize::from(input.u8());
                peer.write_records(&mut to_reader)
                    .expect("a pipe takes all");
                to_reader.bytes.extend_from_slice(input.bytes(n));
                state.out_of_sync();
            }
            3 => {
                let at = input.u16();
                let x = input.u8() | 1;
                peer.write_records(&mut to_reader)
                    .expect("a pipe takes all");
                let unread = to_reader.unread();
                if !unread.is_empty() {
                    let i = at % unread.len();
                    unread[i] ^= x;
                    state.out_of_sync();
                }
            }
            4 => {
                let size = input.u16() % 70_000 + 1;
                to_reader.chunk = input.u16() + 1;
                peer.write_records(&mut to_reader)
                    .expect("a pipe takes all");
                let mut buf = vec![0u8; size];
                let _ = state.reader_reads(&mut reader, &mut to_reader, &mut buf);
            }
            5 => {
                let request = input.u8() & 1 == 1;
                if tls13 && peer.fuzz_update_keys(request) {
                    state.key_update(request);
                }
            }
            6 => {
                peer.send_close_notify();
                state.record(ALERT, vec![1, 0], 0);
            }
            7 => {
                let len = input.u16() % 20_000;
                // Everything the peer sealed has been opened by the reader.
                let settled = !peer.wants_write()
                    && to_reader.unread().is_empty()
                    && reader.fuzz_buffered().0 == 0;
                state.reader_sends(&mut reader, &mut peer, &mut to_peer, len, settled);
            }
            8 => {
                peer.write_records(&mut to_reader)
                    .expect("a pipe takes all");
            }
            _ => {
                // TCP closed by the peer, after what it has sealed.
                peer.write_records(&mut to_reader)
                    .expect("a pipe takes all");
                to_reader.closed = true;
                state.tcp_closed = true;
            }
        }
    }

    // The end: everything in flight is read (at most 4 MB: 200 sends of 20,000 bytes).
    peer.write_records(&mut to_reader)
        .expect("a pipe takes all");
    to_reader.chunk = usize::MAX;
    for _ in 0..1000 {
        let blocked = state.reader_reads(&mut reader, &mut to_reader, &mut buf);
        if state.eof || state.failed || (blocked && to_reader.unread().is_empty()) {
            break;
        }
    }
    if let Some(at) = state.must_fail_at {
        assert!(
            state.failed || !state.sure_to_fail,
            "a record that must fail did not"
        );
        assert!(
            state.delivered.len() <= at,
            "plaintext sealed after a record that must fail"
        );
    } else if state.clean {
        let expected = &state.sent[..state.close_at.unwrap_or(state.sent.len())];
        assert_eq!(
            state.delivered.len(),
            expected.len(),
            "a clean stream was not handed out whole"
        );
        assert_eq!(
            state.eof,
            state.close_at.is_some() || state.tcp_closed,
            "close_notify or TCP's end is the end"
        );
    }
}

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;

/// What the run knows.
struct Run {
    tls13: bool,
    /// Only what a correct peer sends so far: the reader must take it all.
    clean: bool,
    /// Every record the peer sealed reaches the reader whole, as sealed (no raw bytes, no
    /// flipped byte): a record that must fail will be met.
    in_sync: bool,
    /// The peer closed TCP: nothing sealed after it arrives.
    tcp_closed: bool,
    /// Application data the peer sealed that the reader may hand out.
    sent: Vec<u8>,
    /// `sent.len()` when the peer sent close_notify (op 6, or sealed as a record).
    close_at: Option<usize>,
    /// `sent.len()` when the peer sealed a record the reader must refuse (before any close):
    /// the reader hands out nothing sealed after it.
    must_fail_at: Option<usize>,
    /// And the reader fails at it: every record up to it reaches the reader as sealed.
    sure_to_fail: bool,
    /// What the reader handed out.
    delivered: Vec<u8>,
    eof: bool,
    failed: bool,
    /// Records in a row without application data (a session refuses more than 32).
    idle: u32,
    /// The peer asked for a KeyUpdate, and the reader has not sent data since.
    asked: bool,
    /// The client reads (byte 0's bit 6).
    client_reads: bool,
    /// A KeyUpdate sealed as a plain record moved the reader's keys and not the peer's.
    keys_apart: bool,
}

/// What a TLS 1.3 handshake record after the handshake does to the reader.
enum Handshake {
    Refused,
    KeyUpdate,
    /// A session ticket, which a client's rustls judges.
    Unknown,
}

/// `Records::on_handshake`'s rules: whole messages only, a KeyUpdate of one byte (0 or 1)
/// with nothing after it, tickets only to a client.
fn handshake(messages: &[u8], client: bool) -> Handshake {
    // The first message decides: a KeyUpdate must be alone, a ticket goes to rustls.
    let [kind, a, b, c, rest @ ..] = messages else {
        return Handshake::Refused;
    };
    let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
    let Some(body) = rest.get(..len) else {
        return Handshake::Refused;
    };
    match kind {
        24 if matches!(body, [0] | [1]) && rest.len() == len => Handshake::KeyUpdate,
        4 if client => Handshake::Unknown,
        _ => Handshake::Refused,
    }
}

impl Run {
    /// Whether the reader will still read what the peer seals now.
    fn read_on(&self) -> bool {
        self.close_at.is_none() && !self.tcp_closed && self.must_fail_at.is_none()
    }

    fn out_of_sync(&mut self) {
        self.clean = false;
        self.in_sync = false;
        // A record that must fail and is not read yet may now never be read whole (a flipped
        // length byte makes the reader wait for more): it need not fail. Nothing after it may
        // be handed out all the same.
        if !self.failed {
            self.sure_to_fail = false;
        }
    }

    fn must_fail(&mut self) {
        if self.read_on() {
            self.must_fail_at = Some(self.sent.len());
            self.sure_to_fail = self.in_sync;
        }
        self.clean = false;
    }

    /// Application data sealed by `write_vectored`.
    fn data(&mut self, data: &[u8]) {
        if self.keys_apart && !data.is_empty() {
            return self.must_fail();
        }
        if !data.is_empty() && self.read_on() {
            self.idle = 0;
            self.sent.extend_from_slice(data);
        }
    }

    /// A record without application data the reader takes.
    fn idle_record(&mut self) {
        self.idle += 1;
        if self.idle > MAX_IDLE {
            self.must_fail();
        }
    }

    fn key_update(&mut self, request: bool) {
        if self.keys_apart {
            return self.must_fail();
        }
        if self.read_on() {
            self.idle_record();
            self.asked |= request;
        }
    }

    /// A record sealed with `fuzz_seal`: what the reader must make of it (`Session`'s
    /// `open_record`, in its order: size, type, content length, idle records, then the type's
    /// own rules).
    fn record(&mut self, kind: u8, content: Vec<u8>, padding: usize) {
        if !self.read_on() {
            return;
        }
        if self.keys_apart {
            return self.must_fail();
        }
        // The ciphertext's size: within 2^14 + 256 bytes (TLS 1.3) with type and tag.
        let size = content.len() + usize::from(self.tls13) + padding + 16;
        if self.tls13 && size > MAX_PLAINTEXT + MAX_EXPANSION_13 {
            return self.must_fail();
        }
        // In TLS 1.3 the type is the last byte of content and type that is not zero (a zero
        // type reads as padding, RFC 8446 §5.4).
        let (kind, content) = match self.tls13 {
            true => {
                let mut inner = content;
                inner.push(kind);
                match inner.iter().rposition(|&b| b != 0) {
                    Some(end) => (inner[end], inner[..end].to_vec()),
                    None => return self.must_fail(),
                }
            }
            false => (kind, content),
        };
        if content.len() > MAX_PLAINTEXT {
            return self.must_fail();
        }
        if kind == APPLICATION_DATA && !content.is_empty() {
            return self.data(&content);
        }
        self.idle_record();
        if !self.read_on() {
            return;
        }
        match (kind, &content[..]) {
            (APPLICATION_DATA, _) => {}
            (ALERT, [_, 0]) => self.close_at = Some(self.sent.len()),
            (ALERT, [1, 90]) => {}
            (ALERT, _) => self.must_fail(),
            (HANDSHAKE, messages) if self.tls13 => match handshake(messages, self.client_reads) {
                Handshake::Refused => self.must_fail(),
                // The reader moves to keys the peer does not seal with: the next record
                // fails.
                Handshake::KeyUpdate => {
                    self.clean = false;
                    self.keys_apart = true;
                }
                Handshake::Unknown => self.clean = false,
            },
            _ => self.must_fail(),
        }
    }

    /// One read; true if it said `WouldBlock`.
    fn reader_reads(&mut self, reader: &mut Session, to_reader: &mut Pipe, buf: &mut [u8]) -> bool {
        let result = reader.read(to_reader, buf);
        let (partial, held, waiting) = reader.fuzz_buffered();
        assert!(
            partial <= MAX_PARTIAL,
            "a cut record of {partial} bytes held (failed: {}, read: {result:?})",
            reader.fuzz_failed()
        );
        assert!(held <= MAX_HELD, "{held} bytes of plaintext held");
        assert!(waiting <= MAX_WAITING, "{waiting} bytes of records waiting");
        match result {
            Ok(read) if read.len > 0 => {
                assert!(!self.eof, "plaintext after the end of the stream");
                assert!(!self.failed, "plaintext after a failure");
                self.delivered.extend_from_slice(&buf[..read.len]);
                let n = self.delivered.len();
                assert!(n <= self.sent.len(), "more plaintext than was sealed");
                assert!(
                    self.delivered[n - read.len..] == self.sent[n - read.len..n],
                    "plaintext that was not sealed at its place in the stream"
                );
                if let Some(close) = self.close_at {
                    assert!(n <= close, "plaintext sealed after close_notify");
                }
            }
            Ok(_) => {
                assert!(!self.failed, "a failed session ended cleanly");
                if self.clean {
                    assert!(
                        self.close_at.is_some() || self.tcp_closed,
                        "the end of the stream without close_notify or TCP's end"
                    );
                    assert_eq!(
                        self.delivered.len(),
                        self.close_at.unwrap_or(self.sent.len()),
                        "an end before all data"
                    );
                }
                self.eof = true;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                assert!(!self.failed, "a failed session read on: {e}");
                return e.kind() == io::ErrorKind::WouldBlock;
            }
            Err(e) => {
                assert!(!self.clean, "a correct peer's records failed: {e}");
                assert!(reader.fuzz_failed(), "an error without a failure: {e}");
                self.failed = true;
            }
        }
        false
    }

    /// The reader sends `len` bytes; the peer reads them all. `settled`: the reader has
    /// opened everything the peer sent (so it has seen any KeyUpdate request).
    fn reader_sends(
        &mut self,
        reader: &mut Session,
        peer: &mut Session,
        to_peer: &mut Pipe,
        len: usize,
        settled: bool,
    ) {
        let data = pattern(0, len.max(1), 0x5A);
        if reader.fuzz_failed() {
            // A failed session seals nothing more: a write fails and adds no record.
            let waiting = reader.fuzz_buffered().2;
            assert!(
                reader.write_vectored(&[IoSlice::new(&data)]).is_err(),
                "a failed session took data to send"
            );
            assert_eq!(reader.fuzz_buffered().2, waiting, "a failed session sealed");
            return;
        }
        if self.failed || self.eof {
            return;
        }
        let data = &data[..len];
        let taken = send_all(reader, to_peer, &[IoSlice::new(data)]);
        assert!(
            taken == len || reader.fuzz_failed(),
            "the reader took {taken} of {len} bytes"
        );
        let mut buf = vec![0u8; 64 * 1024];
        if !self.clean || peer.fuzz_failed() {
            for _ in 0..64 {
                if peer.read(to_peer, &mut buf).is_err() {
                    break;
                }
            }
            return;
        }
        let mut got = Vec::new();
        for _ in 0..64 {
            match peer.read(to_peer, &mut buf) {
                Ok(read) if read.len > 0 => got.extend_from_slice(&buf[..read.len]),
                Ok(_) => panic!("the reader's stream ended"),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("the peer could not open the reader's records: {e}"),
            }
        }
        assert!(
            got == data,
            "the peer read {} of the reader's {len} bytes, or other bytes",
            got.len()
        );
        if self.asked && len > 0 {
            if settled {
                // The reader has seen the request, so it sent its own KeyUpdate before this
                // data and the peer opened the data with fresh keys, counted from 0 again.
                assert_eq!(
                    peer.fuzz_rx_seq(),
                    Some(len.div_ceil(MAX_PLAINTEXT) as u64),
                    "the reader did not answer a KeyUpdate request"
                );
            }
            // (Unsettled: it may have answered now or not yet; not checked.)
            self.asked = false;
        }
    }
}

/// Gives `slices` to `session` until it has taken them all, moving its records to `pipe`
/// when it takes no more; how much it took (less only if it failed).
fn send_all(session: &mut Session, pipe: &mut Pipe, slices: &[IoSlice<'_>]) -> usize {
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let mut taken = 0;
    while taken < total {
        // The slices from `taken` on.
        let mut skip = taken;
        let rest: Vec<IoSlice<'_>> = slices
            .iter()
            .filter_map(|s| {
                let k = skip.min(s.len());
                skip -= k;
                Some(IoSlice::new(&s[k..])).filter(|s| !s.is_empty())
            })
            .collect();
        match session.write_vectored(&rest) {
            Ok(0) => break,
            Ok(n) => taken += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                session.write_records(pipe).expect("a pipe takes all");
            }
            Err(_) => break,
        }
    }
    session.write_records(pipe).expect("a pipe takes all");
    taken
}

/// Raw bytes to a server session before any handshake, in pieces cut by the input's first
/// byte: no panic, no plaintext, bounded holdings.
fn raw_handshake(data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let mut server = Session::server(configs().server.clone()).expect("a server");
    let mut up = Pipe::new();
    let mut down = Pipe::new();
    up.chunk = usize::from(cut) * 16 + 1;
    up.bytes.extend_from_slice(data);
    let mut buf = vec![0u8; 4096];
    for _ in 0..data.len() / up.chunk + 2 {
        match server.read(&mut up, &mut buf) {
            Ok(read) => assert_eq!(read.len, 0, "plaintext before a handshake"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {}
        }
        let (partial, held, waiting) = server.fuzz_buffered();
        assert!(partial <= MAX_PARTIAL && held == 0 && waiting <= MAX_WAITING);
        let _ = server.write_records(&mut down);
    }
}

//! [`Session`]: TLS for an event loop over a non-blocking socket. rustls (its unbuffered API)
//! runs the handshake; then rustls hands over the traffic keys (its `KernelConnection`, made
//! for kernel TLS) and the records are sealed and opened here with aws-lc-rs: a received
//! record is decrypted from where it was read straight into the caller's buffer, a sent one
//! from the caller's slice straight into the outgoing buffer (one pass over the bytes; a
//! record gathered from several slices is copied, then sealed in place). rustls' buffered
//! record path copies a received record three times and allocates a `Vec` per record either
//! way (benches/LOAD.md, sessions 8 and 9).
//!
//! What rustls keeps doing after the handshake, through the `KernelConnection`: the next
//! traffic keys when either side sends a TLS 1.3 KeyUpdate, and (client) the session tickets
//! the server sends. The records themselves are done here: RFC 8446 §5 (TLS 1.3), RFC 5246
//! §6.2 with RFC 5288 and RFC 7905 (TLS 1.2 AES-GCM and ChaCha20-Poly1305).

use super::Plaintext;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError};
use rustls::{ConnectionTrafficSecrets, HandshakeKind, ProtocolVersion, SupportedCipherSuite};
use std::cell::Cell;
use std::io::{self, IoSlice, Read, Write};
use std::ops::Range;
use std::sync::Arc;

/// The most plaintext in one record (both versions).
const MAX_PLAINTEXT: usize = 1 << 14;
/// The most ciphertext in one record: TLS 1.3 allows 256 bytes over the plaintext (RFC 8446
/// §5.2), TLS 1.2 2,048 (RFC 5246 §6.2.3).
const MAX_CIPHERTEXT_13: usize = MAX_PLAINTEXT + 256;
const MAX_CIPHERTEXT_12: usize = MAX_PLAINTEXT + 2048;
const HEADER: usize = 5;
const TAG: usize = 16;
/// TLS 1.2 AES-GCM's explicit nonce, sent before the ciphertext (RFC 5288 §3).
const EXPLICIT: usize = 8;
/// Records queued by `write_vectored` before it takes no more (as a full socket would).
const OUT_LIMIT: usize = 64 * 1024;
/// The most one socket read takes.
const READ_SIZE: usize = 64 * 1024;
/// The thread's read buffer: one read behind a partial record carried from the last.
const READ_BUFFER: usize = READ_SIZE + HEADER + MAX_CIPHERTEXT_12;
/// Socket reads per `read` call that decrypt nothing (records with nothing for the caller,
/// or pieces of one) before it says `Interrupted` so that a loop can serve others first.
const EMPTY_READS: usize = 4;
/// Records in a row without application data a peer may send (see `Records::idle`): rustls
/// allows 32 key update requests between application data, and 32 empty records in a row.
const MAX_IDLE_RECORDS: u32 = 32;
/// The handshake's input held at most (rustls takes handshake messages up to 64 KiB).
const MAX_HANDSHAKE_INPUT: usize = 256 * 1024;

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;
const WARNING: u8 = 1;
const FATAL: u8 = 2;
const CLOSE_NOTIFY: u8 = 0;
const UNEXPECTED_MESSAGE: u8 = 10;
const BAD_RECORD_MAC: u8 = 20;
const RECORD_OVERFLOW: u8 = 22;
const HANDSHAKE_FAILURE: u8 = 40;
const ILLEGAL_PARAMETER: u8 = 47;
const DECODE_ERROR: u8 = 50;
const INTERNAL_ERROR: u8 = 80;
const USER_CANCELED: u8 = 90;
/// For [`Fatal`]: send no alert (the peer's own fatal alert ended it). close_notify's
/// number, which is never sent as a fatal alert.
const NO_ALERT: u8 = CLOSE_NOTIFY;

std::thread_local! {
    /// Ciphertext is read here and decrypted into the caller's buffer (in place when that has
    /// too little room); the end of a record that a read cut in two moves to its session
    /// until the next read.
    static READ: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// A spare outgoing buffer ([`Outgoing::buf`]): a session takes it to seal records into
    /// and gives it back once they are all written, so that an idle session holds none.
    static SPARE_OUT: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// TLS over a non-blocking socket for an event loop (the server's TLS listeners and
/// `rfc6455 load` use it; the blocking client uses rustls' own stream). It reads and takes
/// plaintext as a socket does; [`write_records`](Self::write_records) moves the sealed records
/// to the socket, and must be called after `read` (the handshake answers) and after writes.
///
/// The handshake is rustls' (its unbuffered API, on this crate's provider or the
/// configuration given); the configuration must allow secret extraction
/// (`enable_secret_extraction`), which [`TlsConfig`](super::TlsConfig) and this crate's
/// client configurations do. After it, records are sealed and opened here.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// use rfc6455::tls::{Session, TlsConfig};
/// let config = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
/// let (mut socket, _) = std::net::TcpListener::bind("127.0.0.1:0")?.accept()?;
/// socket.set_nonblocking(true)?;
/// let mut tls = Session::server(config.rustls().clone())?;
/// let mut buf = vec![0u8; 64 * 1024];
/// match tls.read(&mut socket, &mut buf) {
///     Ok(read) => println!("{} bytes of plaintext", read.len),
///     Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
///     Err(e) => return Err(e),
/// }
/// tls.write_records(&mut socket)?; // the handshake's answers, or what was written
/// # Ok(())
/// # }
/// ```
pub struct Session {
    state: State,
    /// Sealed records not yet written.
    out: Outgoing,
    /// Received bytes not yet opened: the end of a record a read cut in two.
    partial: Vec<u8>,
    /// Plaintext decrypted that the caller's buffer had no room for, from `held_start`.
    held: Vec<u8>,
    held_start: usize,
    /// Plaintext written during the handshake, sealed when it is over.
    early: Vec<u8>,
    /// The peer's close_notify, or TCP EOF, was read.
    eof: bool,
    resumed: bool,
}

enum State {
    Server(Box<Handshake<UnbufferedServerConnection>>),
    Client(Box<Handshake<UnbufferedClientConnection>>),
    Records(Box<Records>),
    /// A fatal error was met (its alert queued): nothing more is read or sealed.
    Failed,
}

struct Handshake<C> {
    conn: C,
    /// Received bytes rustls has not taken yet.
    incoming: Vec<u8>,
    /// How many of them it has been given (see [`Drive`]).
    fed: usize,
    /// rustls has sent something (records from here on may be encrypted).
    spoke: bool,
}

struct Records {
    kernel: Kernel,
    rx: Direction,
    tx: Direction,
    tls13: bool,
    /// Records the current transmit key may still seal: a TLS 1.3 KeyUpdate renews it
    /// before the cipher's confidentiality limit; TLS 1.2 has none and fails instead.
    left: u64,
    /// Records in a row that carried no application data (key updates, tickets, warnings,
    /// empty records): a peer sending them without end is refused, as rustls refuses it.
    idle: u32,
    /// The peer asked for our KeyUpdate: sent once, before our next application data
    /// (RFC 8446 §4.6.3), however many times it asked.
    update_due: bool,
}

enum Kernel {
    Server(KernelConnection<ServerConnectionData>),
    Client(KernelConnection<ClientConnectionData>),
}

struct Direction {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
    gcm: bool,
}

/// What opening a record gave.
enum Opened {
    /// Plaintext: this many bytes at the start of the room given.
    Direct(usize),
    /// Plaintext at this range of the record (opened in place: the room was too small).
    InPlace(Range<usize>),
    /// A record with nothing for the caller (a handshake message, user_canceled).
    Nothing,
    /// close_notify.
    Closed,
}

/// A fatal TLS error: the alert to send ([`NO_ALERT`] for none), and what to say.
struct Fatal(u8, &'static str);

impl Session {
    /// A server session (TLS 1.3 or 1.2, as `config` allows).
    pub fn server(config: Arc<rustls::ServerConfig>) -> io::Result<Session> {
        let conn = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Session::new(State::Server(Box::new(Handshake {
            conn,
            incoming: Vec::new(),
            fed: 0,
            spoke: false,
        }))))
    }

    /// A client session to `name` (SNI, and the name the certificate must have). The client
    /// speaks first: its hello waits for [`write_records`](Self::write_records).
    pub fn client(
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Session> {
        let conn = UnbufferedClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut session = Session::new(State::Client(Box::new(Handshake {
            conn,
            incoming: Vec::new(),
            fed: 0,
            spoke: false,
        })));
        session.advance()?;
        Ok(session)
    }

    fn new(state: State) -> Session {
        Session {
            state,
            out: Outgoing::default(),
            partial: Vec::new(),
            held: Vec::new(),
            held_start: 0,
            early: Vec::new(),
            eof: false,
            resumed: false,
        }
    }

    /// Whether the handshake is still going.
    pub fn is_handshaking(&self) -> bool {
        matches!(self.state, State::Server(_) | State::Client(_))
    }

    /// Whether the handshake resumed a session (false until it is over).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Whether sealed records wait to be written to the socket.
    pub fn wants_write(&self) -> bool {
        !self.out.waiting().is_empty()
    }

    /// Reads plaintext, as a socket's `read`: `len == 0` at the end of the stream (the peer's
    /// close_notify, or TCP EOF), `WouldBlock` when the socket has nothing more, and
    /// `Interrupted` after a few reads that brought no plaintext (call again: it lets a loop
    /// serve other connections first). A TLS failure is an `InvalidData` error, its alert
    /// queued for [`write_records`](Self::write_records). During the handshake this answers
    /// the peer (records for `write_records`) until there is plaintext.
    ///
    /// One socket read of up to 64 KiB when there is plaintext to hand out;
    /// [`Plaintext::drained`] when it came back short (the socket is empty) and all it
    /// brought is handed out.
    pub fn read(&mut self, socket: &mut impl Read, buf: &mut [u8]) -> io::Result<Plaintext> {
        let filled = self.take_held(buf);
        if filled > 0 || self.eof {
            // The socket's next bytes are for the next call.
            return Ok(done(filled));
        }
        if self.is_handshaking() && self.read_handshake(socket)? {
            return Ok(done(0));
        }
        if matches!(self.state, State::Failed) {
            return Err(failed());
        }
        let mut read = READ.try_with(Cell::take).unwrap_or_default();
        read.resize(READ_BUFFER, 0);
        let result = self.read_records(socket, buf, &mut read);
        let _ = READ.try_with(|spare| spare.set(read));
        result
    }

    fn read_records(
        &mut self,
        socket: &mut impl Read,
        buf: &mut [u8],
        read: &mut [u8],
    ) -> io::Result<Plaintext> {
        // What was carried comes back into the thread's buffer; its own is kept for the next
        // cut record (a large message cuts one at nearly every read) or freed.
        let mut kept = std::mem::take(&mut self.partial);
        let mut end = kept.len();
        read[..end].copy_from_slice(&kept);
        kept.clear();
        let mut reads = 0;
        // The records already here first (what followed the handshake in its last read).
        let mut short = None;
        loop {
            let (used, filled) = self.open_records(&mut read[..end], buf)?;
            read.copy_within(used..end, 0);
            end -= used;
            if filled > 0 || self.eof {
                self.carry(kept, &read[..end]);
                let drained = short == Some(true)
                    && self.held.is_empty()
                    && !self.eof
                    && !matches!(self.state, State::Failed);
                return Ok(Plaintext {
                    len: filled,
                    drained,
                });
            }
            if reads == EMPTY_READS {
                self.carry(kept, &read[..end]);
                return Err(io::ErrorKind::Interrupted.into());
            }
            // Nothing for the caller yet: read (again: a FIN may wait behind these bytes,
            // and a caller draining to the end of the stream must see it).
            // Plaintext is never longer than its ciphertext: reading no more than `buf` has
            // room for keeps all of it out of `held`.
            let room = READ_SIZE
                .min(buf.len().saturating_sub(end).max(4096))
                .min(read.len() - end);
            reads += 1;
            match socket.read(&mut read[end..end + room]) {
                Ok(0) => {
                    // TCP EOF without close_notify: the end all the same (WebSocket ends by
                    // its close frame; a truncation would show as a missing one).
                    self.eof = true;
                    return Ok(done(0));
                }
                Ok(n) => {
                    end += n;
                    short = Some(n < room);
                }
                Err(e) => {
                    self.carry(kept, &read[..end]);
                    return Err(e);
                }
            }
        }
    }

    /// Keeps the bytes of a record a read cut in two until the next read, in `kept` (the
    /// last one's buffer, empty); none: no buffer. Nothing is kept after the end or a
    /// failure (which leaves the rest of its read behind it: a cut record and one read).
    fn carry(&mut self, mut kept: Vec<u8>, rest: &[u8]) {
        if !rest.is_empty() && !self.eof && !matches!(self.state, State::Failed) {
            kept.extend_from_slice(rest);
            self.partial = kept;
        }
    }

    /// Opens the whole records at the start of `data` into `buf` (what does not fit into
    /// `held`): the bytes used and the plaintext handed out.
    fn open_records(&mut self, data: &mut [u8], buf: &mut [u8]) -> io::Result<(usize, usize)> {
        let mut at = 0;
        let mut filled = 0;
        while !self.eof {
            // Straight into `buf` while nothing is held (held plaintext comes first).
            let room = match self.held.is_empty() {
                true => &mut buf[filled..],
                false => &mut [][..],
            };
            let record = match self.open_record(&mut data[at..], room) {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(Fatal(alert, what)) => {
                    let e = self.fail(alert, what);
                    if filled > 0 {
                        // What came before it is handed out (with what is held, by the
                        // next calls); then reads fail.
                        return Ok((at, filled));
                    }
                    return Err(e);
                }
            };
            let (opened, length) = record;
            match opened {
                Opened::Direct(n) => filled += n,
                Opened::InPlace(range) => {
                    let plain = &data[at + range.start..at + range.end];
                    let fits = plain.len().min(buf.len() - filled);
                    buf[filled..filled + fits].copy_from_slice(&plain[..fits]);
                    filled += fits;
                    self.held.extend_from_slice(&plain[fits..]);
                }
                Opened::Nothing => {}
                Opened::Closed => self.eof = true,
            }
            at += length;
        }
        Ok((at, filled))
    }

    /// Opens the record at the start of `data` if it is whole: what it gave, and its length.
    /// The plaintext goes straight into `room` if it is large enough (one pass over the
    /// bytes), else it is opened in place.
    fn open_record(
        &mut self,
        data: &mut [u8],
        room: &mut [u8],
    ) -> Result<Option<(Opened, usize)>, Fatal> {
        let State::Records(records) = &mut self.state else {
            return Err(Fatal(INTERNAL_ERROR, "the TLS connection failed"));
        };
        if data.len() < HEADER {
            return Ok(None);
        }
        let kind = data[0];
        let len = usize::from(u16::from_be_bytes([data[3], data[4]]));
        let max = match records.tls13 {
            true => MAX_CIPHERTEXT_13,
            false => MAX_CIPHERTEXT_12,
        };
        if len > max {
            return Err(Fatal(RECORD_OVERFLOW, "a TLS record over the size limit"));
        }
        if data.len() < HEADER + len {
            return Ok(None);
        }
        // Every TLS 1.3 record is application_data outside; a ChangeCipherSpec is allowed
        // only during the handshake (§5).
        if records.tls13 && kind != APPLICATION_DATA {
            return Err(Fatal(
                UNEXPECTED_MESSAGE,
                "a TLS record of an unexpected type",
            ));
        }
        let (header, body) = data[..HEADER + len].split_at_mut(HEADER);
        let header = [header[0], header[1], header[2], header[3], header[4]];
        let explicit = records.rx.explicit(records.tls13);
        let Some(sealed) = body.len().checked_sub(explicit + TAG) else {
            return Err(Fatal(BAD_RECORD_MAC, "a TLS record that does not decrypt"));
        };
        let (explicit_nonce, rest) = body.split_at_mut(explicit);
        let (ciphertext, tag) = rest.split_at_mut(sealed);
        let direct = room.len() >= sealed;
        let into = match direct {
            true => Some(&mut room[..sealed]),
            false => None,
        };
        records.rx.open(
            records.tls13,
            &header,
            explicit_nonce,
            ciphertext,
            tag,
            into,
        )?;
        let plain: &[u8] = match direct {
            true => &room[..sealed],
            false => ciphertext,
        };
        // TLS 1.3: the inner content type is the last byte that is not padding (§5.2).
        let (kind, content) = match records.tls13 {
            true => match plain.iter().rposition(|&b| b != 0) {
                Some(end) => (plain[end], end),
                None => {
                    return Err(Fatal(
                        UNEXPECTED_MESSAGE,
                        "a TLS record without a content type",
                    ))
                }
            },
            false => (kind, sealed),
        };
        let plain = &plain[..content];
        if content > MAX_PLAINTEXT {
            return Err(Fatal(RECORD_OVERFLOW, "a TLS record over the size limit"));
        }
        if kind == APPLICATION_DATA && content > 0 {
            records.idle = 0;
        } else {
            records.idle += 1;
            if records.idle > MAX_IDLE_RECORDS {
                return Err(Fatal(
                    UNEXPECTED_MESSAGE,
                    "too many TLS records without application data",
                ));
            }
        }
        let opened = match kind {
            APPLICATION_DATA if direct => Opened::Direct(content),
            APPLICATION_DATA => {
                let start = HEADER + explicit;
                Opened::InPlace(start..start + content)
            }
            ALERT => match plain {
                [_, CLOSE_NOTIFY] => Opened::Closed,
                [WARNING, USER_CANCELED] => Opened::Nothing,
                [_, _] => return Err(Fatal(NO_ALERT, "the peer sent a fatal TLS alert")),
                _ => return Err(Fatal(DECODE_ERROR, "a TLS alert of the wrong length")),
            },
            HANDSHAKE if records.tls13 => {
                records.on_handshake(plain)?;
                Opened::Nothing
            }
            _ => {
                return Err(Fatal(
                    UNEXPECTED_MESSAGE,
                    "a TLS record of an unexpected type",
                ))
            }
        };
        Ok(Some((opened, HEADER + len)))
    }

    /// Seals plaintext into records (up to 16 KiB each) for
    /// [`write_records`](Self::write_records), taking what fits under 64 KiB of records
    /// waiting, as a socket takes what fits (`WouldBlock` when nothing does). During the
    /// handshake, up to 64 KiB is kept and sealed when it is over.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        match &self.state {
            State::Records(_) => {}
            State::Failed => return Err(failed()),
            State::Server(_) | State::Client(_) => {
                let room = OUT_LIMIT.saturating_sub(self.early.len());
                let mut taken = 0;
                for b in bufs {
                    let k = b.len().min(room - taken);
                    self.early.extend_from_slice(&b[..k]);
                    taken += k;
                }
                return match taken {
                    0 => Err(io::ErrorKind::WouldBlock.into()),
                    n => Ok(n),
                };
            }
        }
        if self.out.waiting().len() >= OUT_LIMIT {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut out = self.take_out();
        let result = self.seal(&mut out, bufs, OUT_LIMIT);
        self.out = out;
        result
    }

    /// Seals `bufs` into `out` while less than `limit` bytes of records wait there.
    ///
    /// A record whose content lies in one slice is sealed from it straight into `out` (one
    /// pass over the bytes); one gathered from several slices is copied into `out` and sealed
    /// there. A short slice before a long one (a frame header before its payload) becomes a
    /// record of its own where that adds no record (a 16 KiB payload behind its header is two
    /// records either way), so that the payload's records come from one slice.
    fn seal(
        &mut self,
        out: &mut Outgoing,
        bufs: &[IoSlice<'_>],
        limit: usize,
    ) -> io::Result<usize> {
        let State::Records(records) = &mut self.state else {
            return Err(failed());
        };
        let mut taken = 0;
        let mut chunks = bufs.iter().map(|b| &b[..]).filter(|b| !b.is_empty());
        let mut current = chunks.next().unwrap_or(&[]);
        // Bytes offered and not yet sealed, `current` included.
        let mut left: usize = bufs.iter().map(|b| b.len()).sum();
        while !current.is_empty() && out.waiting().len() < limit {
            if records.update_due || records.left == 0 {
                if !records.tls13 {
                    if taken > 0 {
                        break;
                    }
                    return Err(io::Error::other(
                        "this TLS 1.2 connection sealed as many records as its cipher allows",
                    ));
                }
                records
                    .update_tx(out, false)
                    .map_err(|Fatal(_, what)| io::Error::other(what))?;
            }
            let start = records.begin_record(out);
            let body = out.len();
            // (The last slice is alone too: 1 == 1 + 0.)
            let alone = current.len() >= MAX_PLAINTEXT
                || left.div_ceil(MAX_PLAINTEXT)
                    == 1 + (left - current.len()).div_ceil(MAX_PLAINTEXT);
            let content = if alone {
                let k = current.len().min(MAX_PLAINTEXT);
                records.seal_record(out, start, APPLICATION_DATA, &current[..k]);
                current = &current[k..];
                if current.is_empty() {
                    current = chunks.next().unwrap_or(&[]);
                }
                k
            } else {
                // Up to 16 KiB of the caller's slices copied behind the header.
                while out.len() - body < MAX_PLAINTEXT && !current.is_empty() {
                    let k = current.len().min(MAX_PLAINTEXT - (out.len() - body));
                    out.extend_from_slice(&current[..k]);
                    current = &current[k..];
                    if current.is_empty() {
                        current = chunks.next().unwrap_or(&[]);
                    }
                }
                let content = out.len() - body;
                records.seal_record(out, start, APPLICATION_DATA, &[]);
                content
            };
            taken += content;
            left -= content;
        }
        Ok(taken)
    }

    /// Writes sealed records to the socket: `Ok(true)` when all went, `Ok(false)` when the
    /// socket is full.
    pub fn write_records(&mut self, socket: &mut impl Write) -> io::Result<bool> {
        let out = &mut self.out;
        while out.start < out.end {
            match socket.write(&out.buf[out.start..out.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => out.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // All written: the buffer goes back to the thread for the next session.
        let out = std::mem::take(&mut self.out).buf;
        if out.capacity() > 0 {
            let _ = SPARE_OUT.try_with(|spare| {
                let mine = spare.take();
                spare.set(if mine.capacity() >= out.capacity() {
                    mine
                } else {
                    out
                });
            });
        }
        Ok(true)
    }

    /// Queues close_notify (after the handshake; during it there is nothing to close).
    pub fn send_close_notify(&mut self) {
        self.queue_alert(WARNING, CLOSE_NOTIFY);
    }

    /// The outgoing buffer (the thread's spare if this session has none): unwritten records
    /// kept.
    fn take_out(&mut self) -> Outgoing {
        let mut out = std::mem::take(&mut self.out);
        if out.buf.capacity() == 0 {
            out.buf = SPARE_OUT.try_with(Cell::take).unwrap_or_default();
        }
        if out.start == out.end {
            out.start = 0;
            out.end = 0;
        } else if out.start >= OUT_LIMIT {
            // Records are written from the front and sealed at the back: the waiting ones
            // move to the front, so that a socket that never empties (a slow reader) does not
            // make the buffer grow with everything ever sent. At most once per 64 KiB sent.
            out.buf.copy_within(out.start..out.end, 0);
            out.end -= out.start;
            out.start = 0;
        }
        if out.buf.capacity() == 0 {
            // Room for a full queue and the record that passes the mark: no growing after.
            out.buf.reserve(OUT_LIMIT + MAX_CIPHERTEXT_12 + 64);
        }
        out
    }

    fn queue_alert(&mut self, level: u8, description: u8) {
        if !matches!(self.state, State::Records(_)) {
            return;
        }
        let mut out = self.take_out();
        if let State::Records(records) = &mut self.state {
            let start = records.begin_record(&mut out);
            records.seal_record(&mut out, start, ALERT, &[level, description]);
        }
        self.out = out;
    }

    /// A fatal error: its alert queued, nothing more read or sealed.
    fn fail(&mut self, alert: u8, what: &'static str) -> io::Error {
        if alert != NO_ALERT {
            self.queue_alert(FATAL, alert);
        }
        self.state = State::Failed;
        io::Error::new(io::ErrorKind::InvalidData, what)
    }

    fn take_held(&mut self, buf: &mut [u8]) -> usize {
        if self.held.is_empty() {
            return 0;
        }
        let held = &self.held[self.held_start..];
        let n = held.len().min(buf.len());
        buf[..n].copy_from_slice(&held[..n]);
        self.held_start += n;
        if self.held_start == self.held.len() {
            self.held = Vec::new();
            self.held_start = 0;
        }
        n
    }

    // ------------------------------------------------------------------ the handshake

    /// Reads handshake bytes until the socket has no more (`WouldBlock`) or the handshake is
    /// over: `Ok(true)` at the end of the stream, `Ok(false)` when it is over (what followed
    /// it waits in `partial`).
    fn read_handshake(&mut self, socket: &mut impl Read) -> io::Result<bool> {
        while self.is_handshaking() {
            let incoming = match &mut self.state {
                State::Server(h) => &mut h.incoming,
                State::Client(h) => &mut h.incoming,
                _ => break,
            };
            let have = incoming.len();
            if have >= MAX_HANDSHAKE_INPUT {
                self.state = State::Failed;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a TLS handshake flight over 256 KiB",
                ));
            }
            incoming.resize(have + 16 * 1024, 0);
            let read = socket.read(&mut incoming[have..]);
            incoming.truncate(have + *read.as_ref().unwrap_or(&0));
            match read? {
                0 => {
                    self.eof = true;
                    return Ok(true);
                }
                _ => self.advance()?,
            }
            if self.eof {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs rustls over the handshake bytes received: its answers go to `out`; when the
    /// handshake is over the keys come here, and what followed it waits in `partial`.
    fn advance(&mut self) -> io::Result<()> {
        let mut out = self.take_out();
        let step = match &mut self.state {
            State::Server(h) => h.conn.drive(&mut HandshakeInput {
                incoming: &mut h.incoming,
                fed: &mut h.fed,
                out: &mut out,
                spoke: &mut h.spoke,
            }),
            State::Client(h) => h.conn.drive(&mut HandshakeInput {
                incoming: &mut h.incoming,
                fed: &mut h.fed,
                out: &mut out,
                spoke: &mut h.spoke,
            }),
            _ => Ok(Step::Blocked),
        };
        self.out = out;
        match step {
            Ok(Step::Blocked) => Ok(()),
            Ok(Step::Done) => self.take_keys(),
            Ok(Step::Closed) => {
                self.eof = true;
                Ok(())
            }
            Err(e) => {
                self.state = State::Failed;
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }

    fn take_keys(&mut self) -> io::Result<()> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        let taken = match state {
            State::Server(h) => hand_over(*h, Kernel::Server),
            State::Client(h) => hand_over(*h, Kernel::Client),
            other => {
                self.state = other;
                return Ok(());
            }
        };
        let (incoming, secrets, kernel, resumed) =
            taken.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let tls13 = kernel.tls13();
        let (Some(rx), Some(tx)) = (
            Direction::new(secrets.rx.0, secrets.rx.1),
            Direction::new(secrets.tx.0, secrets.tx.1),
        ) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a TLS cipher suite this crate does not seal",
            ));
        };
        let left = kernel.confidentiality_limit();
        self.state = State::Records(Box::new(Records {
            kernel,
            rx,
            tx,
            tls13,
            left,
            idle: 0,
            update_due: false,
        }));
        self.resumed = resumed;
        if !incoming.is_empty() {
            self.partial = incoming;
        }
        let early = std::mem::take(&mut self.early);
        if !early.is_empty() {
            let mut out = self.take_out();
            // All of it (at most 64 KiB: `write_vectored` took no more).
            let sealed = self.seal(&mut out, &[IoSlice::new(&early)], usize::MAX);
            self.out = out;
            sealed?;
        }
        Ok(())
    }
}

/// What a misbehaving peer sends, for the fuzz target (`__fuzz::check_tls_session`), whose
/// peer is a `Session` of either side; and what a session holds between calls.
#[cfg(any(fuzzing, feature = "__fuzz"))]
impl Session {
    /// Seals one record of (inner) type `kind` holding `content`, and for TLS 1.3 `padding`
    /// zeros after its type (RFC 8446 §5.4). False before the handshake is over or after a
    /// failure. The record's length must stay under 2^16 bytes.
    pub(crate) fn fuzz_seal(&mut self, kind: u8, content: &[u8], padding: usize) -> bool {
        let mut out = self.take_out();
        let sealed = match &mut self.state {
            State::Records(records) => {
                let start = records.begin_record(&mut out);
                out.extend_from_slice(content);
                // Sealed in place behind the header: content, then its type and the zeros
                // but one, then the last zero as the type `seal_record` appends.
                let last = match records.tls13 && padding > 0 {
                    true => {
                        out.extend_from_slice(&[kind]);
                        out.grow(padding - 1).fill(0);
                        0
                    }
                    false => kind,
                };
                debug_assert!(out.len() - start + TAG <= usize::from(u16::MAX));
                records.seal_record(&mut out, start, last, &[]);
                true
            }
            _ => false,
        };
        self.out = out;
        sealed
    }

    /// Sends a TLS 1.3 KeyUpdate, asking the peer for one with `request`, and moves to the
    /// next transmit key. False if there is none to move to.
    pub(crate) fn fuzz_update_keys(&mut self, request: bool) -> bool {
        let mut out = self.take_out();
        let updated = match &mut self.state {
            State::Records(records) if records.tls13 => {
                records.update_tx(&mut out, request).is_ok()
            }
            _ => false,
        };
        self.out = out;
        updated
    }

    /// Bytes held between calls: of a cut record, of plaintext not yet handed out, of
    /// records waiting for the socket.
    pub(crate) fn fuzz_buffered(&self) -> (usize, usize, usize) {
        let held = self.held.len() - self.held_start;
        (self.partial.len(), held, self.out.waiting().len())
    }

    /// Records without application data received in a row so far.
    pub(crate) fn fuzz_idle(&self) -> u32 {
        match &self.state {
            State::Records(records) => records.idle,
            _ => 0,
        }
    }

    /// The receive direction's sequence number (0 again after each KeyUpdate received).
    pub(crate) fn fuzz_rx_seq(&self) -> Option<u64> {
        match &self.state {
            State::Records(records) => Some(records.rx.seq),
            _ => None,
        }
    }

    /// Whether a fatal error ended the session.
    pub(crate) fn fuzz_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }
}

impl Records {
    /// Post-handshake messages (TLS 1.3): KeyUpdate, and (client) NewSessionTicket. Each must
    /// be whole in its record: §5.1 allows fragments, but no implementation sends these in
    /// pieces, and refusing them bounds what a session holds.
    fn on_handshake(&mut self, mut messages: &[u8]) -> Result<(), Fatal> {
        const FRAGMENT: Fatal = Fatal(UNEXPECTED_MESSAGE, "a fragmented TLS handshake message");
        if messages.is_empty() {
            return Err(FRAGMENT);
        }
        while !messages.is_empty() {
            let [kind, a, b, c, ..] = *messages else {
                return Err(FRAGMENT);
            };
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            let Some(body) = messages.get(4..4 + len) else {
                return Err(FRAGMENT);
            };
            messages = &messages[4 + len..];
            match (kind, &mut self.kernel) {
                (KEY_UPDATE, kernel) => {
                    let asked = match body {
                        [0] => false,
                        [1] => true,
                        [_] => return Err(Fatal(ILLEGAL_PARAMETER, "a malformed TLS KeyUpdate")),
                        _ => return Err(Fatal(DECODE_ERROR, "a malformed TLS KeyUpdate")),
                    };
                    // The key changes after it: nothing may follow it in its record (§5.1).
                    if !messages.is_empty() {
                        return Err(Fatal(UNEXPECTED_MESSAGE, "data after a TLS KeyUpdate"));
                    }
                    self.rx = kernel.next_keys(false)?;
                    if asked {
                        self.update_due = true;
                    }
                }
                (NEW_SESSION_TICKET, Kernel::Client(k)) => {
                    k.handle_new_session_ticket(body)
                        .map_err(|_| Fatal(DECODE_ERROR, "a malformed TLS session ticket"))?;
                }
                _ => {
                    return Err(Fatal(
                        UNEXPECTED_MESSAGE,
                        "a TLS handshake message after the handshake",
                    ))
                }
            }
        }
        Ok(())
    }

    /// Sends our KeyUpdate (update_requested if `request`; a session asks for none itself,
    /// the fuzz target's peer does) and moves to the next transmit key. The next key comes
    /// first: without one (an error), no KeyUpdate is sent.
    fn update_tx(&mut self, out: &mut Outgoing, request: bool) -> Result<(), Fatal> {
        let next = self.kernel.next_keys(true)?;
        let start = self.begin_record(out);
        let update = [KEY_UPDATE, 0, 0, 1, u8::from(request)];
        self.seal_record(out, start, HANDSHAKE, &update);
        self.tx = next;
        self.left = self.kernel.confidentiality_limit();
        self.update_due = false;
        Ok(())
    }

    /// Begins a record at the end of `out`: room for its header and, for TLS 1.2 AES-GCM,
    /// its explicit nonce, both written by [`seal_record`](Self::seal_record). Its start.
    fn begin_record(&self, out: &mut Outgoing) -> usize {
        let start = out.len();
        out.grow(HEADER + self.tx.explicit(self.tls13));
        start
    }

    /// Seals the record begun at `out[start..]` (its header, 5 bytes, then for TLS 1.2
    /// AES-GCM room for the explicit nonce), of type `kind`: its content is `content`, sealed
    /// from there into `out`, or if that is empty whatever follows in `out`, sealed in place.
    fn seal_record(&mut self, out: &mut Outgoing, start: usize, kind: u8, content: &[u8]) {
        let explicit = self.tx.explicit(self.tls13);
        let inner = usize::from(self.tls13); // TLS 1.3's inner content type (§5.2); no padding
        let in_place = out.len() - (start + HEADER + explicit);
        debug_assert!(content.is_empty() || in_place == 0);
        let length = in_place + content.len() + inner;
        let seq = self.tx.seq;
        let nonce = self.tx.nonce();
        out.grow(content.len() + inner + TAG);
        let (header, rest) = out.from(start).split_at_mut(HEADER);
        let (explicit_nonce, rest) = rest.split_at_mut(explicit);
        explicit_nonce.copy_from_slice(&nonce[NONCE_LEN - explicit..]);
        header[0] = if self.tls13 { APPLICATION_DATA } else { kind };
        header[1..3].copy_from_slice(&[3, 3]);
        header[3..].copy_from_slice(&((explicit + length + TAG) as u16).to_be_bytes());
        let mut aad = [0u8; 13];
        let aad = if self.tls13 {
            aad[..HEADER].copy_from_slice(header);
            &aad[..HEADER]
        } else {
            aad[..8].copy_from_slice(&seq.to_be_bytes());
            aad[8..11].copy_from_slice(&header[..3]);
            aad[11..].copy_from_slice(&((in_place + content.len()) as u16).to_be_bytes());
            &aad[..]
        };
        let nonce = Nonce::assume_unique_for_key(nonce);
        let kind = [kind];
        let extra = &kind[..inner];
        // Sealing fails only for inputs over the AEAD's limit (gigabytes), never a record,
        // or for lengths that do not match, which they do here. Were it to fail, the record
        // would go out zeroed (the peer fails it: bad_record_mac), never with old bytes.
        let sealed = if content.is_empty() {
            let (text, extra_out) = rest.split_at_mut(in_place);
            self.tx
                .key
                .seal_in_place_scatter(nonce, Aad::from(aad), text, extra, extra_out)
        } else {
            let (text, extra_out) = rest.split_at_mut(content.len());
            self.tx.key.seal_out_of_place_scatter(
                nonce,
                Aad::from(aad),
                content,
                text,
                extra,
                extra_out,
            )
        };
        if sealed.is_err() {
            out.from(start + HEADER + explicit).fill(0);
        }
        self.left = self.left.saturating_sub(1);
    }
}

/// Sealed records waiting for the socket: `buf[start..end]`. `buf` keeps its length when
/// they are written (the bytes past `end` are old records), so that a record sealed into it
/// from the caller's slices needs no zeroing first.
#[derive(Default)]
struct Outgoing {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Outgoing {
    fn waiting(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Where the next byte goes.
    fn len(&self) -> usize {
        self.end
    }

    /// `n` more bytes at the end, to be written over (old bytes, or zeros where `buf` grows).
    fn grow(&mut self, n: usize) -> &mut [u8] {
        let at = self.end;
        self.end += n;
        if self.buf.len() < self.end {
            self.buf.resize(self.end, 0);
        }
        &mut self.buf[at..self.end]
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.grow(bytes.len()).copy_from_slice(bytes);
    }

    fn truncate(&mut self, end: usize) {
        self.end = self.end.min(end);
    }

    /// The bytes from `at` to the end.
    fn from(&mut self, at: usize) -> &mut [u8] {
        &mut self.buf[at..self.end]
    }
}

impl Direction {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> Option<Direction> {
        let (algorithm, key, iv, gcm) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                (&aws_lc_rs::aead::AES_128_GCM, key, iv, true)
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                (&aws_lc_rs::aead::AES_256_GCM, key, iv, true)
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aws_lc_rs::aead::CHACHA20_POLY1305, key, iv, false)
            }
            _ => return None,
        };
        let key = LessSafeKey::new(UnboundKey::new(algorithm, key.as_ref()).ok()?);
        let iv = iv.as_ref().try_into().ok()?;
        Some(Direction { key, iv, seq, gcm })
    }

    /// The next record's nonce: the IV with the sequence number XORed into its last 8 bytes
    /// (TLS 1.3 §5.3, RFC 7905; rustls makes TLS 1.2 GCM's explicit nonces the same way).
    fn nonce(&mut self) -> [u8; NONCE_LEN] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        nonce
    }

    /// Bytes of explicit nonce before each record's ciphertext: 8 for TLS 1.2 AES-GCM
    /// (RFC 5288 §3), none otherwise.
    fn explicit(&self, tls13: bool) -> usize {
        match !tls13 && self.gcm {
            true => EXPLICIT,
            false => 0,
        }
    }

    /// Opens the next record's `ciphertext` and `tag` (`header`: the record's; `explicit`:
    /// its explicit nonce, empty but for TLS 1.2 AES-GCM) into `into` (as long as the
    /// ciphertext), or in place.
    fn open(
        &mut self,
        tls13: bool,
        header: &[u8; HEADER],
        explicit: &[u8],
        ciphertext: &mut [u8],
        tag: &[u8],
        into: Option<&mut [u8]>,
    ) -> Result<(), Fatal> {
        let seq = self.seq;
        let nonce = match explicit.len() {
            EXPLICIT => {
                self.seq += 1;
                let mut nonce = [0u8; NONCE_LEN];
                nonce[..4].copy_from_slice(&self.iv[..4]);
                nonce[4..].copy_from_slice(explicit);
                nonce
            }
            _ => self.nonce(),
        };
        let nonce = Nonce::assume_unique_for_key(nonce);
        let mut aad = [0u8; 13];
        let aad = match tls13 {
            true => {
                aad[..HEADER].copy_from_slice(header);
                &aad[..HEADER]
            }
            false => {
                aad[..8].copy_from_slice(&seq.to_be_bytes());
                aad[8..11].copy_from_slice(&header[..3]);
                aad[11..].copy_from_slice(&(ciphertext.len() as u16).to_be_bytes());
                &aad[..]
            }
        };
        let opened = match into {
            None => self
                .key
                .open_in_place_separate_tag(nonce, Aad::from(aad), tag, ciphertext)
                .map(|_| ()),
            Some(into) => {
                self.key
                    .open_separate_gather(nonce, Aad::from(aad), ciphertext, tag, into)
            }
        };
        opened.map_err(|_| Fatal(BAD_RECORD_MAC, "a TLS record that does not decrypt"))
    }
}

fn done(len: usize) -> Plaintext {
    Plaintext {
        len,
        drained: false,
    }
}

fn failed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "the TLS connection failed")
}

impl Kernel {
    fn tls13(&self) -> bool {
        let version = match self {
            Kernel::Server(k) => k.protocol_version(),
            Kernel::Client(k) => k.protocol_version(),
        };
        version == ProtocolVersion::TLSv1_3
    }

    /// Records one key may seal: the suite's confidentiality limit, renewed a sixteenth
    /// early.
    fn confidentiality_limit(&self) -> u64 {
        let suite = match self {
            Kernel::Server(k) => k.negotiated_cipher_suite(),
            Kernel::Client(k) => k.negotiated_cipher_suite(),
        };
        let limit = match suite {
            SupportedCipherSuite::Tls13(s) => s.common.confidentiality_limit,
            SupportedCipherSuite::Tls12(s) => s.common.confidentiality_limit,
        };
        (limit - limit / 16).max(1)
    }

    /// The next transmit (`tx`) or receive keys, after a TLS 1.3 KeyUpdate.
    fn next_keys(&mut self, tx: bool) -> Result<Direction, Fatal> {
        let next = match (self, tx) {
            (Kernel::Server(k), true) => k.update_tx_secret(),
            (Kernel::Server(k), false) => k.update_rx_secret(),
            (Kernel::Client(k), true) => k.update_tx_secret(),
            (Kernel::Client(k), false) => k.update_rx_secret(),
        };
        next.ok()
            .and_then(|(seq, secrets)| Direction::new(seq, secrets))
            .ok_or(Fatal(INTERNAL_ERROR, "a TLS key update failed"))
    }
}

enum Step {
    /// rustls needs more input.
    Blocked,
    /// The handshake is over.
    Done,
    /// The peer closed during the handshake.
    Closed,
}

/// One pass of rustls' unbuffered state machine over the handshake bytes received, for
/// either side (the two connection types have the same methods, not a common trait).
///
/// rustls is given the received bytes one whole record at a time (`fed`: how many it has)
/// and no more once the handshake is over, so that everything after the handshake's last
/// message (application data, a KeyUpdate, close_notify) is left for the session's own
/// records: rustls must not answer or buffer any of it, its keys are about to be taken.
trait Drive: Sized {
    type Data;
    fn drive(&mut self, h: &mut HandshakeInput<'_>) -> Result<Step, rustls::Error>;
    fn resumed(&self) -> bool;
    fn into_kernel(
        self,
    ) -> Result<(rustls::ExtractedSecrets, KernelConnection<Self::Data>), rustls::Error>;
}

/// The keys out of a finished handshake: what followed it (unread by rustls), the secrets,
/// the `KernelConnection`, whether it resumed.
fn hand_over<C: Drive>(
    h: Handshake<C>,
    kernel: fn(KernelConnection<C::Data>) -> Kernel,
) -> Result<(Vec<u8>, rustls::ExtractedSecrets, Kernel, bool), rustls::Error> {
    let Handshake {
        conn,
        mut incoming,
        fed,
        ..
    } = h;
    incoming.drain(..fed);
    let resumed = conn.resumed();
    let (secrets, k) = conn.into_kernel()?;
    Ok((incoming, secrets, kernel(k), resumed))
}

/// What [`Drive::drive`] works on.
struct HandshakeInput<'a> {
    incoming: &'a mut Vec<u8>,
    /// Bytes at the start of `incoming` given to rustls.
    fed: &'a mut usize,
    out: &'a mut Outgoing,
    /// rustls has sent something (records from here on may be encrypted).
    spoke: &'a mut bool,
}

/// Where the whole record starting at `incoming[from..]` ends, if it is all there; a header
/// no record could have is given to rustls at once (all of it), to fail there.
fn next_record(incoming: &[u8], from: usize) -> Option<usize> {
    let header = incoming.get(from..from + HEADER)?;
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if !(20..=23).contains(&header[0]) || len > MAX_CIPHERTEXT_12 {
        return Some(incoming.len());
    }
    let end = from + HEADER + len;
    (end <= incoming.len()).then_some(end)
}

/// Appends what `encode` writes to `out`, growing it as rustls asks.
fn encode_into(
    out: &mut Outgoing,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) {
    let at = out.len();
    let mut size = 4096;
    loop {
        out.grow(size);
        match encode(out.from(at)) {
            Ok(n) => {
                out.truncate(at + n);
                return;
            }
            Err(EncodeError::InsufficientSize(e)) => {
                out.truncate(at);
                size = e.required_size;
            }
            Err(_) => {
                out.truncate(at);
                return;
            }
        }
    }
}

macro_rules! drive {
    ($conn:ty, $data:ty) => {
        impl Drive for $conn {
            type Data = $data;

            fn resumed(&self) -> bool {
                self.handshake_kind() == Some(HandshakeKind::Resumed)
            }

            fn into_kernel(
                self,
            ) -> Result<(rustls::ExtractedSecrets, KernelConnection<$data>), rustls::Error> {
                self.dangerous_into_kernel_connection()
            }

            fn drive(&mut self, h: &mut HandshakeInput<'_>) -> Result<Step, rustls::Error> {
                loop {
                    let fed = *h.fed;
                    let status = self.process_tls_records(&mut h.incoming[..fed]);
                    let discard = status.discard;
                    let state = match status.state {
                        Ok(state) => state,
                        Err(e) => {
                            // The alert rustls queued for it comes out of the next call (over
                            // the same bytes: rustls keeps its place in them).
                            let before = h.out.len();
                            if let Ok(ConnectionState::EncodeTlsData(mut encode)) =
                                self.process_tls_records(&mut h.incoming[..fed]).state
                            {
                                encode_into(h.out, |b| encode.encode(b));
                            }
                            let theirs = matches!(e, rustls::Error::AlertReceived(_));
                            if h.out.len() == before && !*h.spoke && !theirs {
                                // rustls queues none for some malformed first flights (a
                                // ClientHello too large, say); nothing is encrypted yet, so
                                // the alert goes in plaintext.
                                let description = match e {
                                    rustls::Error::InvalidMessage(_) => DECODE_ERROR,
                                    _ => HANDSHAKE_FAILURE,
                                };
                                h.out
                                    .extend_from_slice(&[ALERT, 3, 3, 0, 2, FATAL, description]);
                            }
                            return Err(e);
                        }
                    };
                    let step = match state {
                        ConnectionState::EncodeTlsData(mut encode) => {
                            encode_into(h.out, |b| encode.encode(b));
                            *h.spoke = true;
                            None
                        }
                        ConnectionState::TransmitTlsData(transmit) => {
                            // Written by the caller's next `write_records`.
                            transmit.done();
                            None
                        }
                        ConnectionState::WriteTraffic(_) => Some(Step::Done),
                        ConnectionState::BlockedHandshake => Some(Step::Blocked),
                        ConnectionState::PeerClosed | ConnectionState::Closed => Some(Step::Closed),
                        // Application data cannot come: rustls gets nothing after the
                        // handshake's last record, and 0-RTT is off (`TlsConfig`).
                        _ => {
                            return Err(rustls::Error::General(
                                "application data inside the TLS handshake".into(),
                            ))
                        }
                    };
                    h.incoming.drain(..discard);
                    *h.fed -= discard;
                    // Over only when rustls says so: a server configured to send data before
                    // the client's Finished (half-RTT) may write earlier.
                    let step = match step {
                        Some(Step::Done) if self.is_handshaking() => Some(Step::Blocked),
                        step => step,
                    };
                    match step {
                        None => {}
                        Some(Step::Blocked) => match next_record(h.incoming, *h.fed) {
                            // One more record for rustls.
                            Some(end) => *h.fed = end,
                            None => return Ok(Step::Blocked),
                        },
                        Some(step) => return Ok(step),
                    }
                }
            }
        }
    };
}

drive!(UnbufferedServerConnection, ServerConnectionData);
drive!(UnbufferedClientConnection, ClientConnectionData);

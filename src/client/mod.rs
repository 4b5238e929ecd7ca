//! A blocking WebSocket client over [`std::net::TcpStream`], driven by the sans-IO
//! [`Connection`].
//!
//! ```no_run
//! use rfc6455::client::{Client, ConnectOptions};
//! use rfc6455::{CloseCode, Event};
//! use std::time::Duration;
//!
//! let options = ConnectOptions::default()
//!     .protocol("chat")
//!     .header("Authorization", "Bearer abc")
//!     .read_timeout(Some(Duration::from_secs(30)));
//! let mut client = Client::connect_with("ws://127.0.0.1:9001/chat", &options)?;
//! client.send_text("hello")?;
//! match client.recv()? {
//!     Event::Message(m) => println!("got {m:?}"),
//!     Event::Close(frame) => println!("server closed: {frame:?}"),
//!     _ => {} // pings are answered automatically; pongs are reported
//! }
//! // Sends the close frame, waits (bounded) for the server's close and its TCP close.
//! let reply = client.close(CloseCode::NORMAL, "bye")?;
//! println!("server answered {reply:?}");
//! # Ok::<(), rfc6455::client::ClientError>(())
//! ```
//!
//! **Received messages are owned** ([`Event<'static>`]). The client reads into its own buffer
//! and parses with [`Connection::read`], so any number of frames per read and messages of any
//! size (up to [`Config::max_message_size`]) work. A message that arrived in one read is
//! copied once out of that buffer; a larger or fragmented one is assembled by the connection
//! and handed over without a further copy.
//!
//! **Timeouts** ([`ConnectOptions`]): the connect timeout bounds the TCP connect and the
//! opening handshake; a read timeout makes [`Client::recv`] return [`ClientError::Timeout`]
//! *without* harming the connection (call it again); the close timeout bounds the wait for
//! the server's close frame and for its TCP close.
//!
//! **permessage-deflate** (RFC 7692, feature `deflate`): [`ConnectOptions::deflate`] offers it;
//! if the server accepts, messages are compressed and decompressed transparently (see
//! [`Client::deflate`]); if it does not, the connection works without it.
//!
//! **`wss://`** (feature `tls`): TLS 1.3 or 1.2 through rustls (the `aws-lc-rs` provider), with
//! SNI, ALPN `http/1.1`, and the server's certificate checked against the Mozilla root
//! store compiled in from `webpki-roots` (the same on every machine and in a bare container,
//! no system store to find), or only against the CAs of [`ConnectOptions::ca`] for a
//! private CA. A certificate that does not verify fails the connect with
//! [`ClientError::Certificate`], which says which check failed ([`CertificateCheck`]:
//! expired, wrong name, unknown issuer …). [`ConnectOptions::danger_accept_invalid_certs`]
//! turns the checks off, for local testing only. Without the feature, `wss://` fails with
//! [`ClientError::TlsNotSupported`].
//!
//! [`Reconnect`] wraps a client with exponential backoff and jitter.

mod backoff;
mod stream;
#[cfg(feature = "tls")]
mod tls;

pub use backoff::{should_reconnect, Backoff, Reconnect};
#[cfg(feature = "tls")]
pub use tls::CertificateCheck;

use stream::Stream;

#[cfg(feature = "deflate")]
use crate::proto::deflate::{DeflateConfig, DeflateParams, NegotiationError};
#[cfg(feature = "deflate")]
use crate::proto::SessionError;
use crate::proto::{
    ClientHandshake, ClientHandshakeError, ClientOptions, ClientSession, CloseCode, CloseFrame,
    Config, Connection, Error, Event, HeaderError, Message, ProtocolError, RandomKeys, Response,
    State, Status, TimeoutKind, Url, UrlError, UsageError,
};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The size of the client's read buffer.
const READ_BUF: usize = 64 * 1024;

/// How to connect: what to offer in the handshake, timeouts, and the connection's limits.
///
/// ```
/// use rfc6455::client::ConnectOptions;
/// use std::time::Duration;
///
/// let mut options = ConnectOptions::default()
///     .protocol("v2.chat")
///     .header("Origin", "https://example.com")
///     .connect_timeout(Some(Duration::from_secs(3)));
/// options.config.max_message_size = 1 << 20;
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Subprotocols, extensions and extra headers to send, and limits on the response head.
    pub handshake: ClientOptions,
    /// Limits and options of the WebSocket connection (message sizes, auto-pong …).
    pub config: Config,
    /// Bounds the TCP connect and, separately, the opening handshake. `None` waits as long as
    /// the OS does; so does, for the handshake, a timeout too large to add to the clock (such
    /// as [`Duration::MAX`]). Default 10 s.
    pub connect_timeout: Option<Duration>,
    /// How long [`Client::recv`] waits for data before returning [`ClientError::Timeout`].
    /// `None` waits forever. Default `None`.
    pub read_timeout: Option<Duration>,
    /// How long a write may block (the server not reading) before failing with
    /// [`ClientError::Timeout`]. `None` waits forever. Default 30 s.
    pub write_timeout: Option<Duration>,
    /// How long closing waits for the server's close frame, and then for the server to close
    /// TCP; a timeout too large to add to the clock (such as [`Duration::MAX`]) waits as long
    /// as it takes. Default 5 s. It is the connection's [`Config::close_timeout`] (it takes
    /// the place of `config`'s): the core's timers run both waits.
    pub close_timeout: Duration,
    /// Offer permessage-deflate with this configuration (see [`deflate`](Self::deflate)).
    /// Default `None`: not offered.
    #[cfg(feature = "deflate")]
    pub deflate: Option<DeflateConfig>,
    /// `wss://`: trust only these CAs (a private CA, a test CA) instead of the webpki roots.
    /// Read a PEM file with [`crate::tls::load_certs`]. Default: empty (the webpki roots).
    #[cfg(feature = "tls")]
    pub ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// `wss://`: **accept any certificate, for any name: no authentication at all.** For a
    /// server on this machine with a throwaway certificate, never in production: anyone on
    /// the path can read and change the traffic. Default `false`.
    #[cfg(feature = "tls")]
    pub danger_accept_invalid_certs: bool,
    /// `wss://`: a rustls configuration of your own, used as it is (then [`ca`](Self::ca)
    /// and `danger_accept_invalid_certs` are ignored). One shared by many connects also
    /// shares its TLS session cache, so reconnects resume. See
    /// [`with_shared_tls`](Self::with_shared_tls).
    #[cfg(feature = "tls")]
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            handshake: ClientOptions::default(),
            config: Config::default(),
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: None,
            write_timeout: Some(Duration::from_secs(30)),
            close_timeout: Duration::from_secs(5),
            #[cfg(feature = "deflate")]
            deflate: None,
            #[cfg(feature = "tls")]
            ca: Vec::new(),
            #[cfg(feature = "tls")]
            danger_accept_invalid_certs: false,
            #[cfg(feature = "tls")]
            tls_config: None,
        }
    }
}

impl ConnectOptions {
    /// Adds a subprotocol to offer (most preferred first).
    pub fn protocol(mut self, protocol: impl Into<String>) -> ConnectOptions {
        self.handshake.protocols.push(protocol.into());
        self
    }

    /// Adds a header to the handshake request, e.g. `Authorization` or `Origin`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> ConnectOptions {
        self.handshake.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the connection's limits and options.
    pub fn config(mut self, config: Config) -> ConnectOptions {
        self.config = config;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> ConnectOptions {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`read_timeout`](Self::read_timeout).
    pub fn read_timeout(mut self, timeout: Option<Duration>) -> ConnectOptions {
        self.read_timeout = timeout;
        self
    }

    /// Sets [`write_timeout`](Self::write_timeout).
    pub fn write_timeout(mut self, timeout: Option<Duration>) -> ConnectOptions {
        self.write_timeout = timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    pub fn close_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.close_timeout = timeout;
        self
    }

    /// Offers permessage-deflate (RFC 7692) with `config`'s parameters
    /// ([`DeflateConfig::client_offer`]) after any extensions in
    /// [`handshake`](Self::handshake). If the server accepts, its answer is checked
    /// ([`DeflateConfig::client_accept_response`]): a valid one enables compression, an
    /// invalid one fails the connect with [`ClientError::Deflate`]. A server that does not
    /// answer it gives a connection without compression.
    ///
    /// ```
    /// use rfc6455::client::ConnectOptions;
    /// use rfc6455::proto::deflate::DeflateConfig;
    ///
    /// let mut deflate = DeflateConfig::default();
    /// deflate.server_no_context_takeover = false; // better ratio, more server memory
    /// let options = ConnectOptions::default().deflate(deflate);
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: DeflateConfig) -> ConnectOptions {
        self.deflate = Some(config);
        self
    }

    /// Sets [`ca`](Self::ca): `wss://` trusts only these CAs.
    ///
    /// ```no_run
    /// use rfc6455::client::ConnectOptions;
    /// let options = ConnectOptions::default().ca(rfc6455::tls::load_certs("ca.pem")?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn ca(mut self, certs: Vec<rustls::pki_types::CertificateDer<'static>>) -> ConnectOptions {
        self.ca = certs;
        self
    }

    /// Sets [`danger_accept_invalid_certs`](Self::danger_accept_invalid_certs): **no
    /// certificate checks, for local testing only.**
    #[cfg(feature = "tls")]
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> ConnectOptions {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// Sets [`tls_config`](Self::tls_config).
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> ConnectOptions {
        self.tls_config = Some(config);
        self
    }

    /// Builds the rustls configuration these options ask for once and keeps it in
    /// [`tls_config`](Self::tls_config), so that every connect made with (clones of) these
    /// options shares it: one root store, one session cache (reconnects resume).
    #[cfg(feature = "tls")]
    pub fn with_shared_tls(self) -> Result<ConnectOptions, ClientError> {
        let config = tls::client_config(&self)?;
        Ok(self.tls_config(config))
    }
}

/// What a [`Client`] call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL does not parse.
    Url(UrlError),
    /// The URL is `wss://` and this build has no `tls` feature.
    TlsNotSupported,
    /// `wss://`: the server's certificate did not verify. `check` says which check failed;
    /// `error` is rustls' account of it (with the times or names involved).
    #[cfg(feature = "tls")]
    Certificate {
        /// The host from the URL.
        host: String,
        /// The check that failed.
        check: CertificateCheck,
        /// rustls' error.
        error: rustls::CertificateError,
    },
    /// `wss://`: TLS failed otherwise (no protocol version or cipher suite in common, an
    /// alert from the server, a bad option).
    #[cfg(feature = "tls")]
    Tls(rustls::Error),
    /// A subprotocol or header in the options cannot be sent.
    InvalidOption(HeaderError),
    /// The URL's host name did not resolve to an address.
    Resolve {
        /// The host name from the URL.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The TCP connection could not be made (refused, unreachable, timeout).
    Connect {
        /// `host:port` from the URL, an IPv6 host in brackets (`[::1]:9001`).
        addr: String,
        /// The last error from the OS.
        source: io::Error,
    },
    /// The server refused the opening handshake or answered it wrongly.
    Handshake(ClientHandshakeError),
    /// The server accepted permessage-deflate with parameters RFC 7692 or our offer do not
    /// allow; the connection was failed (TCP closed, nothing sent).
    #[cfg(feature = "deflate")]
    Deflate(NegotiationError),
    /// A timeout from [`ConnectOptions`] elapsed. After a read timeout in
    /// [`Client::recv`] the connection is intact and `recv` may be called again.
    Timeout {
        /// What was being waited for: "the opening handshake", "a read", "a write" or
        /// "the close handshake".
        during: &'static str,
    },
    /// The server broke the protocol. The close frame with the matching code was sent and
    /// the connection is closed.
    Protocol(ProtocolError),
    /// The TCP connection ended (EOF or reset) before the close handshake finished: close
    /// code 1006. The OS error, if there was one.
    ConnectionLost(Option<io::Error>),
    /// Another I/O error from the socket.
    Io(io::Error),
    /// The connection is closed: the close handshake is over. The server's close frame, if
    /// it had a code.
    Closed(Option<CloseFrame<'static>>),
    /// A call the protocol does not allow (a ping over 125 bytes, an unsendable close
    /// code); nothing was sent and the connection is unchanged.
    Usage(UsageError),
    /// [`Reconnect::close`] was called, or an earlier ending did not call for a reconnect.
    Stopped,
    /// [`Reconnect`] gave up after this many failed attempts in a row.
    GaveUp {
        /// Failed attempts.
        attempts: u32,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(e) => write!(f, "invalid WebSocket URL: {e}"),
            ClientError::TlsNotSupported => f.write_str(
                "wss:// (WebSocket over TLS) needs the `tls` feature, which this build does not \
                 have; rebuild with it, or use ws://",
            ),
            #[cfg(feature = "tls")]
            ClientError::Certificate { host, check, error } => write!(
                f,
                "the server's TLS certificate for {host} did not verify: {check} ({})",
                tls::describe(error)
            ),
            #[cfg(feature = "tls")]
            ClientError::Tls(e) => write!(f, "TLS failed: {e}"),
            ClientError::InvalidOption(e) => write!(f, "invalid connect option: {e}"),
            ClientError::Resolve { host, source } => write!(
                f,
                "could not resolve the host name {host}: {source}; check that the name is \
                 right and that this machine can reach a DNS server"
            ),
            ClientError::Connect { addr, source } => write!(
                f,
                "could not connect to {addr}: {source}; check that the server is running and \
                 that the host and port are right"
            ),
            ClientError::Handshake(e) => write!(f, "WebSocket handshake failed: {e}"),
            #[cfg(feature = "deflate")]
            ClientError::Deflate(e) => write!(
                f,
                "WebSocket handshake failed: {e} (or connect without ConnectOptions::deflate)"
            ),
            ClientError::Timeout { during } => write!(
                f,
                "timed out waiting for {during}; the server did not answer in time (raise the \
                 timeout in ConnectOptions if it is just slow)"
            ),
            ClientError::Protocol(e) => write!(
                f,
                "the server broke the WebSocket protocol: {e}; the connection was closed"
            ),
            ClientError::ConnectionLost(None) => {
                f.write_str("the server closed the TCP connection without a close handshake (1006)")
            }
            ClientError::ConnectionLost(Some(e)) => write!(
                f,
                "the connection was lost before the close handshake finished (1006): {e}"
            ),
            ClientError::Io(e) => write!(f, "socket error: {e}"),
            ClientError::Closed(None) => f.write_str("the connection is closed"),
            ClientError::Closed(Some(frame)) => {
                write!(f, "the connection is closed (server's close: {frame})")
            }
            ClientError::Usage(e) => write!(f, "{}", Error::Usage(e.clone())),
            ClientError::Stopped => f.write_str(
                "the reconnecting client was closed on purpose or hit an error a reconnect \
                 would not fix; make a new one to connect again",
            ),
            ClientError::GaveUp { attempts } => write!(
                f,
                "gave up reconnecting after {attempts} failed attempts in a row (see \
                 Backoff::max_attempts)"
            ),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Url(e) => Some(e),
            ClientError::InvalidOption(e) => Some(e),
            ClientError::Resolve { source, .. } | ClientError::Connect { source, .. } => {
                Some(source)
            }
            ClientError::Handshake(e) => Some(e),
            #[cfg(feature = "deflate")]
            ClientError::Deflate(e) => Some(e),
            ClientError::Protocol(e) => Some(e),
            #[cfg(feature = "tls")]
            ClientError::Tls(e) => Some(e),
            ClientError::ConnectionLost(Some(e)) | ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// I/O errors that mean the peer is gone.
fn is_lost(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::NotConnected
    )
}

fn is_timeout(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A WebSocket connection to a server, blocking.
///
/// Pings are answered automatically (unless [`Config::auto_pong`] is off) and still
/// reported by [`recv`](Self::recv). Dropping a client without [`close`](Self::close) just
/// closes TCP; the server sees 1006.
pub struct Client {
    stream: Stream,
    conn: Connection,
    buf: Vec<u8>,
    /// `buf[start..end]` is read but not parsed yet.
    start: usize,
    end: usize,
    response: Response,
    read_timeout: Option<Duration>,
    /// The server's close frame, once received.
    peer_close: Option<CloseFrame<'static>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.stream.tcp().peer_addr().ok())
            .field("conn", &self.conn)
            .field("protocol", &self.protocol())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to a `ws://` URL with default options.
    pub fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, &ConnectOptions::default())
    }

    /// Connects to a `ws://` or `wss://` URL: TCP connect, TLS handshake for `wss://`, opening
    /// handshake (random key), then the connection is open.
    pub fn connect_with(url: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
        let url = Url::parse(url).map_err(ClientError::Url)?;
        #[cfg(not(feature = "tls"))]
        if url.is_secure() {
            return Err(ClientError::TlsNotSupported);
        }
        #[allow(unused_mut)]
        let mut session = ClientSession::new();
        #[cfg(feature = "deflate")]
        if let Some(config) = &options.deflate {
            session = session.deflate(config.clone());
        }
        let handshake_options = session.offer(&options.handshake);
        let handshake = ClientHandshake::new(&url, &handshake_options, &mut RandomKeys)
            .map_err(ClientError::InvalidOption)?;
        let tcp = tcp_connect(&url, options.connect_timeout)?;
        // Small frames (pings, short messages) should not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        #[cfg(feature = "tls")]
        let mut stream = if url.is_secure() {
            tls::connect(&url, tcp, options)?
        } else {
            Stream::Plain(tcp)
        };
        #[cfg(not(feature = "tls"))]
        let mut stream = Stream::Plain(tcp);
        let (response, buf, start, end) =
            opening_handshake(&mut stream, &handshake, options.connect_timeout)?;
        stream
            .set_write_timeout(options.write_timeout)
            .map_err(ClientError::Io)?;
        stream
            .set_read_timeout(options.read_timeout)
            .map_err(ClientError::Io)?;
        // One too large for the clock is no deadline: poll_timeout then has none.
        let mut config = options.config.clone();
        config.close_timeout = options.close_timeout;
        let conn = match session.connection(&response, config, rand::random::<[u8; 4]>) {
            Ok(conn) => conn,
            #[cfg(feature = "deflate")]
            Err(SessionError::Deflate(e)) => {
                // RFC 7692 §5: fail the WebSocket connection, i.e. close TCP, send nothing.
                stream.shutdown();
                return Err(ClientError::Deflate(e));
            }
            #[cfg(not(feature = "deflate"))]
            Err(e) => match e {},
        };
        Ok(Client {
            stream,
            conn,
            buf,
            start,
            end,
            response,
            read_timeout: options.read_timeout,
            peer_close: None,
        })
    }

    /// The server's `101` response (its headers, the chosen subprotocol and extensions).
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The permessage-deflate parameters agreed with the server, if it accepted the
    /// extension offered with [`ConnectOptions::deflate`].
    #[cfg(feature = "deflate")]
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.conn.deflate_params()
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.response.protocol()
    }

    /// Where the connection is: [`State::Open`], or [`State::Closed`] after the close
    /// handshake or a failure.
    pub fn state(&self) -> State {
        self.conn.state()
    }

    /// The server's close frame, once received (`None` before, or if it had no code).
    pub fn close_frame(&self) -> Option<&CloseFrame<'static>> {
        self.peer_close.as_ref()
    }

    /// The TCP stream (e.g. for its addresses); under TLS for `wss://`. Reading or writing
    /// it directly breaks the connection.
    pub fn get_ref(&self) -> &TcpStream {
        self.stream.tcp()
    }

    /// Whether the connection runs over TLS (`wss://`).
    pub fn is_tls(&self) -> bool {
        !matches!(self.stream, Stream::Plain(_))
    }

    /// Changes how long [`recv`](Self::recv) waits for data (`None`: forever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.read_timeout = timeout;
        self.stream
            .set_read_timeout(timeout)
            .map_err(ClientError::Io)
    }

    /// Sends a message (written before returning; large ones go out in several frames, see
    /// [`Config::max_send_frame_size`]).
    pub fn send(&mut self, message: Message<'_>) -> Result<(), ClientError> {
        let result = self.conn.send(message);
        self.after_core(result)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        let result = self.conn.send_text(text);
        self.after_core(result)
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let result = self.conn.send_binary(data);
        self.after_core(result)
    }

    /// Sends a ping (at most 125 bytes); its pong arrives through [`recv`](Self::recv) as
    /// [`Event::Pong`].
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let result = self.conn.ping(payload);
        self.after_core(result)
    }

    fn after_core(&mut self, result: Result<(), Error>) -> Result<(), ClientError> {
        result.map_err(|e| self.core_error(e))?;
        self.flush("a write")
    }

    fn core_error(&self, e: Error) -> ClientError {
        match e {
            Error::Protocol(e) => ClientError::Protocol(e),
            Error::ConnectionLost => ClientError::ConnectionLost(None),
            Error::Usage(e) => ClientError::Usage(e),
            _ => match self.conn.error() {
                Some(e) => ClientError::Protocol(e.clone()),
                None => ClientError::Closed(self.peer_close.clone()),
            },
        }
    }

    /// The next event from the server: a message, a ping (already answered), a pong, or
    /// the server's close.
    ///
    /// On [`Event::Close`] the close handshake is completed before returning: the reply is
    /// sent and the server's TCP close awaited (at most the close timeout). Then every call
    /// returns [`ClientError::Closed`].
    ///
    /// With a read timeout set, [`ClientError::Timeout`] means no complete event arrived in
    /// time; the connection is unharmed and `recv` can be called again.
    pub fn recv(&mut self) -> Result<Event<'static>, ClientError> {
        if self.conn.state() == State::Closed {
            return Err(self.core_error(Error::Closed));
        }
        self.next_event("a read")
    }

    fn next_event(&mut self, during: &'static str) -> Result<Event<'static>, ClientError> {
        loop {
            if self.start == self.end {
                self.fill(during)?;
            }
            let mut input = &mut self.buf[self.start..self.end];
            let before = input.len();
            let result = self
                .conn
                .read(&mut input)
                .map(|event| event.map(Event::into_owned));
            self.start += before - input.len();
            match result {
                Ok(Some(Event::Close(frame))) => {
                    self.peer_close.clone_from(&frame);
                    // The reply (if this side had not closed first); a failed write changes
                    // nothing: the handshake is over either way.
                    let _ = self.flush(during);
                    self.end_transport();
                    return Ok(Event::Close(frame));
                }
                Ok(Some(event)) => {
                    // A pong for a ping, maybe.
                    self.flush(during)?;
                    return Ok(event);
                }
                Ok(None) if self.conn.state() == State::Closed => {
                    return Err(self.core_error(Error::Closed));
                }
                Ok(None) => {}
                Err(Error::Protocol(e)) => {
                    // The close frame with the code is queued: send it, then close TCP.
                    let _ = self.flush(during);
                    self.end_transport();
                    return Err(ClientError::Protocol(e));
                }
                Err(e) => return Err(self.core_error(e)),
            }
        }
    }

    /// Reads more bytes into the (empty) buffer.
    fn fill(&mut self, during: &'static str) -> Result<(), ClientError> {
        self.start = 0;
        self.end = 0;
        loop {
            match self.stream.read(&mut self.buf) {
                Ok(0) => {
                    return match self.conn.handle_eof() {
                        Ok(()) => Err(self.core_error(Error::Closed)),
                        Err(_) => Err(ClientError::ConnectionLost(None)),
                    };
                }
                Ok(n) => {
                    self.end = n;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(e.kind()) => return Err(ClientError::Timeout { during }),
                Err(e) => return Err(self.transport_failed(e)),
            }
        }
    }

    /// Writes out everything the connection has queued.
    fn flush(&mut self, during: &'static str) -> Result<(), ClientError> {
        while !self.conn.poll_transmit().is_empty() {
            match self.stream.write(self.conn.poll_transmit()) {
                Ok(0) => {
                    let _ = self.conn.handle_eof();
                    return Err(ClientError::ConnectionLost(None));
                }
                Ok(n) => self.conn.consume_transmit(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(e.kind()) => {
                    return Err(ClientError::Timeout {
                        during: if during == "a read" {
                            "a write"
                        } else {
                            during
                        },
                    })
                }
                Err(e) => return Err(self.transport_failed(e)),
            }
        }
        Ok(())
    }

    /// A read or write failed for good: the connection is over; say whether it was lost.
    fn transport_failed(&mut self, e: std::io::Error) -> ClientError {
        let _ = self.conn.handle_eof();
        if is_lost(e.kind()) {
            ClientError::ConnectionLost(Some(e))
        } else {
            ClientError::Io(e)
        }
    }

    /// Runs the core's timers at the time now: returns how long to wait for the next
    /// deadline (`None`: none, e.g. a close timeout too large for the clock). The clock
    /// starts at the first call, when the close handshake begins: the client runs no
    /// heartbeat or idle timer.
    fn run_timers(&mut self) -> Option<Duration> {
        let now = Instant::now();
        self.conn.handle_timeout(now);
        self.conn
            .poll_timeout()
            .map(|deadline| deadline.saturating_duration_since(now))
    }

    /// After the close handshake (or a failure): closes TCP when the core says so
    /// ([`Connection::should_close_transport`]), reading until then. After a failure that is
    /// at once; after the close handshake the server closes first (RFC 6455 §7.1.1), and the
    /// client waits for its EOF at most the close timeout.
    fn end_transport(&mut self) {
        let mut scratch = [0u8; 4096];
        loop {
            let wait = self.run_timers();
            if self.conn.should_close_transport() || self.conn.timed_out().is_some() {
                break;
            }
            if wait.is_some_and(|wait| wait.is_zero()) {
                continue; // a deadline has just begun: date it
            }
            if self.stream.set_read_timeout(wait).is_err() {
                break;
            }
            match self.stream.read(&mut scratch) {
                Ok(0) => break,
                Ok(_) => {} // nothing after a close frame means anything
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(e.kind()) => {} // the timers decide
                Err(_) => break,
            }
        }
        self.start = 0;
        self.end = 0;
        self.stream.shutdown();
    }

    /// Closes the connection: sends a close frame with `code` and `reason` (cut to 123
    /// bytes), waits for the server's close frame and then for it to close TCP, both bounded
    /// by the close timeout. Returns the server's close frame (`None` if it had no code).
    ///
    /// Messages the server sent before it saw the close are dropped. If the server already
    /// closed, returns its close frame without sending anything. Fails with
    /// [`ClientError::Timeout`] if the server does not answer in time (TCP is closed anyway),
    /// or [`ClientError::Usage`] for a code that may not be sent (1005, 1006 …).
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
    ) -> Result<Option<CloseFrame<'static>>, ClientError> {
        const DURING: &str = "the close handshake";
        match self.conn.state() {
            State::Closed => {
                return match self.conn.error() {
                    Some(e) => Err(ClientError::Protocol(e.clone())),
                    None => Ok(self.peer_close.clone()),
                }
            }
            State::Open => {
                self.conn
                    .close(code, reason)
                    .map_err(|e| self.core_error(e))?;
            }
            _ => {}
        }
        // The core's close timer bounds the wait for the server's close frame.
        let result = self.flush(DURING).and_then(|()| loop {
            let wait = self.run_timers();
            if self.conn.timed_out() == Some(TimeoutKind::Close) {
                break Err(ClientError::Timeout { during: DURING });
            }
            if wait.is_some_and(|wait| wait.is_zero()) {
                continue; // the close deadline has just begun: date it
            }
            self.stream
                .set_read_timeout(wait)
                .map_err(ClientError::Io)?;
            match self.next_event(DURING) {
                Ok(Event::Close(frame)) => break Ok(frame),
                Ok(_) => {}
                // A read that timed out: the timer says whether the close deadline passed.
                Err(ClientError::Timeout { .. }) => {}
                Err(e) => break Err(e),
            }
        });
        if result.is_err() {
            let _ = self.conn.fail(CloseCode::NORMAL, "");
            self.stream.shutdown();
        }
        // Restore the caller's timeout, should the socket be used again (it is not).
        let _ = self.stream.set_read_timeout(self.read_timeout);
        result
    }
}

/// Sends the request and reads the response. Returns it, the read buffer, and where in the
/// buffer the frames the server sent right behind its response start and end.
fn opening_handshake(
    stream: &mut Stream,
    handshake: &ClientHandshake,
    timeout: Option<Duration>,
) -> Result<(Response, Vec<u8>, usize, usize), ClientError> {
    const DURING: &str = "the opening handshake";
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    stream.set_write_timeout(timeout).map_err(ClientError::Io)?;
    stream
        .write_all(handshake.request())
        .map_err(|e| match e.kind() {
            k if is_timeout(k) => ClientError::Timeout { during: DURING },
            k if is_lost(k) => ClientError::ConnectionLost(Some(e)),
            _ => ClientError::Io(e),
        })?;
    let mut buf = vec![0; READ_BUF];
    let mut end = 0;
    loop {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout { during: DURING });
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(ClientError::Io)?;
        }
        if end == buf.len() {
            // Only if the caller raised the head limit above the buffer size.
            buf.resize(buf.len() * 2, 0);
        }
        let n = match stream.read(&mut buf[end..]) {
            Ok(0) => {
                return Err(ClientError::Handshake(ClientHandshakeError::Malformed(
                    "no complete head (the server closed the connection before finishing it)",
                )))
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(e.kind()) => return Err(ClientError::Timeout { during: DURING }),
            Err(e) if is_lost(e.kind()) => return Err(ClientError::ConnectionLost(Some(e))),
            Err(e) => return Err(ClientError::Io(e)),
        };
        end += n;
        match handshake.parse_response(&buf[..end]) {
            Ok(Status::Complete(response, head_len)) => return Ok((response, buf, head_len, end)),
            Ok(Status::Partial) => {}
            Err(e) => return Err(ClientError::Handshake(e)),
        }
    }
}

/// Resolves the URL's host and connects to the first address that answers.
fn tcp_connect(url: &Url, timeout: Option<Duration>) -> Result<TcpStream, ClientError> {
    let connect_error = |source| ClientError::Connect {
        addr: host_port(url),
        source,
    };
    let resolve_error = |source| ClientError::Resolve {
        host: url.host().to_owned(),
        source,
    };
    let addrs: Vec<SocketAddr> = (url.host(), url.port())
        .to_socket_addrs()
        .map_err(resolve_error)?
        .collect();
    if addrs.is_empty() {
        return Err(resolve_error(io::Error::new(
            ErrorKind::NotFound,
            "the name has no address",
        )));
    }
    let mut last = io::Error::new(ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        let result = match timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        match result {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(connect_error(last))
}

/// `host:port`, with an IPv6 host in brackets so that the port stands apart.
fn host_port(url: &Url) -> String {
    if url.host().contains(':') {
        format!("[{}]:{}", url.host(), url.port())
    } else {
        format!("{}:{}", url.host(), url.port())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_port_puts_ipv6_in_brackets() {
        let host_port = |url: &str| super::host_port(&url.parse().unwrap());
        assert_eq!(host_port("ws://[::1]:9311/"), "[::1]:9311");
        assert_eq!(host_port("ws://[::1]/"), "[::1]:80");
        assert_eq!(host_port("ws://127.0.0.1:9311/"), "127.0.0.1:9311");
        assert_eq!(host_port("wss://example.com/"), "example.com:443");
    }
}

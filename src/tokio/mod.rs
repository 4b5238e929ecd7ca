//! The core on tokio (feature `tokio`): a [`WebSocket`] over any `AsyncRead + AsyncWrite`,
//! server role ([`accept`], [`accept_with`]) or client role ([`connect`], [`client`]).
//!
//! ```no_run
//! use rfc6455::tokio::{accept, WebSocket};
//! use tokio::net::TcpListener;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = TcpListener::bind("127.0.0.1:9001").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let Ok(mut ws) = accept(tcp).await else { return };
//!         while let Some(Ok(message)) = ws.recv().await {
//!             if ws.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! The adapter only moves bytes and time: the handshake is [`proto::Request`] and
//! [`proto::ServerSession`] (or [`proto::ClientHandshake`] and [`proto::ClientSession`]), the
//! connection is a [`Connection`] fed with [`Connection::read`], written out with
//! [`Connection::poll_transmit`]. Every protocol rule is the core's, so this is exactly as
//! strict as the mio server and the blocking client (the same Autobahn results).
//!
//! What it adds:
//! - **One write per burst of reads.** `send` leaves the write to the next `recv` while
//!   messages of the same read are still to be handed out, so an echo answers a burst of
//!   messages with one syscall; `recv_with` reads again before it writes, until the
//!   transport has nothing more or 8 reads were made, as the mio server does (16 there), so a
//!   large message streaming through goes back out in writes of up to 512 KiB.
//! - **No buffers while idle.** The read buffer and the transmit buffer are lent by the
//!   thread for the time a read is being answered; an idle connection keeps neither.
//! - **Backpressure.** The [`Sink`](futures_sink::Sink) is ready while less than
//!   [`AcceptOptions::write_buffer`] bytes wait; `recv` stops reading while more wait.
//! - **Split.** [`WebSocket::split`] gives a reader and a writer for two tasks.
//! - **permessage-deflate** through [`AcceptOptions::deflate`] / [`ConnectOptions::deflate`].
//!
//! For `wss://`, make the TLS stream yourself (e.g. with `tokio-rustls`) and hand it to
//! [`client`] or [`accept_with`]: any `AsyncRead + AsyncWrite + Unpin` will do.
//!
//! [`Connection`]: crate::Connection
//! [`Connection::read`]: crate::Connection::read
//! [`Connection::poll_transmit`]: crate::Connection::poll_transmit
//! [`proto::Request`]: crate::proto::Request
//! [`proto::ServerSession`]: crate::proto::ServerSession
//! [`proto::ClientHandshake`]: crate::proto::ClientHandshake
//! [`proto::ClientSession`]: crate::proto::ClientSession

mod socket;
mod timers;
#[cfg(feature = "hyper")]
mod upgrade;

pub use crate::TimeoutKind;
pub use socket::{Reply, ReuniteError, WebSocket, WsReader, WsWriter};
#[cfg(feature = "hyper")]
pub use upgrade::{
    is_upgrade_request, rejection_response, upgrade, upgrade_with, UpgradeFuture, Upgraded,
};

#[cfg(feature = "deflate")]
use crate::proto::deflate::DeflateConfig;
use crate::proto::{
    Accept, ClientHandshake, ClientHandshakeError, ClientOptions, ClientSession, Config,
    HandshakeError, HandshakeLimits, HeaderError, RandomKeys, Rejection, Request, Response,
    ServerSession, SessionError, Status, Url, UrlError,
};
use ::tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ::tokio::net::TcpStream;
use socket::Inner;
use std::fmt;
use std::io;
use std::time::Duration;

/// The default [`AcceptOptions::write_buffer`] / [`ConnectOptions::write_buffer`]: 1 MiB, as
/// the mio server's `Limits::write_high_water`. It also bounds how much the receive path queues before it
/// writes (the answers to up to 8 reads of 64 KiB go out in one write).
pub const DEFAULT_WRITE_BUFFER: usize = 1 << 20;

/// How a server accepts: handshake limits and timeout, the connection's config, deflate.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AcceptOptions {
    /// Limits on the request head. Default [`HandshakeLimits::default`].
    pub limits: HandshakeLimits,
    /// The connection's limits and options (and timers). With `stream_binary_from`,
    /// [`WebSocket::recv_with`] hands large binary messages out in parts as they arrive
    /// (`recv` collects them).
    pub config: Config,
    /// How long the client has to send its request head. Default 10 s; `None`: no limit.
    pub handshake_timeout: Option<Duration>,
    /// Bytes waiting for the transport over which sending waits (the `Sink` is not ready)
    /// and receiving stops reading. Default [`DEFAULT_WRITE_BUFFER`].
    pub write_buffer: usize,
    /// Agree to permessage-deflate with this configuration when the client offers it.
    /// Default `None`.
    #[cfg(feature = "deflate")]
    pub deflate: Option<DeflateConfig>,
}

impl Default for AcceptOptions {
    fn default() -> AcceptOptions {
        AcceptOptions {
            limits: HandshakeLimits::default(),
            config: Config::default(),
            handshake_timeout: Some(Duration::from_secs(10)),
            write_buffer: DEFAULT_WRITE_BUFFER,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }
}

impl AcceptOptions {
    /// Sets [`config`](Self::config).
    pub fn config(mut self, config: Config) -> AcceptOptions {
        self.config = config;
        self
    }

    /// Sets [`deflate`](Self::deflate).
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: DeflateConfig) -> AcceptOptions {
        self.deflate = Some(config);
        self
    }

    pub(crate) fn session(&self) -> ServerSession {
        #[allow(unused_mut)]
        let mut session = ServerSession::new();
        #[cfg(feature = "deflate")]
        if let Some(config) = &self.deflate {
            session = session.deflate(config.clone());
        }
        session
    }
}

/// How a client connects: what to offer, timeouts, the connection's config, deflate.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Subprotocols, extensions and extra headers to send, and limits on the response head.
    pub handshake: ClientOptions,
    /// The connection's limits and options (and timers).
    pub config: Config,
    /// Bounds the TCP connect ([`connect_with`]) and the opening handshake. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// As [`AcceptOptions::write_buffer`].
    pub write_buffer: usize,
    /// Offer permessage-deflate with this configuration. Default `None`.
    #[cfg(feature = "deflate")]
    pub deflate: Option<DeflateConfig>,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            handshake: ClientOptions::default(),
            config: Config::default(),
            handshake_timeout: Some(Duration::from_secs(10)),
            write_buffer: DEFAULT_WRITE_BUFFER,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }
}

impl ConnectOptions {
    /// Adds a subprotocol to offer.
    pub fn protocol(mut self, protocol: impl Into<String>) -> ConnectOptions {
        self.handshake.protocols.push(protocol.into());
        self
    }

    /// Adds a header to the request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> ConnectOptions {
        self.handshake.headers.push((name.into(), value.into()));
        self
    }

    /// Sets [`config`](Self::config).
    pub fn config(mut self, config: Config) -> ConnectOptions {
        self.config = config;
        self
    }

    /// Sets [`deflate`](Self::deflate).
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: DeflateConfig) -> ConnectOptions {
        self.deflate = Some(config);
        self
    }
}

/// What the tokio adapter can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// From the connection: the peer broke the protocol ([`crate::Error::Protocol`]; the close
    /// frame with its code was sent), the connection was lost before the close handshake
    /// ([`crate::Error::ConnectionLost`], 1006), sending after a close
    /// ([`crate::Error::Closed`]), or a call the protocol forbids.
    WebSocket(crate::Error),
    /// The transport failed.
    Io(io::Error),
    /// Server: the request is not a WebSocket handshake; the response saying why was sent.
    Handshake(HandshakeError),
    /// Server: the application refused the request with this status; its response was sent.
    Rejected(u16),
    /// Client: the server refused or answered the handshake wrongly.
    ClientHandshake(ClientHandshakeError),
    /// Client: the server's answer to an offered extension breaks its rules (RFC 7692 §5).
    Session(SessionError),
    /// Client: the URL does not parse, or it is `wss://` (make the TLS stream yourself and
    /// use [`client`]).
    Url(UrlError),
    /// Client: `wss://` given to [`connect`]; use [`client`] over a TLS stream.
    TlsNotSupported,
    /// Client: an option cannot be sent.
    InvalidOption(HeaderError),
    /// The opening handshake took longer than its timeout.
    HandshakeTimeout,
    /// A timer of the core ended the connection.
    Timeout(TimeoutKind),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WebSocket(e) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "transport error: {e}"),
            Error::Handshake(e) => write!(f, "not a WebSocket handshake: {e}"),
            Error::Rejected(status) => write!(f, "the handshake was refused with {status}"),
            Error::ClientHandshake(e) => write!(f, "WebSocket handshake failed: {e}"),
            Error::Session(e) => write!(f, "WebSocket handshake failed: {e}"),
            Error::Url(e) => write!(f, "invalid WebSocket URL: {e}"),
            Error::TlsNotSupported => f.write_str(
                "wss:// is not made by rfc6455::tokio::connect; connect TLS yourself \
                 (tokio-rustls) and use rfc6455::tokio::client",
            ),
            Error::InvalidOption(e) => write!(f, "invalid connect option: {e}"),
            Error::HandshakeTimeout => f.write_str("the opening handshake timed out"),
            Error::Timeout(TimeoutKind::Heartbeat) => {
                f.write_str("the peer did not answer a heartbeat ping in time (ping_timeout)")
            }
            Error::Timeout(TimeoutKind::Idle) => {
                f.write_str("no message arrived within idle_timeout")
            }
            Error::Timeout(TimeoutKind::Close) => {
                f.write_str("the peer did not answer the close in time (close_timeout)")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::WebSocket(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::ClientHandshake(e) => Some(e),
            Error::Session(e) => Some(e),
            Error::Url(e) => Some(e),
            Error::InvalidOption(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// Runs `future` under `timeout` (if any).
async fn timed<T>(
    timeout: Option<Duration>,
    future: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match timeout {
        Some(t) => ::tokio::time::timeout(t, future)
            .await
            .unwrap_or(Err(Error::HandshakeTimeout)),
        None => future.await,
    }
}

/// A connection's config as the adapter uses it.
fn adapter_config(config: Config) -> Config {
    config
}

/// Accepts every WebSocket request on `io` with default options: reads the request,
/// answers `101`, and returns the connection.
pub async fn accept<S>(io: S) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with(
        io,
        |request: &Request| Ok(request.accept()),
        &AcceptOptions::default(),
    )
    .await
}

/// Server role over `io`: reads the request head and checks it (a bad one is answered with
/// 400/405/426/431 and fails with [`Error::Handshake`]), shows it to `callback`, which
/// answers with an [`Accept`] (`request.accept()`, with a subprotocol or headers) or a
/// [`Rejection`] (`Rejection::new(403)`: sent, and [`Error::Rejected`]), negotiates
/// permessage-deflate if `options` allow it, writes the `101` and returns the connection.
pub async fn accept_with<S, F>(
    mut io: S,
    callback: F,
    options: &AcceptOptions,
) -> Result<WebSocket<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Result<Accept, Rejection>,
{
    let (request, buf, head_len) = timed(options.handshake_timeout, async {
        let mut buf = Vec::with_capacity(1024);
        loop {
            match Request::parse(&buf, &options.limits) {
                Ok(Status::Complete(request, head_len)) => return Ok((request, buf, head_len)),
                Ok(Status::Partial) => {}
                Err(e) => {
                    let _ = io.write_all(&e.response()).await;
                    let _ = io.shutdown().await;
                    return Err(Error::Handshake(e));
                }
            }
            let want = (options.limits.max_head_size + 1)
                .saturating_sub(buf.len())
                .max(1);
            let n = (&mut io)
                .take(want.min(4096) as u64)
                .read_buf(&mut buf)
                .await?;
            if n == 0 {
                return Err(Error::WebSocket(crate::Error::ConnectionLost));
            }
        }
    })
    .await?;
    let accept = match callback(&request) {
        Ok(accept) => accept,
        Err(rejection) => {
            let _ = io.write_all(&rejection.to_bytes()).await;
            let _ = io.shutdown().await;
            return Err(Error::Rejected(rejection.status()));
        }
    };
    let (conn, response) =
        options
            .session()
            .accept(&request, accept, adapter_config(options.config.clone()));
    io.write_all(&response).await?;
    io.flush().await?;
    let rest = buf[head_len..].to_vec();
    Ok(WebSocket::from_inner(Inner::new(
        io,
        conn,
        rest,
        options.write_buffer,
    )))
}

/// Connects to a `ws://` URL with default options.
pub async fn connect(url: &str) -> Result<(WebSocket<TcpStream>, Response), Error> {
    connect_with(url, &ConnectOptions::default()).await
}

/// Connects to a `ws://` URL: TCP (with `TCP_NODELAY`), then [`client`].
pub async fn connect_with(
    url: &str,
    options: &ConnectOptions,
) -> Result<(WebSocket<TcpStream>, Response), Error> {
    let parsed = Url::parse(url).map_err(Error::Url)?;
    if parsed.is_secure() {
        return Err(Error::TlsNotSupported);
    }
    let tcp = timed(options.handshake_timeout, async {
        Ok(TcpStream::connect((parsed.host(), parsed.port())).await?)
    })
    .await?;
    let _ = tcp.set_nodelay(true);
    client(tcp, url, options).await
}

/// Client role over `io` (already connected to the server `url` names; for `wss://`, a TLS
/// stream): writes the request with the options' offers, checks the response and returns
/// the connection with the server's response.
pub async fn client<S>(
    mut io: S,
    url: &str,
    options: &ConnectOptions,
) -> Result<(WebSocket<S>, Response), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let url = Url::parse(url).map_err(Error::Url)?;
    #[allow(unused_mut)]
    let mut session = ClientSession::new();
    #[cfg(feature = "deflate")]
    if let Some(config) = &options.deflate {
        session = session.deflate(config.clone());
    }
    let handshake = ClientHandshake::new(&url, &session.offer(&options.handshake), &mut RandomKeys)
        .map_err(Error::InvalidOption)?;
    let (response, buf, head_len) = timed(options.handshake_timeout, async {
        io.write_all(handshake.request()).await?;
        io.flush().await?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            match handshake
                .parse_response(&buf)
                .map_err(Error::ClientHandshake)?
            {
                Status::Complete(response, head_len) => return Ok((response, buf, head_len)),
                Status::Partial => {}
            }
            let n = (&mut io).take(4096).read_buf(&mut buf).await?;
            if n == 0 {
                return Err(Error::WebSocket(crate::Error::ConnectionLost));
            }
        }
    })
    .await?;
    let conn = match session.connection(
        &response,
        adapter_config(options.config.clone()),
        rand::random::<[u8; 4]>,
    ) {
        Ok(conn) => conn,
        Err(e) => {
            // RFC 7692 §5: fail the WebSocket connection: close TCP, send nothing.
            let _ = io.shutdown().await;
            return Err(Error::Session(e));
        }
    };
    let rest = buf[head_len..].to_vec();
    let ws = WebSocket::from_inner(Inner::new(io, conn, rest, options.write_buffer));
    Ok((ws, response))
}

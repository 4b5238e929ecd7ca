//! Sessions: what the core settles once the application has agreed to a handshake, beyond the
//! HTTP head. Today that is the one extension the core implements, permessage-deflate
//! (RFC 7692): the offer, the answer, and the [`Connection`] configured with what was agreed.
//! A driver (the mio server, the blocking client, any other) only moves the bytes.

use super::{Accept, ClientOptions, Request, Response};
#[cfg(feature = "deflate")]
use crate::proto::deflate::{DeflateConfig, NegotiationError};
use crate::proto::{Config, Connection, MaskSource};
use std::fmt;

/// The server's side of a session: the extensions the core negotiates for a request the
/// application has accepted.
///
/// ```
/// use rfc6455::proto::deflate::DeflateConfig;
/// use rfc6455::proto::{HandshakeLimits, Request, ServerSession, Status};
/// use rfc6455::Config;
///
/// let wire = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
/// let Status::Complete(request, _) = Request::parse(wire, &HandshakeLimits::default())? else {
///     unreachable!("the head is complete");
/// };
/// let session = ServerSession::new().deflate(DeflateConfig::default());
/// let (conn, response) = session.accept(&request, request.accept(), Config::default());
/// assert!(conn.deflate_params().is_some());
/// let response = String::from_utf8(response)?;
/// assert!(response.contains("\r\nSec-WebSocket-Extensions: permessage-deflate"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerSession {
    #[cfg(feature = "deflate")]
    deflate: Option<DeflateConfig>,
}

impl ServerSession {
    /// A session that negotiates nothing: the response is the application's [`Accept`] as it is.
    pub fn new() -> ServerSession {
        ServerSession::default()
    }

    /// Agree to permessage-deflate with `config` when a client offers it acceptably (RFC 7692
    /// §5: offers the config cannot honour are declined, and the handshake still succeeds).
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: DeflateConfig) -> ServerSession {
        self.deflate = Some(config);
        self
    }

    /// Completes the server's side: negotiates from `request`'s offers, adds the answers to
    /// `accept`, and returns a server [`Connection`] configured with what was agreed and the
    /// `101` response to write. Bytes the client sent after its head go to the connection's
    /// [`handle_bytes`](Connection::handle_bytes) or [`read`](Connection::read).
    pub fn accept(
        &self,
        request: &Request,
        accept: Accept,
        config: Config,
    ) -> (Connection, Vec<u8>) {
        let mut conn = Connection::server(config);
        let accept = self.negotiate(request, accept, &mut conn);
        (conn, accept.to_bytes())
    }

    /// The same for a connection that exists already (a driver that makes it before the
    /// handshake, so the application can queue messages while it decides): configures `conn`
    /// and returns the response to send. Call it before the connection reads any frame.
    pub fn negotiate(&self, request: &Request, accept: Accept, conn: &mut Connection) -> Accept {
        #[cfg(not(feature = "deflate"))]
        let _ = (request, &conn);
        #[cfg(feature = "deflate")]
        if let Some(config) = &self.deflate {
            if let Some((answer, params)) = config.server_negotiate(request.extensions()) {
                // The answer is made of RFC 7692 tokens and always formats; should it not,
                // the connection goes on without the extension.
                if let Ok(with) = accept.clone().push_extension(&answer) {
                    conn.set_deflate(params);
                    return with;
                }
            }
        }
        accept
    }
}

/// The client's side of a session: the offers the core adds to a request, and what it makes
/// of the server's answers.
///
/// ```
/// use rfc6455::proto::deflate::DeflateConfig;
/// use rfc6455::proto::{accept_key, ClientHandshake, ClientOptions, ClientSession, Status, Url};
/// use rfc6455::Config;
///
/// let session = ClientSession::new().deflate(DeflateConfig::default());
/// let url: Url = "ws://example.com/chat".parse()?;
/// let options = session.offer(&ClientOptions::default());
/// let handshake = ClientHandshake::new(&url, &options, &mut || [7u8; 16])?;
///
/// let reply = format!(
///     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///      Sec-WebSocket-Accept: {}\r\n\
///      Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n",
///     accept_key(handshake.key().as_bytes())
/// );
/// let Status::Complete(response, _) = handshake.parse_response(reply.as_bytes())? else {
///     unreachable!("the head is complete");
/// };
/// let conn = session.connection(&response, Config::default(), || [1, 2, 3, 4])?;
/// assert!(conn.deflate_params().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientSession {
    #[cfg(feature = "deflate")]
    deflate: Option<DeflateConfig>,
}

impl ClientSession {
    /// A session that offers nothing beyond the application's own options.
    pub fn new() -> ClientSession {
        ClientSession::default()
    }

    /// Offer permessage-deflate with `config`, and use it if the server agrees.
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: DeflateConfig) -> ClientSession {
        self.deflate = Some(config);
        self
    }

    /// `options` with the session's offers added after the application's own extensions.
    pub fn offer(&self, options: &ClientOptions) -> ClientOptions {
        #[allow(unused_mut)]
        let mut with = options.clone();
        #[cfg(feature = "deflate")]
        if let Some(config) = &self.deflate {
            with.extensions.push(config.client_offer());
        }
        with
    }

    /// After [`ClientHandshake::parse_response`](super::ClientHandshake::parse_response)
    /// accepted `response`: a client [`Connection`] configured with what the server agreed to.
    /// An error means the answer breaks its extension's rules: fail the WebSocket connection
    /// (close TCP, send nothing; RFC 7692 §5).
    pub fn connection(
        &self,
        response: &Response,
        config: Config,
        mask: impl MaskSource + 'static,
    ) -> Result<Connection, SessionError> {
        let mut conn = Connection::client(config, mask);
        self.negotiate(response, &mut conn)?;
        Ok(conn)
    }

    /// The same for a connection that exists already: configures `conn` from `response`.
    /// Call it before the connection reads or sends any frame.
    pub fn negotiate(
        &self,
        response: &Response,
        conn: &mut Connection,
    ) -> Result<(), SessionError> {
        #[cfg(not(feature = "deflate"))]
        let _ = (response, &conn);
        #[cfg(feature = "deflate")]
        if let Some(config) = &self.deflate {
            if let Some(params) = config
                .client_accept_response(response.extensions())
                .map_err(SessionError::Deflate)?
            {
                conn.set_deflate(params);
            }
        }
        Ok(())
    }
}

/// Why a server's answer to a session's offers cannot be used: the client fails the
/// WebSocket connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The permessage-deflate answer breaks RFC 7692.
    #[cfg(feature = "deflate")]
    Deflate(NegotiationError),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(not(feature = "deflate"))]
        let _ = f;
        match *self {
            #[cfg(feature = "deflate")]
            SessionError::Deflate(ref e) => write!(f, "permessage-deflate: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

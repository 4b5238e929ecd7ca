//! The client's side: write the request, check the server's response (RFC 6455 §4.1).

use super::extensions::{self, ExtensionError, ExtensionOffer};
use super::head::{head_status, with_header_array, Head, HeadError};
use super::url::Url;
use super::{
    accept_key, check_header, format_extensions, is_token, list_contains, push_header, shown,
    HandshakeLimits, HeaderError,
};
use crate::proto::frame::Status;
use base64::Engine as _;
use std::fmt;

/// Where a client gets the 16 random bytes of each `Sec-WebSocket-Key`.
///
/// `RandomKeys` (feature `rand`, on with `client`) is the one to use; any `FnMut() -> [u8; 16]` is one too, so tests can fix
/// the key and compare bytes exactly.
pub trait KeySource {
    /// The next key: must be fresh and unpredictable for each connection (RFC 6455 §4.1).
    fn next_key(&mut self) -> [u8; 16];
}

impl<F: FnMut() -> [u8; 16]> KeySource for F {
    fn next_key(&mut self) -> [u8; 16] {
        self()
    }
}

/// Keys from the thread-local random generator of `rand` (feature `rand`, which `client`
/// turns on).
#[cfg(feature = "rand")]
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomKeys;

#[cfg(feature = "rand")]
impl KeySource for RandomKeys {
    fn next_key(&mut self) -> [u8; 16] {
        rand::random()
    }
}

/// What a client asks for in its handshake. Start from [`ClientOptions::default`].
///
/// ```
/// use rfc6455::proto::{parse_extensions, ClientOptions};
///
/// let mut options = ClientOptions::default()
///     .protocol("chat.v2")
///     .protocol("chat.v1")
///     .header("Authorization", "Bearer abc");
/// options.extensions = parse_extensions("permessage-deflate; client_max_window_bits")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Subprotocols to offer in `Sec-WebSocket-Protocol`, most preferred first.
    pub protocols: Vec<String>,
    /// Extensions to offer in `Sec-WebSocket-Extensions`, most preferred first. A raw header
    /// value converts with [`parse_extensions`](super::parse_extensions).
    pub extensions: Vec<ExtensionOffer>,
    /// More headers to send, e.g. `Authorization`, `Origin`, `Cookie`, `User-Agent`.
    pub headers: Vec<(String, String)>,
    /// Limits on the server's response head.
    pub limits: HandshakeLimits,
}

impl ClientOptions {
    /// Adds a subprotocol to offer.
    pub fn protocol(mut self, protocol: impl Into<String>) -> ClientOptions {
        self.protocols.push(protocol.into());
        self
    }

    /// Adds an extension to offer.
    pub fn extension(mut self, extension: ExtensionOffer) -> ClientOptions {
        self.extensions.push(extension);
        self
    }

    /// Adds a header to send.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> ClientOptions {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Headers the request writes itself.
const RESERVED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// One client handshake: the request to send and what the response must match.
///
/// Send [`request`](Self::request), then call [`parse_response`](Self::parse_response) with
/// everything received so far until it is complete.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    request: Vec<u8>,
    key: String,
    accept: String,
    protocols: Vec<String>,
    extensions: Vec<String>,
    limits: HandshakeLimits,
}

impl ClientHandshake {
    /// Builds the request for `url` with `options` and a fresh key from `keys`.
    ///
    /// Fails if an option cannot be sent: a subprotocol that is not a token or is offered
    /// twice, an extension that does not format (see
    /// [`format_extensions`](super::format_extensions)), or an extra header that is invalid or
    /// one the handshake writes itself (`Host`, `Upgrade`, `Sec-WebSocket-*` …).
    pub fn new(
        url: &Url,
        options: &ClientOptions,
        keys: &mut impl KeySource,
    ) -> Result<ClientHandshake, HeaderError> {
        for (i, protocol) in options.protocols.iter().enumerate() {
            if !is_token(protocol) {
                return Err(HeaderError::new(
                    "Sec-WebSocket-Protocol",
                    format!("subprotocol {protocol:?} is not an HTTP token"),
                ));
            }
            if options.protocols.iter().take(i).any(|p| p == protocol) {
                return Err(HeaderError::new(
                    "Sec-WebSocket-Protocol",
                    format!("subprotocol {protocol:?} is offered twice"),
                ));
            }
        }
        let extensions = format_extensions(&options.extensions)?;
        for (name, value) in &options.headers {
            check_header(name, value, RESERVED)?;
        }
        let key = base64::engine::general_purpose::STANDARD.encode(keys.next_key());

        let mut request = Vec::with_capacity(256);
        request.extend_from_slice(b"GET ");
        request.extend_from_slice(url.request_target().as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\n");
        push_header(&mut request, "Host", &url.host_header());
        push_header(&mut request, "Upgrade", "websocket");
        push_header(&mut request, "Connection", "Upgrade");
        push_header(&mut request, "Sec-WebSocket-Key", &key);
        push_header(&mut request, "Sec-WebSocket-Version", "13");
        if !options.protocols.is_empty() {
            push_header(
                &mut request,
                "Sec-WebSocket-Protocol",
                &options.protocols.join(", "),
            );
        }
        if !extensions.is_empty() {
            push_header(&mut request, "Sec-WebSocket-Extensions", &extensions);
        }
        for (name, value) in &options.headers {
            push_header(&mut request, name, value);
        }
        request.extend_from_slice(b"\r\n");

        Ok(ClientHandshake {
            request,
            accept: accept_key(key.as_bytes()),
            key,
            protocols: options.protocols.clone(),
            extensions: options.extensions.iter().map(|e| e.name.clone()).collect(),
            limits: options.limits.clone(),
        })
    }

    /// The request head to send, complete with its blank line.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// The `Sec-WebSocket-Key` this request sends (base64).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Parses and checks the server's response from the start of `buf`, which may hold only
    /// part of it.
    ///
    /// - `Ok(Status::Partial)`: the head is not complete yet; read more, append, call again.
    /// - `Ok(Status::Complete(response, head_len))`: the server accepted. `buf[..head_len]`
    ///   was the response head; **bytes after it are WebSocket frames** the server may have
    ///   sent at once: hand them to the connection.
    /// - `Err(e)`: the server refused (another status than 101; the error carries its code and
    ///   reason) or answered wrongly. Close the connection.
    pub fn parse_response(&self, buf: &[u8]) -> Result<Status<Response>, ClientHandshakeError> {
        let limits = &self.limits;
        let window = buf.get(..limits.max_head_size).unwrap_or(buf);
        with_header_array!(limits, |headers| {
            let mut res = httparse::Response::new(headers);
            let result = res.parse(window);
            let head_len = match head_status(result, buf.len(), limits.max_head_size) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(Status::Partial),
                Err(HeadError::TooLarge) => {
                    return Err(ClientHandshakeError::HeadTooLarge {
                        limit: limits.max_head_size,
                    })
                }
                Err(HeadError::TooManyHeaders) => {
                    return Err(ClientHandshakeError::TooManyHeaders {
                        limit: limits.max_headers,
                    })
                }
                Err(HeadError::Malformed(what)) => {
                    return Err(ClientHandshakeError::Malformed(what))
                }
            };
            let status = res.code.unwrap_or_default();
            let reason = res.reason.unwrap_or_default();
            if status != 101 {
                return Err(ClientHandshakeError::UnexpectedStatus {
                    status,
                    reason: shown(reason.as_bytes()),
                });
            }
            let head = Head::new(reason.as_bytes(), res.headers);
            let (protocol, extensions) = self.check(&head)?;
            Ok(Status::Complete(
                Response {
                    head,
                    status,
                    protocol,
                    extensions,
                },
                head_len,
            ))
        })
    }

    /// The checks of RFC 6455 §4.1 on a 101 response.
    fn check(
        &self,
        head: &Head,
    ) -> Result<(Option<usize>, Vec<ExtensionOffer>), ClientHandshakeError> {
        let upgrade = head
            .first("Upgrade")
            .ok_or(ClientHandshakeError::MissingHeader("Upgrade"))?;
        if !upgrade.trim_ascii().eq_ignore_ascii_case(b"websocket") {
            return Err(ClientHandshakeError::InvalidUpgrade(shown(upgrade)));
        }
        let connection = head
            .first("Connection")
            .ok_or(ClientHandshakeError::MissingHeader("Connection"))?;
        if !list_contains(head.all("Connection"), "upgrade") {
            return Err(ClientHandshakeError::InvalidConnection(shown(connection)));
        }
        let mut accepts = head.all("Sec-WebSocket-Accept");
        let accept = match (accepts.next(), accepts.next()) {
            (None, _) => return Err(ClientHandshakeError::MissingHeader("Sec-WebSocket-Accept")),
            (Some(a), None) => a,
            (Some(_), Some(_)) => {
                return Err(ClientHandshakeError::DuplicateHeader(
                    "Sec-WebSocket-Accept",
                ))
            }
        };
        if accept != self.accept.as_bytes() {
            return Err(ClientHandshakeError::AcceptMismatch {
                expected: self.accept.clone(),
                received: shown(accept),
            });
        }
        let mut protocols = head.all("Sec-WebSocket-Protocol");
        let protocol = match (protocols.next(), protocols.next()) {
            (None, _) => None,
            (Some(p), None) => match self.protocols.iter().position(|o| o.as_bytes() == p) {
                Some(i) => Some(i),
                None => return Err(ClientHandshakeError::UnofferedProtocol(shown(p))),
            },
            (Some(_), Some(_)) => {
                return Err(ClientHandshakeError::DuplicateHeader(
                    "Sec-WebSocket-Protocol",
                ))
            }
        };
        let mut extensions = Vec::new();
        for value in head.all("Sec-WebSocket-Extensions") {
            extensions::parse_into(value, &mut extensions)
                .map_err(ClientHandshakeError::InvalidExtensions)?;
        }
        if let Some(ext) = extensions.iter().find(|e| {
            !self
                .extensions
                .iter()
                .any(|o| o.eq_ignore_ascii_case(&e.name))
        }) {
            return Err(ClientHandshakeError::UnofferedExtension(ext.name.clone()));
        }
        Ok((protocol, extensions))
    }
}

/// A server's `101 Switching Protocols` response that passed every check of RFC 6455 §4.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    head: Head,
    status: u16,
    /// The position in the offered list of the subprotocol the server chose; its text is the
    /// `Sec-WebSocket-Protocol` value kept in `head`.
    protocol: Option<usize>,
    extensions: Vec<ExtensionOffer>,
}

impl Response {
    /// The status code: always 101 for a `Response` that exists.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase, e.g. `Switching Protocols`.
    pub fn reason(&self) -> &str {
        self.head.line()
    }

    /// The subprotocol the server chose, one of those offered; `None` if it chose none.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol
            .and_then(|_| self.head.first_str("sec-websocket-protocol"))
    }

    /// The extensions the server accepted, with the parameters it answered, in order. Each
    /// one was offered by this client.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// The first value of header `name` (ASCII case-insensitive), if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.first_str(name)
    }

    /// Every header line in order, as `(name, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.head.iter()
    }
}

/// Why the server's response does not complete the handshake. Each check of RFC 6455 §4.1
/// has its own variant; the [`Display`](fmt::Display) text says which failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientHandshakeError {
    /// Not an HTTP/1.x response; what httparse found.
    Malformed(&'static str),
    /// The response head does not end within this many bytes.
    HeadTooLarge {
        /// `HandshakeLimits::max_head_size`.
        limit: usize,
    },
    /// More header lines than this.
    TooManyHeaders {
        /// `HandshakeLimits::max_headers`.
        limit: usize,
    },
    /// The server answered with another status than 101: it refused (401, 403, 404 …) or
    /// is not a WebSocket server.
    UnexpectedStatus {
        /// The status code, e.g. 403.
        status: u16,
        /// The reason phrase, e.g. `Forbidden`.
        reason: String,
    },
    /// A header the response must have is absent: `Upgrade`, `Connection` or
    /// `Sec-WebSocket-Accept`.
    MissingHeader(&'static str),
    /// A header that may appear once appears several times.
    DuplicateHeader(&'static str),
    /// `Upgrade` is not `websocket`; its value.
    InvalidUpgrade(String),
    /// `Connection` does not list `upgrade`; its value.
    InvalidConnection(String),
    /// `Sec-WebSocket-Accept` does not match the key sent.
    AcceptMismatch {
        /// The value the key calls for.
        expected: String,
        /// The value the server sent.
        received: String,
    },
    /// The server chose a subprotocol this client did not offer (or offered none).
    UnofferedProtocol(String),
    /// The server accepted an extension this client did not offer.
    UnofferedExtension(String),
    /// `Sec-WebSocket-Extensions` does not follow RFC 6455 §9.1.
    InvalidExtensions(ExtensionError),
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHandshakeError::Malformed(what) => {
                write!(f, "the server's response is not valid HTTP/1.1: it has {what}")
            }
            ClientHandshakeError::HeadTooLarge { limit } => write!(
                f,
                "the server's response head is over the {limit}-byte limit (raise HandshakeLimits::max_head_size if expected)"
            ),
            ClientHandshakeError::TooManyHeaders { limit } => write!(
                f,
                "the server's response has more than {limit} header lines (raise HandshakeLimits::max_headers if expected)"
            ),
            ClientHandshakeError::UnexpectedStatus { status, reason } => {
                let hint = match status {
                    200..=299 => "this URL is an ordinary HTTP one, not a WebSocket endpoint (check its path)",
                    300..=399 => "it redirects, which WebSocket handshakes do not follow (connect to its Location instead)",
                    401 | 403 => "it refused the WebSocket handshake (check the credentials and Origin)",
                    404 => "nothing is served at this path (check the URL)",
                    429 => "too many connections or requests from this client (open fewer, or retry later)",
                    503 => "the server is at its connection limit or unavailable (retry later)",
                    500..=599 => "the server failed (its log may say why)",
                    _ => "it refused the WebSocket handshake (check the URL, credentials and Origin)",
                };
                write!(f, "the server answered {status} {reason} instead of 101 Switching Protocols: {hint}")
            }
            ClientHandshakeError::MissingHeader(name) => {
                write!(f, "the server's 101 response has no {name} header, so it is not a WebSocket server")
            }
            ClientHandshakeError::DuplicateHeader(name) => {
                write!(f, "the server's 101 response has more than one {name} header")
            }
            ClientHandshakeError::InvalidUpgrade(value) => {
                write!(f, "the server's Upgrade header is {value:?}, not websocket")
            }
            ClientHandshakeError::InvalidConnection(value) => {
                write!(f, "the server's Connection header is {value:?}, which does not list upgrade")
            }
            ClientHandshakeError::AcceptMismatch { expected, received } => write!(
                f,
                "the server's Sec-WebSocket-Accept is {received:?} but the key sent calls for {expected:?}; \
                 a proxy or cache may have answered instead of the server"
            ),
            ClientHandshakeError::UnofferedProtocol(p) => {
                write!(f, "the server chose subprotocol {p:?}, which this client did not offer")
            }
            ClientHandshakeError::UnofferedExtension(e) => {
                write!(f, "the server accepted extension {e:?}, which this client did not offer")
            }
            ClientHandshakeError::InvalidExtensions(e) => write!(f, "the server sent an {e}"),
        }
    }
}

impl std::error::Error for ClientHandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientHandshakeError::InvalidExtensions(e) => Some(e),
            _ => None,
        }
    }
}

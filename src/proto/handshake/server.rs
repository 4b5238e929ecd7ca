//! The server's side: parse and check the client's request, then accept or refuse it.

use super::extensions::{self, ExtensionError, ExtensionOffer};
use super::head::{head_status, with_header_array, Head, HeadError};
use super::{
    accept_key, check_header, format_extensions, is_token, list_contains, push_header,
    reason_phrase, shown, HandshakeLimits, HeaderError,
};
use crate::proto::frame::Status;
use base64::Engine as _;
use std::fmt;

/// A valid WebSocket handshake request (RFC 6455 §4.2.1), owned.
///
/// It exists only once every rule of §4.2.1 has been checked, so the accessors for the
/// required headers ([`host`](Self::host), [`key`](Self::key)) cannot come up empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    head: Head,
    extensions: Vec<ExtensionOffer>,
}

impl Request {
    /// Parses and checks a handshake request from the start of `buf`, which may hold only
    /// part of it.
    ///
    /// - `Ok(Status::Partial)`: the head (through the blank line) is not complete yet. Read
    ///   more, append, and call again with the whole buffer.
    /// - `Ok(Status::Complete(request, head_len))`: `buf[..head_len]` was the request head.
    ///   **Bytes after `head_len` are not part of the request**: a client may send its first
    ///   frames right behind the head, so hand `buf[head_len..]` to the connection once you
    ///   have accepted. Now call [`accept`](Self::accept) and send its bytes, or send a
    ///   [`Rejection`].
    /// - `Err(e)`: not a WebSocket handshake, or over `limits`. Send
    ///   [`e.response()`](HandshakeError::response) and close the connection.
    ///
    /// At most `limits.max_head_size` bytes are looked at, so calling this again after each
    /// read costs at most that much per call.
    pub fn parse(buf: &[u8], limits: &HandshakeLimits) -> Result<Status<Request>, HandshakeError> {
        let window = buf.get(..limits.max_head_size).unwrap_or(buf);
        with_header_array!(limits, |headers| {
            let mut req = httparse::Request::new(headers);
            let result = req.parse(window);
            let head_len = match head_status(result, buf.len(), limits.max_head_size) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(Status::Partial),
                Err(HeadError::TooLarge) => {
                    return Err(HandshakeError::HeadTooLarge {
                        limit: limits.max_head_size,
                    })
                }
                Err(HeadError::TooManyHeaders) => {
                    return Err(HandshakeError::TooManyHeaders {
                        limit: limits.max_headers,
                    })
                }
                Err(HeadError::Malformed(what)) => return Err(HandshakeError::Malformed(what)),
            };
            let method = req.method.unwrap_or_default();
            if method != "GET" {
                return Err(HandshakeError::MethodNotAllowed(shown(method.as_bytes())));
            }
            if req.version != Some(1) {
                return Err(HandshakeError::HttpVersion);
            }
            let head = Head::new(req.path.unwrap_or_default().as_bytes(), req.headers);
            let extensions = check(&head)?;
            Ok(Status::Complete(Request { head, extensions }, head_len))
        })
    }

    /// The request target as sent: `/chat?room=1` (or an absolute URI, which RFC 6455 §4.1
    /// also allows).
    pub fn target(&self) -> &str {
        self.head.line()
    }

    /// The path of the target without the query: `/chat`. For an absolute-form target
    /// (`http://host/chat`) the scheme and authority are removed; `/` if nothing is left.
    pub fn path(&self) -> &str {
        let target = self.target();
        let path = target.split_once('?').map_or(target, |(p, _)| p);
        match path.split_once("://") {
            Some((_, rest)) => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
            None => path,
        }
    }

    /// The query after `?`, without the `?`; `None` if the target has no `?`.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }

    /// The first value of header `name` (ASCII case-insensitive), if present and UTF-8.
    /// Use [`headers`](Self::headers) for values with other bytes.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.first_str(name)
    }

    /// Every header line in order, as `(name, value)`.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.head.iter()
    }

    /// The `Host` header.
    pub fn host(&self) -> &str {
        self.header("host").unwrap_or_default()
    }

    /// The `Origin` header, which browsers always send: check it against the origins you
    /// serve to stop other sites' pages from connecting with your users' cookies.
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }

    /// The `Sec-WebSocket-Key` value as sent (base64 of 16 bytes).
    pub fn key(&self) -> &str {
        self.header("sec-websocket-key").unwrap_or_default()
    }

    /// The subprotocols the client offers (`Sec-WebSocket-Protocol`, comma-separated, over
    /// every line of the header), in the client's order of preference.
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        self.head.list("sec-websocket-protocol")
    }

    /// The extensions the client offers (`Sec-WebSocket-Extensions`, every line), in order.
    pub fn extensions(&self) -> &[ExtensionOffer] {
        &self.extensions
    }

    /// Starts the `101 Switching Protocols` answer to this request, with the
    /// `Sec-WebSocket-Accept` for its key, and a `100 Continue` before it if the request
    /// asked for one (`Expect: 100-continue`, RFC 7230 §6.7).
    pub fn accept(&self) -> Accept {
        let mut accept = Accept::new(self.key());
        accept.continue_first = self
            .head
            .list("expect")
            .any(|e| e.eq_ignore_ascii_case("100-continue"));
        accept
    }
}

/// The checks of RFC 6455 §4.2.1 after the request line; returns the parsed extensions.
fn check(head: &Head) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    let one = |name: &'static str| -> Result<&[u8], HandshakeError> {
        let mut values = head.all(name);
        match (values.next(), values.next()) {
            (None, _) => Err(HandshakeError::MissingHeader(name)),
            (Some(v), None) => Ok(v),
            (Some(_), Some(_)) => Err(HandshakeError::DuplicateHeader(name)),
        }
    };
    // RFC 6455 §4.1: a resource name, or an absolute URI (RFC 7230 §5.3 forms).
    let target = head.line();
    let scheme_end = target.find("://").map_or(0, |i| i + 3);
    let scheme = target[..scheme_end].to_ascii_lowercase();
    if !target.starts_with('/') && !["http://", "https://", "ws://", "wss://"].contains(&&*scheme) {
        return Err(HandshakeError::InvalidTarget(shown(target.as_bytes())));
    }
    // RFC 7230 §5.4: an invalid Host is a 400. Its value is an authority: host and port.
    let host = one("Host")?;
    let authority = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%[]".contains(b);
    if host.is_empty() || !host.iter().all(authority) {
        return Err(HandshakeError::InvalidHost(shown(host)));
    }
    let present = |name| head.first(name).is_some();
    // A body would be read as WebSocket frames (RFC 7230 §6.7: the upgrade starts after the
    // whole request); `Content-Length: 0` is no body.
    if present("Transfer-Encoding") || head.all("Content-Length").any(|v| v.trim_ascii() != b"0") {
        return Err(HandshakeError::RequestBody);
    }
    if !present("Upgrade") {
        return Err(HandshakeError::MissingHeader("Upgrade"));
    }
    if !list_contains(head.all("Upgrade"), "websocket") {
        return Err(HandshakeError::InvalidUpgrade(shown(
            head.first("Upgrade").unwrap_or_default(),
        )));
    }
    if !present("Connection") {
        return Err(HandshakeError::MissingHeader("Connection"));
    }
    if !list_contains(head.all("Connection"), "upgrade") {
        let all: Vec<&[u8]> = head.all("Connection").collect();
        return Err(HandshakeError::InvalidConnection(shown(
            &all.join(&b", "[..]),
        )));
    }
    let version = one("Sec-WebSocket-Version")?;
    if version != b"13" {
        return Err(HandshakeError::UnsupportedVersion(shown(version)));
    }
    let key = one("Sec-WebSocket-Key")?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(bytes) if bytes.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidKey(shown(key))),
    }
    let mut offers = Vec::new();
    for value in head.all("Sec-WebSocket-Extensions") {
        extensions::parse_into(value, &mut offers).map_err(HandshakeError::InvalidExtensions)?;
    }
    Ok(offers)
}

/// Why a request is not a WebSocket handshake the server can accept. Each maps to an HTTP
/// status ([`status`](Self::status)) and a response that says what to fix
/// ([`response`](Self::response)); the [`Display`](fmt::Display) text is that response's
/// body.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not HTTP/1.x at all (400); what httparse found.
    Malformed(&'static str),
    /// The head does not end within this many bytes (431).
    HeadTooLarge {
        /// `HandshakeLimits::max_head_size`.
        limit: usize,
    },
    /// More header lines than this (431).
    TooManyHeaders {
        /// `HandshakeLimits::max_headers`.
        limit: usize,
    },
    /// A method other than GET (405, with `Allow: GET`).
    MethodNotAllowed(String),
    /// HTTP/1.0; WebSocket needs HTTP/1.1 or later (400).
    HttpVersion,
    /// A required header is absent (400).
    MissingHeader(&'static str),
    /// A header that may appear once appears several times (400).
    DuplicateHeader(&'static str),
    /// The request target is neither a path (`/chat`) nor an absolute http, https, ws or wss
    /// URI (400); the target.
    InvalidTarget(String),
    /// The `Host` value is not a host and port (400); the value.
    InvalidHost(String),
    /// `Upgrade` does not list `websocket` (400); its value.
    InvalidUpgrade(String),
    /// `Connection` does not list `upgrade` (400); its values.
    InvalidConnection(String),
    /// `Sec-WebSocket-Version` is not 13 (426, with `Sec-WebSocket-Version: 13` and
    /// `Upgrade: websocket`); its value.
    UnsupportedVersion(String),
    /// `Sec-WebSocket-Key` is not base64 of 16 bytes (400); its value.
    InvalidKey(String),
    /// `Sec-WebSocket-Extensions` does not follow RFC 6455 §9.1 (400).
    InvalidExtensions(ExtensionError),
    /// The request has a body (`Content-Length` other than 0, or `Transfer-Encoding`), which
    /// would be read as WebSocket frames (400).
    RequestBody,
}

impl HandshakeError {
    /// The HTTP status this failure is answered with: 400, 405, 426 or 431.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadTooLarge { .. } | HandshakeError::TooManyHeaders { .. } => 431,
            HandshakeError::MethodNotAllowed(_) => 405,
            HandshakeError::UnsupportedVersion(_) => 426,
            HandshakeError::Malformed(_)
            | HandshakeError::HttpVersion
            | HandshakeError::MissingHeader(_)
            | HandshakeError::DuplicateHeader(_)
            | HandshakeError::InvalidTarget(_)
            | HandshakeError::InvalidHost(_)
            | HandshakeError::InvalidUpgrade(_)
            | HandshakeError::InvalidConnection(_)
            | HandshakeError::InvalidKey(_)
            | HandshakeError::InvalidExtensions(_)
            | HandshakeError::RequestBody => 400,
        }
    }

    /// The response for this failure as a [`Rejection`], to add headers before sending.
    pub fn rejection(&self) -> Rejection {
        let mut r = Rejection::new(self.status()).body(format!("{self}\n"));
        match self {
            HandshakeError::MethodNotAllowed(_) => r.push("Allow", "GET"),
            HandshakeError::UnsupportedVersion(_) => {
                // RFC 7231 §6.5.15: a 426 names the protocol to upgrade to.
                r.push("Sec-WebSocket-Version", "13");
                r.push("Upgrade", "websocket");
            }
            _ => {}
        }
        r
    }

    /// The full HTTP response for this failure: status line, `Content-Type: text/plain`,
    /// `Content-Length`, `Connection: close`, the headers the status calls for (`Allow` on
    /// 405; `Sec-WebSocket-Version: 13` and `Upgrade: websocket` on 426, whose `Connection`
    /// then lists `Upgrade` too) and a one-line body saying what was wrong and what to do.
    /// Send it, then close the connection.
    pub fn response(&self) -> Vec<u8> {
        self.rejection().to_bytes()
    }

    /// Appends [`response`](Self::response) to `out`.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        self.rejection().write_to(out);
    }
}

const NEEDS: &str =
    "a WebSocket handshake is a GET with Host, Upgrade: websocket, Connection: Upgrade, \
                     Sec-WebSocket-Key and Sec-WebSocket-Version: 13";

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Malformed(what) => {
                write!(f, "the request is not valid HTTP/1.1: it has {what}; {NEEDS}")
            }
            HandshakeError::HeadTooLarge { limit } => write!(
                f,
                "the request head is over the server's {limit}-byte limit; send fewer or shorter headers (cookies?)"
            ),
            HandshakeError::TooManyHeaders { limit } => write!(
                f,
                "the request has more than the server's limit of {limit} header lines; send fewer headers"
            ),
            HandshakeError::MethodNotAllowed(method) => {
                write!(f, "the method is {method:?}, but {NEEDS}")
            }
            HandshakeError::HttpVersion => write!(f, "the request is HTTP/1.0; WebSocket needs HTTP/1.1 ({NEEDS})"),
            HandshakeError::MissingHeader(name) => write!(f, "the request has no {name} header; {NEEDS}"),
            HandshakeError::DuplicateHeader(name) => {
                write!(f, "the request has more than one {name} header; send it once")
            }
            HandshakeError::InvalidTarget(target) => write!(
                f,
                "the request target {target:?} is not a path; request a path such as /chat"
            ),
            HandshakeError::InvalidHost(value) => write!(
                f,
                "the Host header {value:?} is not a host and port; send Host: example.com:9001"
            ),
            HandshakeError::InvalidUpgrade(value) => write!(
                f,
                "the Upgrade header is {value:?}, which does not name websocket; send Upgrade: websocket"
            ),
            HandshakeError::InvalidConnection(value) => write!(
                f,
                "the Connection header is {value:?}, which does not list upgrade; send Connection: Upgrade"
            ),
            HandshakeError::UnsupportedVersion(value) => write!(
                f,
                "Sec-WebSocket-Version {value:?} is not supported; this server speaks version 13 (RFC 6455)"
            ),
            HandshakeError::InvalidKey(value) => write!(
                f,
                "Sec-WebSocket-Key {value:?} is not base64 of 16 bytes; send 16 random bytes in base64 (24 characters)"
            ),
            HandshakeError::InvalidExtensions(e) => write!(f, "{e}; fix or drop the header"),
            HandshakeError::RequestBody => f.write_str(
                "the request has a body (Content-Length or Transfer-Encoding), which would be read \
                 as WebSocket frames; send the handshake without one",
            ),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::InvalidExtensions(e) => Some(e),
            _ => None,
        }
    }
}

/// Headers a [`Rejection`] writes itself.
const REJECTION_RESERVED: &[&str] = &["content-length", "connection", "transfer-encoding"];

/// An HTTP response that refuses the handshake: any status, extra headers, a body. It always
/// carries `Content-Length` and `Connection: close`; close the connection after sending it.
///
/// ```
/// use rfc6455::proto::Rejection;
///
/// let bytes = Rejection::new(401)
///     .header("WWW-Authenticate", "Bearer")?
///     .body("log in first\n")
///     .to_bytes();
/// let text = String::from_utf8(bytes)?;
/// assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
/// assert!(text.contains("\r\nWWW-Authenticate: Bearer\r\n"));
/// assert!(text.ends_with("\r\n\r\nlog in first\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Rejection {
    /// A response with `status` (its standard reason phrase) and, until
    /// [`body`](Self::body) is called, the reason phrase as a one-line body.
    ///
    /// `status` should be 300–599; any other value is sent as 500, since only a refusal
    /// makes sense here (accepting is [`Accept`]'s job).
    pub fn new(status: u16) -> Rejection {
        let status = if (300..=599).contains(&status) {
            status
        } else {
            500
        };
        Rejection {
            status,
            headers: Vec::new(),
            body: format!("{status} {}\n", reason_phrase(status)),
        }
    }

    /// Adds a header, e.g. `WWW-Authenticate` on 401, `Retry-After` on 503, `Location` on a
    /// redirect, or `Content-Type` to replace the default `text/plain; charset=utf-8`.
    /// Fails (and adds nothing) if the name is not a token, the value has a control
    /// character, or the header is one the response writes itself.
    pub fn header(mut self, name: &str, value: &str) -> Result<Rejection, HeaderError> {
        check_header(name, value, REJECTION_RESERVED)?;
        self.push(name, value);
        Ok(self)
    }

    fn push(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<String>) -> Rejection {
        self.body = body.into();
        self
    }

    /// The status that will be sent.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Appends the whole response to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write_status_line(out, self.status);
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            push_header(out, "Content-Type", "text/plain; charset=utf-8");
        }
        push_header(out, "Content-Length", &self.body.len().to_string());
        // RFC 7230 §6.7: a response with Upgrade lists it in Connection.
        let upgrade = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("upgrade"));
        push_header(
            out,
            "Connection",
            if upgrade { "Upgrade, close" } else { "close" },
        );
        for (name, value) in &self.headers {
            push_header(out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body.as_bytes());
    }

    /// The whole response.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
}

/// Headers an [`Accept`] writes itself.
const ACCEPT_RESERVED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

/// The `101 Switching Protocols` response that accepts a handshake. Start it from
/// [`Request::accept`]; after sending it, the connection speaks WebSocket.
///
/// ```
/// use rfc6455::proto::{Accept, ExtensionOffer};
///
/// let bytes = Accept::new("dGhlIHNhbXBsZSBub25jZQ==")
///     .protocol("chat")?
///     .extensions(&[ExtensionOffer::new("x-demo")])?
///     .header("Set-Cookie", "session=1")?
///     .to_bytes();
/// assert_eq!(
///     bytes,
///     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\
///       Sec-WebSocket-Extensions: x-demo\r\nSet-Cookie: session=1\r\n\r\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accept {
    continue_first: bool,
    accept: String,
    protocol: Option<String>,
    extensions: Option<String>,
    headers: Vec<(String, String)>,
}

impl Accept {
    /// The answer to a request whose `Sec-WebSocket-Key` is `key` (the base64 text as sent).
    pub fn new(key: &str) -> Accept {
        Accept {
            continue_first: false,
            accept: accept_key(key.as_bytes()),
            protocol: None,
            extensions: None,
            headers: Vec::new(),
        }
    }

    /// Selects a subprotocol. Pick one of [`Request::protocols`]: a client fails the
    /// connection if the server names one it did not offer. Fails if `protocol` is not a token.
    pub fn protocol(mut self, protocol: &str) -> Result<Accept, HeaderError> {
        if !is_token(protocol) {
            return Err(HeaderError::new(
                "Sec-WebSocket-Protocol",
                format!("subprotocol {protocol:?} is not an HTTP token"),
            ));
        }
        self.protocol = Some(protocol.to_owned());
        Ok(self)
    }

    /// Answers `Sec-WebSocket-Extensions` with these extensions (each one the client
    /// offered, with the parameters the server settled on). An empty slice sends no header.
    pub fn extensions(mut self, extensions: &[ExtensionOffer]) -> Result<Accept, HeaderError> {
        let value = format_extensions(extensions)?;
        self.extensions = (!value.is_empty()).then_some(value);
        Ok(self)
    }

    /// Appends one extension to those [`extensions`](Self::extensions) set, e.g. the
    /// `permessage-deflate` answer the server adds after the handler's `Accept`.
    pub fn push_extension(mut self, extension: &ExtensionOffer) -> Result<Accept, HeaderError> {
        let value = format_extensions(std::slice::from_ref(extension))?;
        self.extensions = Some(match self.extensions.take() {
            Some(existing) => format!("{existing}, {value}"),
            None => value,
        });
        Ok(self)
    }

    /// Adds a header such as `Set-Cookie`. Fails (and adds nothing) if the name is not a
    /// token, the value has a control character, or the header is one the handshake writes.
    pub fn header(mut self, name: &str, value: &str) -> Result<Accept, HeaderError> {
        check_header(name, value, ACCEPT_RESERVED)?;
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Appends the whole response to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if self.continue_first {
            write_status_line(out, 100);
            out.extend_from_slice(b"\r\n");
        }
        write_status_line(out, 101);
        push_header(out, "Upgrade", "websocket");
        push_header(out, "Connection", "Upgrade");
        push_header(out, "Sec-WebSocket-Accept", &self.accept);
        if let Some(protocol) = &self.protocol {
            push_header(out, "Sec-WebSocket-Protocol", protocol);
        }
        if let Some(extensions) = &self.extensions {
            push_header(out, "Sec-WebSocket-Extensions", extensions);
        }
        for (name, value) in &self.headers {
            push_header(out, name, value);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The whole response.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

//! The opening handshake (RFC 6455 §4), both roles, sans-IO.
//!
//! Nothing here touches a socket or a clock: bytes go in, parsed views and bytes to send come
//! out. "Need more bytes" is [`Status::Partial`](crate::proto::Status::Partial), never an
//! error.
//!
//! **Server**: feed what the client sent so far to [`Request::parse`]. On
//! `Status::Complete(request, head_len)` the handshake request is valid; decide from its path,
//! headers and offers, then answer with [`Request::accept`] (a `101 Switching Protocols`) or a
//! [`Rejection`]. On an error, send [`HandshakeError::response`] and close. Bytes after
//! `head_len` already belong to the WebSocket connection.
//!
//! ```
//! use rfc6455::proto::{HandshakeLimits, Request, Status};
//!
//! let wire = b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n";
//! let Status::Complete(request, head_len) = Request::parse(wire, &HandshakeLimits::default())? else {
//!     unreachable!("the head is complete");
//! };
//! assert_eq!((request.path(), request.query(), head_len), ("/chat", Some("room=1"), wire.len()));
//! let response = request.accept().protocol("chat")?.to_bytes();
//! assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Client**: build a [`ClientHandshake`] from a [`Url`] and [`ClientOptions`], write
//! [`ClientHandshake::request`], then feed the server's bytes to
//! [`ClientHandshake::parse_response`].
//!
//! ```
//! use rfc6455::proto::{accept_key, ClientHandshake, ClientOptions, Status, Url};
//!
//! let url: Url = "ws://example.com:9001/chat".parse()?;
//! let options = ClientOptions::default().protocol("chat");
//! let handshake = ClientHandshake::new(&url, &options, &mut || [7u8; 16])?;
//! assert!(handshake.request().starts_with(b"GET /chat HTTP/1.1\r\nHost: example.com:9001\r\n"));
//!
//! let reply = format!(
//!     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!      Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
//!     accept_key(handshake.key().as_bytes())
//! );
//! let Status::Complete(response, _) = handshake.parse_response(reply.as_bytes())? else {
//!     unreachable!("the head is complete");
//! };
//! assert_eq!(response.protocol(), Some("chat"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Extensions (`Sec-WebSocket-Extensions`) are parsed generically into [`ExtensionOffer`]s;
//! what an extension's parameters mean (permessage-deflate's window bits, say) is decided on
//! top of this module.

mod client;
mod extensions;
mod head;
mod http;
mod server;
mod session;
mod url;

#[cfg(feature = "rand")]
pub use client::RandomKeys;
pub use client::{ClientHandshake, ClientHandshakeError, ClientOptions, KeySource, Response};
pub use extensions::{format_extensions, parse_extensions, ExtensionError, ExtensionOffer};
pub use http::{HttpError, HttpRequest, HttpResponse};
pub use server::{Accept, HandshakeError, Rejection, Request};
pub use session::{ClientSession, ServerSession, SessionError};
pub use url::{Url, UrlError};

use base64::Engine as _;
use sha1::{Digest, Sha1};
use std::fmt;

/// The GUID RFC 6455 §1.3 appends to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` value (the base64 text as sent,
/// not the decoded bytes): base64 of the SHA-1 of the key followed by the RFC's GUID.
///
/// ```
/// assert_eq!(rfc6455::proto::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Limits on a handshake head (request or response), checked before anything is kept.
///
/// ```
/// let mut limits = rfc6455::proto::HandshakeLimits::default();
/// limits.max_head_size = 16 * 1024; // large cookies
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeLimits {
    /// The longest head, request or status line through the blank line, in bytes. A longer
    /// one fails with 431 on the server. Default 8 KiB.
    pub max_head_size: usize,
    /// The most header lines a head may have. More fail with 431 on the server. Default 64.
    pub max_headers: usize,
}

impl Default for HandshakeLimits {
    fn default() -> HandshakeLimits {
        HandshakeLimits {
            max_head_size: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// A header the caller asked to send cannot be sent: its name is not a token, its value
/// holds a line break or other control character, or the handshake sets it itself.
///
/// Nothing is written when this is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderError {
    name: String,
    reason: String,
}

impl HeaderError {
    pub(crate) fn new(name: &str, reason: impl Into<String>) -> HeaderError {
        HeaderError {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// The header's name, as the caller gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why it cannot be sent (the value is named in it where it matters).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot send header {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for HeaderError {}

/// `tchar` of RFC 7230 §3.2.6.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// A non-empty run of `tchar`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// The elements of a comma-separated header list (RFC 7230 §7), over every line of the
/// header, trimmed, empty elements skipped.
pub(crate) fn list_items<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> impl Iterator<Item = &'a [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// Whether a header list holds `token`, ASCII case-insensitively.
pub(crate) fn list_contains<'a>(values: impl Iterator<Item = &'a [u8]>, token: &str) -> bool {
    list_items(values).any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// Checks a header the caller wants to send. `reserved` names (lowercase) are written by the
/// handshake itself.
pub(crate) fn check_header(name: &str, value: &str, reserved: &[&str]) -> Result<(), HeaderError> {
    if !is_token(name) {
        return Err(HeaderError::new(
            name,
            "a header name must be a non-empty HTTP token (letters, digits and !#$%&'*+-.^_`|~)",
        ));
    }
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(HeaderError::new(
            name,
            "the handshake writes this header itself; use the matching option instead",
        ));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7F) {
        return Err(HeaderError::new(
            name,
            "a header value must not contain CR, LF or other control characters",
        ));
    }
    Ok(())
}

/// Appends `Name: value\r\n`.
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Peer text quoted for an error message: lossily decoded, control characters escaped, cut
/// at 64 characters.
pub(crate) fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(64).collect();
    if text.chars().nth(64).is_some() {
        cut.push('…');
    }
    cut
}

/// The standard reason phrase for `status`, or `""` for a code without one.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_section_1_3_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn header_lists() {
        let lines: [&[u8]; 2] = [b"keep-alive, Upgrade", b" ,, foo ,"];
        let items: Vec<&[u8]> = list_items(lines.iter().copied()).collect();
        assert_eq!(items, [&b"keep-alive"[..], b"Upgrade", b"foo"]);
        assert!(list_contains(lines.iter().copied(), "upgrade"));
        assert!(!list_contains(lines.iter().copied(), "close"));
    }

    #[test]
    fn headers_the_caller_sends_are_checked() {
        assert!(check_header("X-Ok", "fine\tvalue", &[]).is_ok());
        assert!(check_header("Bad Name", "v", &[]).is_err());
        assert!(check_header("", "v", &[]).is_err());
        assert!(check_header("X", "a\r\nInjected: 1", &[]).is_err());
        assert!(check_header("upgrade", "x", &["upgrade"]).is_err());
        assert!(check_header("UPGRADE", "x", &["upgrade"]).is_err());
    }

    #[test]
    fn shown_cuts_and_escapes_nothing_it_should_not() {
        assert_eq!(shown(b"abc"), "abc");
        assert_eq!(shown(&[b'x'; 100]).chars().count(), 65);
        assert_eq!(shown(b"\xff"), "\u{fffd}");
    }
}

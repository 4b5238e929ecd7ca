//! Plain HTTP requests that arrive where a WebSocket handshake could: a health check, a page,
//! an API call on the same port. Sans-IO, like the handshake: bytes in, a parsed request or
//! "need more", and a response to write.

use super::head::{head_status, with_header_array, Head, HeadError};
use super::{check_header, push_header, reason_phrase, shown, HandshakeLimits, HeaderError};
use crate::proto::Status;
use std::fmt;

/// A complete HTTP/1.x request that is not a WebSocket upgrade, with its body.
///
/// ```
/// use rfc6455::proto::{HandshakeLimits, HttpRequest, Status};
///
/// let wire = b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
/// let Status::Complete(request, used) = HttpRequest::parse(wire, &HandshakeLimits::default(), 1024)? else {
///     unreachable!("complete");
/// };
/// assert_eq!((request.method(), request.path(), request.body(), used), ("POST", "/api/publish", &b"{}"[..], wire.len()));
/// # Ok::<(), rfc6455::proto::HttpError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    method: String,
    head: Head,
    body: Vec<u8>,
}

impl HttpRequest {
    /// Parses a request head and, after it, a body of `Content-Length` bytes (at most
    /// `max_body`) from the start of `buf`, which may hold only part of them. On
    /// `Complete(request, n)` the request used `n` bytes of `buf`.
    ///
    /// A body announced over `max_body` fails at once, before any of it is read (413), and
    /// so does a chunked one (411: send a `Content-Length`).
    pub fn parse(
        buf: &[u8],
        limits: &HandshakeLimits,
        max_body: usize,
    ) -> Result<Status<HttpRequest>, HttpError> {
        let window = buf.get(..limits.max_head_size).unwrap_or(buf);
        with_header_array!(limits, |headers| {
            let mut req = httparse::Request::new(headers);
            let result = req.parse(window);
            let head_len = match head_status(result, buf.len(), limits.max_head_size) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(Status::Partial),
                Err(HeadError::TooLarge) => return Err(HttpError::HeadTooLarge),
                Err(HeadError::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
                Err(HeadError::Malformed(what)) => return Err(HttpError::Malformed(what)),
            };
            let method = req.method.unwrap_or_default().to_owned();
            let head = Head::new(req.path.unwrap_or_default().as_bytes(), req.headers);
            if head.first("Transfer-Encoding").is_some() {
                return Err(HttpError::Chunked);
            }
            let mut lengths = head.all("Content-Length");
            let values = (lengths.next(), lengths.next());
            drop(lengths);
            let length = match values {
                (None, _) => 0,
                (Some(v), None) => std::str::from_utf8(v.trim_ascii())
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| HttpError::BadLength(shown(v)))?,
                (Some(_), Some(_)) => return Err(HttpError::BadLength("several values".into())),
            };
            if length > max_body as u64 {
                return Err(HttpError::BodyTooLarge {
                    length,
                    limit: max_body,
                });
            }
            let end = head_len + length as usize;
            let Some(body) = buf.get(head_len..end) else {
                return Ok(Status::Partial);
            };
            Ok(Status::Complete(
                HttpRequest {
                    method,
                    head,
                    body: body.to_vec(),
                },
                end,
            ))
        })
    }

    /// The method: `GET`, `POST`, ….
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target as sent: `/api/publish?x=1`.
    pub fn target(&self) -> &str {
        self.head.line()
    }

    /// The target without its query.
    pub fn path(&self) -> &str {
        let target = self.target();
        target.split_once('?').map_or(target, |(p, _)| p)
    }

    /// The query after `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }

    /// The first value of header `name` (ASCII case-insensitive), if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.first_str(name)
    }

    /// The body (empty without `Content-Length`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether it asks for a WebSocket (`Upgrade: websocket`): such a request is a handshake,
    /// right or wrong, never a plain HTTP request.
    pub fn is_upgrade(&self) -> bool {
        super::list_contains(self.head.all("Upgrade"), "websocket")
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("head", &self.head)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Why a plain HTTP request could not be read; [`response`](Self::response) answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// Not HTTP/1.x (400); what was wrong.
    Malformed(&'static str),
    /// The head is over the size or header-count limit (431).
    HeadTooLarge,
    /// `Transfer-Encoding` (chunked) bodies are not read (411: send `Content-Length`).
    Chunked,
    /// `Content-Length` is not one number (400); its value.
    BadLength(String),
    /// The body is over the limit (413).
    BodyTooLarge {
        /// The announced length.
        length: u64,
        /// The limit.
        limit: usize,
    },
}

impl HttpError {
    /// The status it is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) | HttpError::BadLength(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::Chunked => 411,
            HttpError::BodyTooLarge { .. } => 413,
        }
    }

    /// The response for it: the status and this error as a one-line body.
    pub fn response(&self) -> HttpResponse {
        HttpResponse::new(self.status()).text(format!("{self}\n"))
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(what) => write!(f, "not an HTTP/1.1 request: {what}"),
            HttpError::HeadTooLarge => f.write_str("the request head is too large"),
            HttpError::Chunked => {
                f.write_str("chunked bodies are not accepted: send a Content-Length")
            }
            HttpError::BadLength(v) => write!(f, "Content-Length is not a number: {v:?}"),
            HttpError::BodyTooLarge { length, limit } => {
                write!(f, "the body of {length} bytes is over the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// A response to a plain HTTP request. It always ends the connection (`Connection: close`).
///
/// ```
/// use rfc6455::proto::HttpResponse;
///
/// let bytes = HttpResponse::new(200).json(r#"{"seq":1}"#).to_bytes();
/// let text = String::from_utf8(bytes).unwrap();
/// assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"));
/// assert!(text.ends_with("\r\n\r\n{\"seq\":1}"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    head_only: bool,
}

/// Headers an [`HttpResponse`] writes itself.
const RESERVED: &[&str] = &["content-length", "connection", "transfer-encoding"];

impl HttpResponse {
    /// A response with `status` (200–599; anything else is sent as 500) and an empty body.
    pub fn new(status: u16) -> HttpResponse {
        let status = if (200..=599).contains(&status) {
            status
        } else {
            500
        };
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            head_only: false,
        }
    }

    /// Adds a header. Fails (adding nothing) on a name that is not a token, a value with a
    /// control character, or a header the response writes itself (`Content-Length`,
    /// `Connection`, `Transfer-Encoding`).
    pub fn header(mut self, name: &str, value: &str) -> Result<HttpResponse, HeaderError> {
        check_header(name, value, RESERVED)?;
        self.headers.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Sets the body and its `Content-Type`.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        // A media type from the caller's code, not the peer; a bad one is replaced.
        let content_type = if check_header("Content-Type", content_type, &[]).is_ok() {
            content_type
        } else {
            "application/octet-stream"
        };
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = body.into();
        self
    }

    /// A `text/plain; charset=utf-8` body.
    pub fn text(self, body: impl Into<String>) -> HttpResponse {
        self.body("text/plain; charset=utf-8", body.into())
    }

    /// An `application/json` body.
    pub fn json(self, body: impl Into<String>) -> HttpResponse {
        self.body("application/json", body.into())
    }

    /// Leaves the body out of what is written (the answer to a `HEAD` request), keeping its
    /// `Content-Length`.
    pub fn head_only(mut self) -> HttpResponse {
        self.head_only = true;
        self
    }

    /// The status that will be sent.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Appends the whole response to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\n",
                self.status,
                reason_phrase(self.status)
            )
            .as_bytes(),
        );
        for (name, value) in &self.headers {
            push_header(out, name, value);
        }
        push_header(out, "Content-Length", &self.body.len().to_string());
        push_header(out, "Connection", "close");
        out.extend_from_slice(b"\r\n");
        if !self.head_only {
            out.extend_from_slice(&self.body);
        }
    }

    /// The whole response as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(wire: &[u8], max_body: usize) -> Result<Status<HttpRequest>, HttpError> {
        HttpRequest::parse(wire, &HandshakeLimits::default(), max_body)
    }

    #[test]
    fn bodies_are_read_to_their_length_in_any_split() {
        let wire = b"POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let end = wire.len() - 5;
        for cut in 0..end {
            assert!(
                matches!(parse(&wire[..cut], 10), Ok(Status::Partial)),
                "cut at {cut}"
            );
        }
        let Ok(Status::Complete(req, used)) = parse(wire, 10) else {
            panic!("complete");
        };
        assert_eq!(used, end);
        assert_eq!(req.body(), b"hello");
        assert_eq!(
            (req.method(), req.path(), req.query()),
            ("POST", "/p", Some("q=1"))
        );
        assert!(!req.is_upgrade());
    }

    #[test]
    fn bad_bodies_get_their_status() {
        let cases: [(&[u8], u16); 5] = [
            (b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 413),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                411,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                400,
            ),
            (b"\x01\x02 nonsense\r\n\r\n", 400),
        ];
        for (wire, status) in cases {
            let err = parse(wire, 10).expect_err("refused");
            assert_eq!(err.status(), status, "{err}");
            let bytes = err.response().to_bytes();
            assert!(bytes.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
        }
    }

    #[test]
    fn responses_close_and_refuse_reserved_headers() {
        let r = HttpResponse::new(404).text("no\n");
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 3\r\nConnection: close\r\n\r\nno\n"
        );
        assert!(HttpResponse::new(200)
            .header("Connection", "keep-alive")
            .is_err());
        assert!(HttpResponse::new(200).header("X", "a\r\nb: c").is_err());
        let head = HttpResponse::new(200).text("body").head_only().to_bytes();
        assert!(String::from_utf8(head)
            .unwrap()
            .ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
        assert_eq!(HttpResponse::new(101).status(), 500);
    }
}

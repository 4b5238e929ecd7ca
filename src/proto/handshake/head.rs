//! An owned copy of a parsed HTTP head: one byte buffer plus the ranges of each field.

use super::list_items;
use std::fmt;
use std::ops::Range;

/// The parts of a request or response head the handshake keeps: the request target or the
/// reason phrase, and every header line in order. Two allocations, whatever the head holds.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Head {
    bytes: Vec<u8>,
    /// The request target (requests) or the reason phrase (responses).
    line: Range<usize>,
    fields: Vec<(Range<usize>, Range<usize>)>,
}

impl Head {
    /// Copies `line` and the headers httparse found.
    pub(crate) fn new(line: &[u8], headers: &[httparse::Header<'_>]) -> Head {
        let size = line.len()
            + headers
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum::<usize>();
        let mut bytes = Vec::with_capacity(size);
        let mut push = |part: &[u8]| {
            let start = bytes.len();
            bytes.extend_from_slice(part);
            start..bytes.len()
        };
        let line = push(line);
        let fields = headers
            .iter()
            .map(|h| (push(h.name.as_bytes()), push(h.value)))
            .collect();
        Head {
            bytes,
            line,
            fields,
        }
    }

    fn slice(&self, range: &Range<usize>) -> &[u8] {
        self.bytes.get(range.clone()).unwrap_or_default()
    }

    /// The request target or reason phrase. httparse only hands out UTF-8 here (the target is
    /// visible ASCII); a reason phrase with other bytes reads as empty.
    pub(crate) fn line(&self) -> &str {
        std::str::from_utf8(self.slice(&self.line)).unwrap_or_default()
    }

    /// Every header as (name, value), in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter().map(|(name, value)| {
            // Names are tokens (checked by httparse), so always ASCII.
            let name = std::str::from_utf8(self.slice(name)).unwrap_or_default();
            (name, self.slice(value))
        })
    }

    /// Every value of the header `name` (ASCII case-insensitive), in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of the header `name`.
    pub(crate) fn first(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first value of `name` if it is UTF-8.
    pub(crate) fn first_str(&self, name: &str) -> Option<&str> {
        self.first(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The elements of the comma-separated list `name` over all its lines, UTF-8 ones only.
    pub(crate) fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        list_items(self.all(name)).filter_map(|item| std::str::from_utf8(item).ok())
    }
}

/// Shows the line and headers as text rather than a byte dump.
impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Fields<'a>(&'a Head);
        impl fmt::Debug for Fields<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
                    .finish()
            }
        }
        f.debug_struct("Head")
            .field("line", &self.line())
            .field("headers", &Fields(self))
            .finish()
    }
}

/// Runs httparse on at most `limits.max_head_size` bytes with a header array of
/// `limits.max_headers` entries (on the stack up to 64).
macro_rules! with_header_array {
    ($limits:expr, |$headers:ident| $body:expr) => {{
        let mut stack = [httparse::EMPTY_HEADER; 64];
        let mut heap;
        let $headers: &mut [httparse::Header<'_>] = match stack.get_mut(..$limits.max_headers) {
            Some(slice) => slice,
            None => {
                heap = vec![httparse::EMPTY_HEADER; $limits.max_headers];
                &mut heap
            }
        };
        $body
    }};
}
pub(crate) use with_header_array;

/// What went wrong reading a head, before any WebSocket rule is checked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The head does not end within `max_head_size` bytes.
    TooLarge,
    /// More header lines than `max_headers`.
    TooManyHeaders,
    /// Not HTTP/1.x: what httparse found wrong.
    Malformed(&'static str),
}

/// Maps an httparse result on the head window to "complete at n", Partial or an error.
///
/// `window_len` is how many bytes httparse saw and `buf_len` how many the caller had: when
/// the window is full (it is `max_head_size` long) and still partial, the head cannot fit.
pub(crate) fn head_status(
    result: httparse::Result<usize>,
    buf_len: usize,
    max_head_size: usize,
) -> Result<Option<usize>, HeadError> {
    match result {
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buf_len >= max_head_size => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(e) => Err(HeadError::Malformed(match e {
            httparse::Error::HeaderName => "an invalid header name",
            httparse::Error::HeaderValue => "an invalid header value",
            httparse::Error::NewLine => "a line not ending in CRLF",
            httparse::Error::Status => "an invalid status code",
            httparse::Error::Token => "an invalid method or request target",
            httparse::Error::Version => "a version that is not HTTP/1.0 or HTTP/1.1",
            httparse::Error::TooManyHeaders => "too many headers",
        })),
    }
}

//! `Sec-WebSocket-Extensions` (RFC 6455 §9.1): parse and format, without knowing what any
//! extension means.
//!
//! ```text
//! extension-list  = 1#extension                         ; RFC 7230 list, several lines allowed
//! extension       = extension-token *( OWS ";" OWS extension-param )
//! extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
//! ```
//!
//! A quoted value must be a token once its quoted-pairs are unescaped (§9.1), so formatting
//! never needs quotes.

use super::{is_tchar, is_token, HeaderError};
use std::fmt;

/// One extension with its parameters, as offered by a client or answered by a server.
///
/// ```
/// use rfc6455::proto::{format_extensions, parse_extensions, ExtensionOffer};
///
/// let offers = parse_extensions("permessage-deflate; client_max_window_bits, x-foo; a=\"1\"")?;
/// assert_eq!(offers[0].name, "permessage-deflate");
/// assert_eq!(offers[0].param("client_max_window_bits"), Some(None));
/// assert_eq!(offers[1].param("a"), Some(Some("1")));
///
/// let answer = ExtensionOffer::new("permessage-deflate").with_param("server_no_context_takeover", None);
/// assert_eq!(format_extensions(&[answer])?, "permessage-deflate; server_no_context_takeover");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExtensionOffer {
    /// The extension's token, e.g. `permessage-deflate`.
    pub name: String,
    /// Its parameters in order: `;name` is `(name, None)`, `;name=value` is
    /// `(name, Some(value))` with quotes and escapes already removed.
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// An extension without parameters.
    pub fn new(name: impl Into<String>) -> ExtensionOffer {
        ExtensionOffer {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// Appends a parameter (`None` for a bare `;name`).
    pub fn with_param(mut self, name: impl Into<String>, value: Option<&str>) -> ExtensionOffer {
        self.params.push((name.into(), value.map(str::to_owned)));
        self
    }

    /// The first parameter called `name` (ASCII case-insensitive): `None` if absent,
    /// `Some(None)` if it has no value, `Some(Some(value))` otherwise.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    fn check(&self) -> Result<(), HeaderError> {
        let bad = |what: &str, text: &str| {
            Err(HeaderError::new(
                "Sec-WebSocket-Extensions",
                format!("{what} {text:?} is not an HTTP token (RFC 6455 §9.1)"),
            ))
        };
        if !is_token(&self.name) {
            return bad("extension name", &self.name);
        }
        for (name, value) in &self.params {
            if !is_token(name) {
                return bad("parameter name", name);
            }
            if let Some(value) = value {
                if !is_token(value) {
                    return bad("parameter value", value);
                }
            }
        }
        Ok(())
    }
}

/// Formats as `name; a; b=1` (no check: see [`format_extensions`]).
impl fmt::Display for ExtensionOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            write!(f, "; {name}")?;
            if let Some(value) = value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

/// Formats extensions as one `Sec-WebSocket-Extensions` value: `a; x=1, b`.
///
/// Fails if a name or value is not an HTTP token, which RFC 6455 §9.1 requires of all three
/// (a quoted value must be a token too once unquoted), so the result never needs quotes and
/// always parses back to the same list with [`parse_extensions`].
pub fn format_extensions(extensions: &[ExtensionOffer]) -> Result<String, HeaderError> {
    let mut out = String::new();
    for (i, ext) in extensions.iter().enumerate() {
        ext.check()?;
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&ext.to_string());
    }
    Ok(out)
}

/// Parses one `Sec-WebSocket-Extensions` value into its extensions, in order.
///
/// Empty list elements (`a, , b`) are skipped as RFC 7230 §7 asks, so an empty value gives an
/// empty list. When a request or response has several `Sec-WebSocket-Extensions` lines, their
/// lists are concatenated in order (that is what [`Request::extensions`] does).
///
/// [`Request::extensions`]: super::Request::extensions
pub fn parse_extensions(value: &str) -> Result<Vec<ExtensionOffer>, ExtensionError> {
    let mut out = Vec::new();
    parse_into(value.as_bytes(), &mut out)?;
    Ok(out)
}

/// A `Sec-WebSocket-Extensions` value that does not follow the grammar: where and what was
/// expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionError {
    offset: usize,
    expected: &'static str,
}

impl ExtensionError {
    /// The byte offset in the header value where parsing stopped.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What the grammar expected at [`offset`](Self::offset).
    pub fn expected(&self) -> &'static str {
        self.expected
    }
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid Sec-WebSocket-Extensions value: expected {} at byte {} (RFC 6455 §9.1: \
             name; param; param=value, comma-separated)",
            self.expected, self.offset
        )
    }
}

impl std::error::Error for ExtensionError {}

/// A cursor over one header value.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn fail<T>(&self, expected: &'static str) -> Result<T, ExtensionError> {
        Err(ExtensionError {
            offset: self.pos,
            expected,
        })
    }

    fn token(&mut self, expected: &'static str) -> Result<String, ExtensionError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        match self.bytes.get(start..self.pos) {
            Some(t) if !t.is_empty() => Ok(t.iter().map(|&b| char::from(b)).collect()),
            _ => self.fail(expected),
        }
    }

    /// A quoted-string starting at the opening quote; returns it unescaped.
    fn quoted(&mut self) -> Result<Vec<u8>, ExtensionError> {
        self.pos += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || b >= 0x20 && b != 0x7F => out.push(b),
                        _ => return self.fail("an escaped character after '\\'"),
                    }
                }
                Some(b) if b == b'\t' || b >= 0x20 && b != 0x7F => out.push(b),
                _ => return self.fail("a closing '\"'"),
            }
            self.pos += 1;
        }
    }
}

/// Parses `value` and appends its extensions to `out`.
pub(crate) fn parse_into(
    value: &[u8],
    out: &mut Vec<ExtensionOffer>,
) -> Result<(), ExtensionError> {
    let mut c = Cursor {
        bytes: value,
        pos: 0,
    };
    loop {
        c.skip_ows();
        match c.peek() {
            None => return Ok(()),
            Some(b',') => {
                c.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let mut ext = ExtensionOffer::new(c.token("an extension name")?);
        loop {
            c.skip_ows();
            match c.peek() {
                None => {
                    out.push(ext);
                    return Ok(());
                }
                Some(b',') => {
                    c.pos += 1;
                    break;
                }
                Some(b';') => {
                    c.pos += 1;
                    c.skip_ows();
                    let name = c.token("a parameter name after ';'")?;
                    c.skip_ows();
                    let value = if c.peek() == Some(b'=') {
                        c.pos += 1;
                        c.skip_ows();
                        let start = c.pos;
                        if c.peek() == Some(b'"') {
                            let raw = c.quoted()?;
                            match String::from_utf8(raw) {
                                Ok(v) if is_token(&v) => Some(v),
                                _ => {
                                    return Err(ExtensionError {
                                        offset: start,
                                        expected: "a quoted value that is a token once unquoted",
                                    })
                                }
                            }
                        } else {
                            Some(c.token("a token or quoted string after '='")?)
                        }
                    } else {
                        None
                    };
                    ext.params.push((name, value));
                }
                Some(_) => return c.fail("';', ',' or the end of the value"),
            }
        }
        out.push(ext);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        params
            .iter()
            .fold(ExtensionOffer::new(name), |e, (n, v)| e.with_param(*n, *v))
    }

    #[test]
    fn grammar_table() {
        let pmd = "permessage-deflate";
        let cases: Vec<(&str, Vec<ExtensionOffer>)> =
            vec![
            ("", vec![]),
            ("  ,  , ", vec![]),
            (pmd, vec![ext(pmd, &[])]),
            (
                "permessage-deflate; client_max_window_bits",
                vec![ext(pmd, &[("client_max_window_bits", None)])],
            ),
            (
                "permessage-deflate;client_max_window_bits=10;server_no_context_takeover",
                vec![ext(
                    pmd,
                    &[("client_max_window_bits", Some("10")), ("server_no_context_takeover", None)],
                )],
            ),
            (
                "\tpermessage-deflate ; client_max_window_bits = \"10\" , x-webkit-deflate-frame\t",
                vec![
                    ext(pmd, &[("client_max_window_bits", Some("10"))]),
                    ext("x-webkit-deflate-frame", &[]),
                ],
            ),
            (r#"foo; bar="b\az""#, vec![ext("foo", &[("bar", Some("baz"))])]),
            ("a, b; c, , d", vec![ext("a", &[]), ext("b", &[("c", None)]), ext("d", &[])]),
            ("a; x=1; x=2", vec![ext("a", &[("x", Some("1")), ("x", Some("2"))])]),
        ];
        for (value, want) in cases {
            assert_eq!(parse_extensions(value), Ok(want), "{value:?}");
        }
    }

    #[test]
    fn grammar_errors() {
        for (value, offset, expected) in [
            (";a", 0, "an extension name"),
            ("foo;", 4, "a parameter name after ';'"),
            ("foo; =1", 5, "a parameter name after ';'"),
            ("foo; a=", 7, "a token or quoted string after '='"),
            ("foo; a=\"1", 9, "a closing '\"'"),
            ("foo; a=\"1\\", 10, "an escaped character after '\\'"),
            (
                "foo; a=\"1 2\"",
                7,
                "a quoted value that is a token once unquoted",
            ),
            (
                "foo; a=\"\"",
                7,
                "a quoted value that is a token once unquoted",
            ),
            ("foo bar", 4, "';', ',' or the end of the value"),
            ("foo; a=1 2", 9, "';', ',' or the end of the value"),
            ("foo; a=\"1\"x", 10, "';', ',' or the end of the value"),
            ("f\u{e9}", 1, "';', ',' or the end of the value"),
            ("foo; a=\"\u{1}\"", 8, "a closing '\"'"),
            ("foo=1", 3, "';', ',' or the end of the value"),
        ] {
            let err = parse_extensions(value).expect_err(value);
            assert_eq!(
                (err.offset(), err.expected()),
                (offset, expected),
                "{value:?}"
            );
        }
    }

    #[test]
    fn format_checks_tokens() {
        let good = [ext("a", &[("x", Some("1")), ("y", None)]), ext("b", &[])];
        assert_eq!(format_extensions(&good).as_deref(), Ok("a; x=1; y, b"));
        assert_eq!(format_extensions(&[]).as_deref(), Ok(""));
        for bad in [
            ext("", &[]),
            ext("a b", &[]),
            ext("a", &[("x y", None)]),
            ext("a", &[("x", Some("1 2"))]),
        ] {
            assert!(
                format_extensions(std::slice::from_ref(&bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn param_lookup() {
        let e = ext("a", &[("X", Some("1")), ("y", None)]);
        assert_eq!(e.param("x"), Some(Some("1")));
        assert_eq!(e.param("y"), Some(None));
        assert_eq!(e.param("z"), None);
    }
}

//! `ws://` and `wss://` URLs (RFC 6455 §3).

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// A parsed `ws://` or `wss://` URL.
///
/// ```
/// use rfc6455::proto::Url;
///
/// let url: Url = "wss://[::1]:9001/chat?room=1".parse()?;
/// assert_eq!((url.is_secure(), url.host(), url.port()), (true, "::1", 9001));
/// assert_eq!((url.path(), url.query()), ("/chat", Some("room=1")));
/// assert_eq!(url.host_header(), "[::1]:9001");
/// assert_eq!(url.request_target(), "/chat?room=1");
///
/// let url: Url = "ws://Example.com".parse()?;
/// assert_eq!((url.host_header().as_str(), url.port(), url.path()), ("example.com", 80, "/"));
/// # Ok::<(), rfc6455::proto::UrlError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Url {
    secure: bool,
    /// Lowercase, without brackets for IPv6.
    host: String,
    port: u16,
    /// Path (starting with `/`) and `?query` if any.
    target: String,
}

impl Url {
    /// Parses `ws://host[:port][/path][?query]` or the same with `wss://`. The scheme and host
    /// are case-insensitive (kept lowercase); an IPv6 host goes in brackets.
    pub fn parse(url: &str) -> Result<Url, UrlError> {
        let (scheme, rest) = url.split_once("://").ok_or(UrlError::MissingScheme)?;
        let (secure, default_port) = if scheme.eq_ignore_ascii_case("ws") {
            (false, 80)
        } else if scheme.eq_ignore_ascii_case("wss") {
            (true, 443)
        } else {
            return Err(UrlError::UnsupportedScheme(scheme.to_owned()));
        };
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at_checked(split).unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (inside, after) = bracketed
                .split_once(']')
                .ok_or_else(|| UrlError::InvalidHost(authority.to_owned()))?;
            if inside.parse::<Ipv6Addr>().is_err() {
                return Err(UrlError::InvalidHost(authority.to_owned()));
            }
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| UrlError::InvalidHost(authority.to_owned()))?,
                ),
            };
            (inside, port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            if host.is_empty() {
                return Err(UrlError::EmptyHost);
            }
            let reg_name = |c: char| c.is_ascii_alphanumeric() || "-._~%!$&'()*+,;=".contains(c);
            if !host.chars().all(reg_name) || port.is_some_and(|p| p.contains(':')) {
                return Err(UrlError::InvalidHost(authority.to_owned()));
            }
            (host, port)
        };
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(UrlError::InvalidPort(p.to_owned())),
            },
        };
        if let Some(c) = tail.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(UrlError::InvalidCharacter(c));
        }
        let target = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Ok(Url {
            secure,
            host: host.to_ascii_lowercase(),
            port,
            target,
        })
    }

    /// `true` for `wss://` (TLS), `false` for `ws://`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `"ws"` or `"wss"`.
    pub fn scheme(&self) -> &'static str {
        if self.secure {
            "wss"
        } else {
            "ws"
        }
    }

    /// The host to connect to and to name in TLS: a name or an address, IPv6 without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: as given, or 80 for `ws://` and 443 for `wss://`.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn default_port(&self) -> u16 {
        if self.secure {
            443
        } else {
            80
        }
    }

    /// The path, `/` when the URL has none.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The query after `?`, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// What goes on the request line: the path and `?query`.
    pub fn request_target(&self) -> &str {
        &self.target
    }

    /// The `Host` header value: the host (IPv6 in brackets), with `:port` only when the port
    /// is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl FromStr for Url {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Url, UrlError> {
        Url::parse(s)
    }
}

/// The normalised form: `ws://host[:port]/path[?query]`.
impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.host_header(),
            self.target
        )
    }
}

/// Why a string is not a usable WebSocket URL.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// No `scheme://`.
    MissingScheme,
    /// A scheme other than `ws` or `wss`.
    UnsupportedScheme(String),
    /// Nothing between `://` and the port or path.
    EmptyHost,
    /// A host with characters a host name cannot have, or an invalid IPv6 literal; the
    /// authority as given.
    InvalidHost(String),
    /// A port that is not a number from 1 to 65535; as given.
    InvalidPort(String),
    /// A `#fragment`, which WebSocket URLs cannot have (RFC 6455 §3).
    Fragment,
    /// `user:password@` in the URL.
    Credentials,
    /// A space, control or non-ASCII character in the path or query.
    InvalidCharacter(char),
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::MissingScheme => f.write_str("the URL has no scheme; write ws://host/path or wss://host/path"),
            UrlError::UnsupportedScheme(s) => write!(
                f,
                "the URL scheme is {s:?}; WebSocket URLs use ws:// (or wss:// for TLS), \
                 e.g. http://h/x becomes ws://h/x"
            ),
            UrlError::EmptyHost => f.write_str("the URL has no host; write ws://host/path"),
            UrlError::InvalidHost(h) => write!(
                f,
                "the URL's host {h:?} is not a valid host name or address (IPv6 addresses go in brackets: ws://[::1]:9001/)"
            ),
            UrlError::InvalidPort(p) => write!(f, "the URL's port {p:?} is not a number from 1 to 65535"),
            UrlError::Fragment => {
                f.write_str("WebSocket URLs cannot have a #fragment (RFC 6455 §3); remove it, or escape '#' as %23")
            }
            UrlError::Credentials => f.write_str(
                "user:password@ in a WebSocket URL is not sent anywhere; remove it and send an Authorization header instead",
            ),
            UrlError::InvalidCharacter(c) => write!(
                f,
                "the URL's path or query contains {c:?}; percent-encode spaces, control and non-ASCII characters"
            ),
        }
    }
}

impl std::error::Error for UrlError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_urls() {
        for (input, secure, host, port, target, host_header, display) in [
            (
                "ws://example.com",
                false,
                "example.com",
                80,
                "/",
                "example.com",
                "ws://example.com/",
            ),
            (
                "WSS://EXAMPLE.com/",
                true,
                "example.com",
                443,
                "/",
                "example.com",
                "wss://example.com/",
            ),
            ("ws://h:80/a", false, "h", 80, "/a", "h", "ws://h/a"),
            ("wss://h:443/a", true, "h", 443, "/a", "h", "wss://h/a"),
            (
                "ws://h:443/a",
                false,
                "h",
                443,
                "/a",
                "h:443",
                "ws://h:443/a",
            ),
            ("ws://h?x=1", false, "h", 80, "/?x=1", "h", "ws://h/?x=1"),
            (
                "ws://h:9001/a/b?x=1&y=%20",
                false,
                "h",
                9001,
                "/a/b?x=1&y=%20",
                "h:9001",
                "ws://h:9001/a/b?x=1&y=%20",
            ),
            (
                "ws://[::1]:9001/x",
                false,
                "::1",
                9001,
                "/x",
                "[::1]:9001",
                "ws://[::1]:9001/x",
            ),
            (
                "wss://[2001:DB8::1]",
                true,
                "2001:db8::1",
                443,
                "/",
                "[2001:db8::1]",
                "wss://[2001:db8::1]/",
            ),
            (
                "ws://127.0.0.1:8080",
                false,
                "127.0.0.1",
                8080,
                "/",
                "127.0.0.1:8080",
                "ws://127.0.0.1:8080/",
            ),
        ] {
            let url = Url::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(url.is_secure(), secure, "{input}");
            assert_eq!(url.host(), host, "{input}");
            assert_eq!(url.port(), port, "{input}");
            assert_eq!(url.request_target(), target, "{input}");
            assert_eq!(url.host_header(), host_header, "{input}");
            assert_eq!(url.to_string(), display, "{input}");
            assert_eq!(Url::parse(display).as_ref(), Ok(&url), "{input} round trip");
        }
    }

    #[test]
    fn bad_urls() {
        for (input, err) in [
            ("example.com/x", UrlError::MissingScheme),
            (
                "http://example.com/",
                UrlError::UnsupportedScheme("http".into()),
            ),
            ("wss:/example.com", UrlError::MissingScheme),
            ("ws://", UrlError::EmptyHost),
            ("ws:///path", UrlError::EmptyHost),
            ("ws://:80/", UrlError::EmptyHost),
            ("ws://h/x#frag", UrlError::Fragment),
            ("ws://user:pw@h/", UrlError::Credentials),
            ("ws://h:/", UrlError::InvalidPort("".into())),
            ("ws://h:0/", UrlError::InvalidPort("0".into())),
            ("ws://h:65536/", UrlError::InvalidPort("65536".into())),
            ("ws://h:+80/", UrlError::InvalidPort("+80".into())),
            ("ws://::1/", UrlError::EmptyHost),
            ("ws://h:1:2/", UrlError::InvalidHost("h:1:2".into())),
            ("ws://[::1/", UrlError::InvalidHost("[::1".into())),
            ("ws://[nope]/", UrlError::InvalidHost("[nope]".into())),
            ("ws://[::1]x/", UrlError::InvalidHost("[::1]x".into())),
            ("ws://h o/", UrlError::InvalidHost("h o".into())),
            ("ws://h/a b", UrlError::InvalidCharacter(' ')),
            ("ws://h/\u{e9}", UrlError::InvalidCharacter('\u{e9}')),
        ] {
            assert_eq!(Url::parse(input), Err(err), "{input}");
        }
    }
}

//! `--broadcast --serve ROOM`: the broadcast run spoken in `rfc6455 serve`'s JSON protocol.
//!
//! Connection N connects as `?nick=loadN`, waits for `{"type":"welcome",…}`, sends
//! `{"type":"join","room":ROOM}` and has joined once `{"type":"joined",…}` comes back. A
//! publisher sends `{"type":"message","room":ROOM,"text":PAYLOAD}`, PAYLOAD being the text
//! broadcast payload (header and pattern, see [`super::broadcast`]: hex and letters, nothing
//! JSON escapes), so serve's `{"type":"message",…,"text":PAYLOAD,…}` carries it back
//! unchanged and is checked as in plain broadcast mode. Replies are read by [`scan`], which
//! finds the top-level `type`, `text` and `code` strings without allocating.

use rfc6455::proto::Url;

/// What a benchmark needs serve started with: its defaults are for the internet.
pub const HINT: &str =
    "start serve with --rate 1000000/s --burst 1000000 --max-per-ip 100000 for a benchmark";

/// What the threads share of a `--serve` run, made once.
pub struct Serve {
    pub room: String,
    /// `{"type":"join","room":ROOM}`.
    pub join: String,
}

impl Serve {
    /// `room` must be a valid room name (see [`valid_room`]): it goes into JSON unescaped.
    pub fn new(room: &str) -> Serve {
        Serve {
            room: room.to_owned(),
            join: format!(r#"{{"type":"join","room":"{room}"}}"#),
        }
    }

    /// The URL connection `n` (the run's index) connects to: `url` with `nick=loadN` added
    /// to its query.
    pub fn url(&self, url: &Url, n: usize) -> Result<Url, String> {
        let query = match url.query() {
            Some(q) if !q.is_empty() => format!("{q}&"),
            _ => String::new(),
        };
        let url = format!(
            "{}://{}{}?{query}nick=load{n}",
            url.scheme(),
            url.host_header(),
            url.path()
        );
        Url::parse(&url).map_err(|e| format!("{url}: {e}"))
    }

    /// A publisher's message around `payload`, and where the payload starts in it.
    pub fn message(&self, payload: &str) -> (String, usize) {
        let prefix = format!(r#"{{"type":"message","room":"{}","text":""#, self.room);
        (format!("{prefix}{payload}\"}}"), prefix.len())
    }
}

/// A room name serve accepts: 1 to 64 of `A-Z a-z 0-9 _ . -` (so it needs no JSON escape).
pub fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A top-level string value as it stands between its quotes, and whether it has escapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Raw<'a> {
    pub bytes: &'a [u8],
    pub escaped: bool,
}

/// The top-level fields of a serve reply the tool reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub kind: Option<Raw<'a>>,
    pub text: Option<Raw<'a>>,
    pub code: Option<Raw<'a>>,
}

/// Reads the top-level `"type"`, `"text"` and `"code"` string fields of a JSON object in any
/// order and spacing, skipping other values (nested objects such as a `joined` reply's
/// history included); `None` if `json` is not one object. No allocation, one pass.
pub fn scan(json: &[u8]) -> Option<Fields<'_>> {
    let mut s = Scanner { json, at: 0 };
    let mut fields = Fields::default();
    s.expect(b'{')?;
    if s.peek()? == b'}' {
        s.at += 1;
        return s.end().then_some(fields);
    }
    loop {
        let key = s.string()?;
        s.expect(b':')?;
        if s.peek()? == b'"' {
            let value = s.string()?;
            match (key.escaped, key.bytes) {
                (false, b"type") => fields.kind = Some(value),
                (false, b"text") => fields.text = Some(value),
                (false, b"code") => fields.code = Some(value),
                _ => {}
            }
        } else {
            s.skip_value()?;
        }
        match s.next()? {
            b',' => {}
            b'}' => return s.end().then_some(fields),
            _ => return None,
        }
    }
}

struct Scanner<'a> {
    json: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    /// The next byte that is not white space, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.json.get(self.at) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Only white space left.
    fn end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string (the next token): its raw contents.
    fn string(&mut self) -> Option<Raw<'a>> {
        self.expect(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            match *self.json.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(Raw {
                        bytes: &self.json[start..self.at - 1],
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    self.at += 2;
                }
                _ => self.at += 1,
            }
        }
    }

    /// Skips a value that is not a top-level string: a number, literal, object or array.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.at += 1;
                }
                b'}' | b']' if depth > 0 => {
                    depth -= 1;
                    self.at += 1;
                }
                b',' | b'}' | b']' if depth == 0 => return Some(()),
                _ => self.at += 1,
            }
            if depth == 0 && matches!(self.peek()?, b',' | b'}') {
                return Some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Option<Raw<'_>> {
        Some(Raw {
            bytes: s.as_bytes(),
            escaped: false,
        })
    }

    #[test]
    fn scans_serve_replies() {
        let f = scan(
            br#"{"from":"load0","room":"lobby","seq":3,"text":"00ab","ts":17,"type":"message"}"#,
        )
        .unwrap();
        assert_eq!(
            (f.kind, f.text, f.code),
            (raw("message"), raw("00ab"), None)
        );
        // A joined reply's history holds messages: only the top level counts.
        let f = scan(
            br#"{ "history": [{"text":"x","type":"message"}, [1, {"a":"}"}]], "members": 2,
                 "room":"lobby", "seq": null, "type" : "joined" }"#,
        )
        .unwrap();
        assert_eq!((f.kind, f.text), (raw("joined"), None));
        let f =
            scan(br#"{"code":"rate_limited","message":"slow \"down\"","type":"error"}"#).unwrap();
        assert_eq!((f.kind, f.code), (raw("error"), raw("rate_limited")));
        let f = scan(br#"{"type":"message","text":"a\"b"}"#).unwrap();
        assert_eq!(
            f.text,
            Some(Raw {
                bytes: br#"a\"b"#,
                escaped: true
            })
        );
        assert_eq!(scan(b"{}"), Some(Fields::default()));
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            br#"{"type":"x""#,
            br#"{"type" "x"}"#,
            br#"{"type":"x"} x"#,
            br#"{"a":{"b":1}"#,
        ] {
            assert_eq!(scan(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn urls_and_messages() {
        let url = Url::parse("ws://127.0.0.1:8080/ws").unwrap();
        let serve = Serve::new("lobby");
        assert_eq!(
            serve.url(&url, 7).unwrap().request_target(),
            "/ws?nick=load7"
        );
        let url = Url::parse("ws://Example.com/ws?token=x").unwrap();
        let u = serve.url(&url, 0).unwrap();
        assert_eq!(
            (u.host_header(), u.request_target()),
            ("example.com".into(), "/ws?token=x&nick=load0")
        );
        assert_eq!(serve.join, r#"{"type":"join","room":"lobby"}"#);
        let (message, at) = serve.message("abc");
        assert_eq!(message, r#"{"type":"message","room":"lobby","text":"abc"}"#);
        assert_eq!(&message[at..at + 3], "abc");
        assert!(valid_room("a.b-c_9") && !valid_room("a b") && !valid_room(""));
    }
}

//! permessage-deflate (RFC 7692): negotiation, and the per-message codec the
//! [`Connection`](crate::Connection) uses once it is enabled.
//!
//! # Flow
//!
//! ```text
//!  client                                              server
//!  DeflateConfig::client_offer() ──── Sec-WebSocket-Extensions ───► DeflateConfig::server_negotiate(offers)
//!                                                                    → (response, DeflateParams)
//!  DeflateConfig::client_accept_response(answered) ◄─── response ──┘
//!    → Option<DeflateParams>
//!  Connection::client(..).set_deflate(params)        Connection::server(..).set_deflate(params)
//! ```
//!
//! Both sides call [`Connection::set_deflate`](crate::Connection::set_deflate) right after the
//! handshake, before feeding the connection any bytes or sending anything. With the
//! handshake types of [`proto`](crate::proto):
//!
//! ```
//! use rfc6455::proto::deflate::DeflateConfig;
//! use rfc6455::proto::{ClientHandshake, ClientOptions, HandshakeLimits, Request, Status, Url};
//! use rfc6455::{Config, Connection, Event, Message};
//!
//! let deflate = DeflateConfig::default();
//!
//! // Client: offer permessage-deflate in the request.
//! let url: Url = "ws://example.com/chat".parse()?;
//! let options = ClientOptions::default().extension(deflate.client_offer());
//! let handshake = ClientHandshake::new(&url, &options, &mut || [7u8; 16])?;
//!
//! // Server: pick from the offers, answer, enable.
//! let Status::Complete(request, _) = Request::parse(handshake.request(), &HandshakeLimits::default())? else {
//!     unreachable!()
//! };
//! let mut accept = request.accept();
//! let mut server = Connection::server(Config::default());
//! if let Some((answer, params)) = deflate.server_negotiate(request.extensions()) {
//!     accept = accept.extensions(&[answer])?;
//!     server.set_deflate(params);
//! }
//! let reply = accept.to_bytes();
//!
//! // Client: validate the answer (an error means: fail the connection), enable.
//! let Status::Complete(response, _) = handshake.parse_response(&reply)? else { unreachable!() };
//! let mut client = Connection::client(Config::default(), || [1, 2, 3, 4]);
//! if let Some(params) = deflate.client_accept_response(response.extensions())? {
//!     client.set_deflate(params);
//! }
//!
//! client.send_text(&"compress me! ".repeat(20))?;
//! let wire = client.poll_transmit().to_vec();
//! assert!(wire.len() < 100, "260 bytes of text went out compressed");
//! server.handle_bytes(&wire)?;
//! assert!(matches!(server.poll_event(), Some(Event::Message(Message::Text(_)))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Window bits 8
//!
//! zlib (and zlib-rs) refuse to *compress* raw deflate with an 8-bit (256-byte) window, and
//! flate2 refuses 8 for either direction. This crate still accepts 8 wherever RFC 7692 allows
//! it, and stays correct:
//!
//! - **Decompressing** a stream the peer made with a window of at most 8 bits: we inflate with
//!   a 9-bit window. A larger window reads every stream a smaller one wrote (distances are at
//!   most 256, all inside 512 bytes), so this is always correct.
//! - **Compressing** when we agreed to a window of at most 8 bits (`server_max_window_bits=8`
//!   answered by us as a server, `client_max_window_bits=8` answered to us as a client): we
//!   compress with a 9-bit window. zlib-rs, like zlib, never emits a match distance greater
//!   than `w_size - MIN_LOOKAHEAD` = 512 − 262 = **250** bytes (`State::max_dist`, used by every
//!   match finder: quick, fast, medium, slow; rle uses distance 1, stored/huffman none), so
//!   every stream it writes with a 9-bit window is readable with a 256-byte window. This is
//!   the same argument zlib itself uses to map `windowBits = 8` to 9 for zlib-wrapped streams.
//!   The test `window_9_output_fits_a_256_byte_window` checks it on real output.
//!
//! So a server answers `server_max_window_bits=8` when a client asks for it (RFC 7692
//! §7.1.2.1 requires that or declining), and a client accepts `client_max_window_bits=8`.
//!
//! # Memory
//!
//! Measured with a counting allocator (`tests/deflate_memory.rs`), zlib-rs through flate2
//! (memLevel 8):
//!
//! | window bits | compressor | decompressor |
//! |------------:|-----------:|-------------:|
//! | 9           | 245 KiB    | 46 KiB       |
//! | 12          | 259 KiB    | 46 KiB       |
//! | 15          | 371 KiB    | 46 KiB       |
//!
//! The compressor's hash table and pending buffer do not depend on the window, and
//! zlib-rs's inflater always allocates a 32 KiB window, so window bits save little.
//! What matters is context takeover: both halves are created on first use, and when a
//! direction is `no_context_takeover` its half holds nothing between messages, so
//! [`Connection::shrink_buffers`](crate::Connection::shrink_buffers) frees it. A server
//! connection after a 10 KiB message each way, then shrunk:
//!
//! | agreed                                          | busy    | idle     |
//! |-------------------------------------------------|--------:|---------:|
//! | context takeover both ways, 15 bits             | 425 KiB | 418 KiB  |
//! | [`DeflateConfig::default`] (server resets)      | 425 KiB | 47 KiB   |
//! | no context takeover either way                  | 425 KiB | 0.6 KiB  |
//! | (no deflate)                                    |         | 0.2 KiB  |

mod codec;

/// The handshake's generic extension element, re-exported for convenience.
use super::handshake::ExtensionOffer;
pub(crate) use codec::{compress_alone, Codec};

use std::fmt;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The smallest LZ77 window RFC 7692 allows (2^8 bytes).
pub const MIN_WINDOW_BITS: u8 = 8;
/// The largest LZ77 window (2^15 = 32 KiB), the default when nothing limits it.
pub const MAX_WINDOW_BITS: u8 = 15;

/// What this endpoint asks for and accepts when negotiating permessage-deflate, plus local
/// choices (threshold, level) that are not negotiated.
///
/// The parameter fields are named as in RFC 7692 (`server_*` is the server-to-client
/// direction, `client_*` the client-to-server one) and mean slightly different things per
/// role; each field says what it does for a client and for a server.
///
/// The default is chosen for many connections per server, i.e. for memory:
/// `server_no_context_takeover` is on, so a server's compressor (371 KiB at 15 bits, the
/// biggest piece) holds no state between messages and
/// [`Connection::shrink_buffers`](crate::Connection::shrink_buffers) frees it: an idle
/// server connection costs 47 KiB instead of 418 KiB. The client's direction keeps context
/// takeover (the server's inflater, 46 KiB, is the price of letting clients compress small
/// similar messages well); set `client_no_context_takeover` too for 0.6 KiB idle
/// connections. Messages under 64 bytes go out uncompressed. Level 6, zlib's default.
///
/// ```
/// use rfc6455::proto::deflate::DeflateConfig;
/// let mut config = DeflateConfig::default();
/// config.server_no_context_takeover = false; // better ratio, ~370 KiB more per connection
/// config.client_no_context_takeover = true;  // idle connections down to < 1 KiB
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Client: ask the server to reset its compressor after every message (it must agree or
    /// the client fails the connection). Server: always reset ours, and say so in the
    /// response; when the client asks for it, it is on regardless. Default `true`.
    pub server_no_context_takeover: bool,
    /// Client: promise (and keep) to reset our compressor after every message. Server:
    /// require the client to do so; when the client offers it, it is accepted regardless.
    /// Default `false`.
    pub client_no_context_takeover: bool,
    /// Client: ask the server to compress with at most this many bits (8..=15; 15 asks
    /// nothing); a response above it fails the connection. Server: compress with at most
    /// this many bits, and say so if below 15. Default 15.
    pub server_max_window_bits: u8,
    /// Client: compress with at most this many bits and offer the parameter with this value
    /// (bare at 15, which lets the server pick any). Server: when the client's offer allows
    /// it, limit the client's window to this; when it does not, the client's window stays
    /// 15. (zlib-rs inflates with a 32 KiB window whatever this says, so it saves the
    /// client's memory, not ours.) Default 15.
    pub client_max_window_bits: u8,
    /// Messages with fewer bytes than this are sent uncompressed (RSV1 clear): deflate rarely
    /// shrinks them and costs a compressor call. Default 64.
    pub compression_threshold: usize,
    /// zlib compression level 0..=9 (values above 9 mean 9). Default 6.
    pub compression_level: u32,
}

impl Default for DeflateConfig {
    fn default() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            compression_threshold: 64,
            compression_level: 6,
        }
    }
}

/// The agreed parameters of one connection, from [`DeflateConfig::server_negotiate`] or
/// [`DeflateConfig::client_accept_response`], to hand to
/// [`Connection::set_deflate`](crate::Connection::set_deflate).
///
/// The four RFC 7692 parameters are as agreed (window bits 15 where nothing limited them);
/// the threshold and level are copied from the [`DeflateConfig`] that negotiated them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this many window bits (8..=15).
    pub server_max_window_bits: u8,
    /// The client compresses with at most this many window bits (8..=15).
    pub client_max_window_bits: u8,
    /// Messages shorter than this are sent uncompressed.
    pub compression_threshold: usize,
    /// zlib compression level 0..=9.
    pub compression_level: u32,
}

impl Default for DeflateParams {
    /// What a bare `permessage-deflate` agrees to: context takeover both ways, 15-bit windows,
    /// with [`DeflateConfig::default`]'s threshold and level.
    fn default() -> DeflateParams {
        let config = DeflateConfig::default();
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            compression_threshold: config.compression_threshold,
            compression_level: config.compression_level,
        }
    }
}

/// Why a server's permessage-deflate response cannot be accepted. The client must fail the
/// WebSocket connection (RFC 7692 §5, §7): close the TCP connection without sending frames.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The response accepted permessage-deflate more than once.
    DuplicateExtension,
    /// A parameter RFC 7692 does not define (for a response).
    UnknownParameter(String),
    /// The same parameter twice.
    DuplicateParameter(String),
    /// A parameter with a missing, unexpected or out-of-range value.
    InvalidValue {
        /// The parameter.
        param: String,
        /// Its value, if it had one.
        value: Option<String>,
    },
    /// We asked for `server_no_context_takeover` and the response lacks it.
    MissingServerNoContextTakeover,
    /// We asked for `server_max_window_bits=requested` and the response did not honour it.
    ServerWindowBitsNotHonoured {
        /// What we asked for.
        requested: u8,
        /// What the response said (`None`: the parameter was missing).
        answered: Option<u8>,
    },
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server's permessage-deflate response is invalid: ")?;
        match self {
            NegotiationError::DuplicateExtension => f.write_str("it accepts the extension twice"),
            NegotiationError::UnknownParameter(p) => {
                write!(f, "unknown parameter {p:?} (RFC 7692 defines four)")
            }
            NegotiationError::DuplicateParameter(p) => write!(f, "parameter {p:?} appears twice"),
            NegotiationError::InvalidValue { param, value: Some(v) } => write!(
                f,
                "parameter {param:?} has invalid value {v:?} (window bits are 8 to 15, flags take no value)"
            ),
            NegotiationError::InvalidValue { param, value: None } => {
                write!(f, "parameter {param:?} needs a value from 8 to 15")
            }
            NegotiationError::MissingServerNoContextTakeover => {
                f.write_str("server_no_context_takeover was requested but not agreed")
            }
            NegotiationError::ServerWindowBitsNotHonoured { requested, answered } => match answered {
                Some(bits) => write!(
                    f,
                    "server_max_window_bits={bits} exceeds the requested {requested}"
                ),
                None => write!(
                    f,
                    "server_max_window_bits={requested} was requested but not agreed"
                ),
            },
        }?;
        f.write_str("; fail the connection, or offer without the parameters this server rejects")
    }
}

impl std::error::Error for NegotiationError {}

/// An offer or response, checked against RFC 7692 §7.1.
#[derive(Default, Debug)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

/// Window bits as RFC 7692 §7.1.2 writes them: a decimal 8..=15 without leading zeros.
fn window_bits(value: &str) -> Option<u8> {
    match value {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// Parses the parameters of one `permessage-deflate` element. `response` decides whether
/// `client_max_window_bits` needs a value.
fn parse(ext: &ExtensionOffer, response: bool) -> Result<Parsed, NegotiationError> {
    let mut parsed = Parsed::default();
    let mut seen = [false; 4];
    for (name, value) in &ext.params {
        let invalid = || NegotiationError::InvalidValue {
            param: name.clone(),
            value: value.clone(),
        };
        let (index, canonical) = [
            SERVER_NO_CONTEXT_TAKEOVER,
            CLIENT_NO_CONTEXT_TAKEOVER,
            SERVER_MAX_WINDOW_BITS,
            CLIENT_MAX_WINDOW_BITS,
        ]
        .iter()
        .enumerate()
        .find(|(_, known)| name.eq_ignore_ascii_case(known))
        .map(|(i, known)| (i, *known))
        .ok_or_else(|| NegotiationError::UnknownParameter(name.clone()))?;
        if std::mem::replace(&mut seen[index], true) {
            return Err(NegotiationError::DuplicateParameter(canonical.to_owned()));
        }
        let bits = match value.as_deref() {
            Some(v) => Some(window_bits(v).ok_or_else(invalid)?),
            None => None,
        };
        match canonical {
            SERVER_NO_CONTEXT_TAKEOVER | CLIENT_NO_CONTEXT_TAKEOVER if value.is_some() => {
                return Err(invalid())
            }
            SERVER_NO_CONTEXT_TAKEOVER => parsed.server_no_context_takeover = true,
            CLIENT_NO_CONTEXT_TAKEOVER => parsed.client_no_context_takeover = true,
            SERVER_MAX_WINDOW_BITS => {
                parsed.server_max_window_bits = Some(bits.ok_or_else(invalid)?)
            }
            _ if response && bits.is_none() => return Err(invalid()),
            _ => parsed.client_max_window_bits = Some(bits),
        }
    }
    Ok(parsed)
}

impl DeflateConfig {
    /// Client: the `permessage-deflate` element to put in `Sec-WebSocket-Extensions`.
    ///
    /// It always carries `client_max_window_bits` (bare, or with our limit below 15): we can
    /// compress with any window the server picks.
    pub fn client_offer(&self) -> ExtensionOffer {
        let mut offer = ExtensionOffer::new(EXTENSION_NAME);
        if self.server_no_context_takeover {
            offer = offer.with_param(SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        if self.client_no_context_takeover {
            offer = offer.with_param(CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        let server_bits = clamp_bits(self.server_max_window_bits);
        if server_bits < MAX_WINDOW_BITS {
            offer = offer.with_param(SERVER_MAX_WINDOW_BITS, Some(&server_bits.to_string()));
        }
        let client_bits = clamp_bits(self.client_max_window_bits);
        let value = (client_bits < MAX_WINDOW_BITS).then(|| client_bits.to_string());
        offer.with_param(CLIENT_MAX_WINDOW_BITS, value.as_deref())
    }

    /// Client: checks the extensions the server's response accepted (every
    /// `Sec-WebSocket-Extensions` element, in order) against what
    /// [`client_offer`](Self::client_offer) asked for.
    ///
    /// `Ok(None)`: the server did not accept permessage-deflate; run without it.
    /// `Ok(Some(params))`: pass them to
    /// [`Connection::set_deflate`](crate::Connection::set_deflate).
    /// `Err`: the response breaks RFC 7692; fail the connection (close TCP, send nothing).
    /// Elements with other names are ignored here.
    pub fn client_accept_response(
        &self,
        extensions: &[ExtensionOffer],
    ) -> Result<Option<DeflateParams>, NegotiationError> {
        let mut ours = extensions
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME));
        let Some(response) = ours.next() else {
            return Ok(None);
        };
        if ours.next().is_some() {
            return Err(NegotiationError::DuplicateExtension);
        }
        let r = parse(response, true)?;
        if self.server_no_context_takeover && !r.server_no_context_takeover {
            return Err(NegotiationError::MissingServerNoContextTakeover);
        }
        let requested = clamp_bits(self.server_max_window_bits);
        if requested < MAX_WINDOW_BITS && r.server_max_window_bits.is_none_or(|b| b > requested) {
            return Err(NegotiationError::ServerWindowBitsNotHonoured {
                requested,
                answered: r.server_max_window_bits,
            });
        }
        // `client_offer` always includes client_max_window_bits, so any value is acceptable;
        // we keep our own (smaller) limit if we announced one.
        let client_bits = r
            .client_max_window_bits
            .flatten()
            .unwrap_or(MAX_WINDOW_BITS)
            .min(clamp_bits(self.client_max_window_bits));
        Ok(Some(DeflateParams {
            server_no_context_takeover: r.server_no_context_takeover,
            client_no_context_takeover: r.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: r.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            client_max_window_bits: client_bits,
            compression_threshold: self.compression_threshold,
            compression_level: self.compression_level.min(9),
        }))
    }

    /// Server: picks the first acceptable `permessage-deflate` offer among the client's
    /// extensions (every `Sec-WebSocket-Extensions` element, in order) and returns the
    /// element to answer with plus the agreed parameters.
    ///
    /// Offers with unknown, duplicate or invalid parameters are skipped, as RFC 7692 §5
    /// requires ("decline"); other extension names are ignored. `None`: nothing acceptable;
    /// answer without permessage-deflate (the handshake still succeeds).
    ///
    /// Put the returned element into the response's `Sec-WebSocket-Extensions` and pass the
    /// params to [`Connection::set_deflate`](crate::Connection::set_deflate).
    pub fn server_negotiate(
        &self,
        offers: &[ExtensionOffer],
    ) -> Option<(ExtensionOffer, DeflateParams)> {
        offers
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME))
            .find_map(|e| parse(e, false).ok())
            .map(|offer| self.server_answer(&offer))
    }

    fn server_answer(&self, offer: &Parsed) -> (ExtensionOffer, DeflateParams) {
        let mut response = ExtensionOffer::new(EXTENSION_NAME);
        let server_no_context_takeover =
            offer.server_no_context_takeover || self.server_no_context_takeover;
        if server_no_context_takeover {
            response = response.with_param(SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        let client_no_context_takeover =
            offer.client_no_context_takeover || self.client_no_context_takeover;
        if client_no_context_takeover {
            response = response.with_param(CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        // §7.1.2.1: answer with the same or a smaller value; we may also limit ourselves.
        let server_bits = offer
            .server_max_window_bits
            .unwrap_or(MAX_WINDOW_BITS)
            .min(clamp_bits(self.server_max_window_bits));
        if offer.server_max_window_bits.is_some() || server_bits < MAX_WINDOW_BITS {
            response = response.with_param(SERVER_MAX_WINDOW_BITS, Some(&server_bits.to_string()));
        }
        // §7.1.2.2: only if offered; at most the offered value.
        let client_bits = match offer.client_max_window_bits {
            None => MAX_WINDOW_BITS,
            Some(hint) => {
                let bits = hint
                    .unwrap_or(MAX_WINDOW_BITS)
                    .min(clamp_bits(self.client_max_window_bits));
                if hint.is_some() || bits < MAX_WINDOW_BITS {
                    response = response.with_param(CLIENT_MAX_WINDOW_BITS, Some(&bits.to_string()));
                }
                bits
            }
        };
        let params = DeflateParams {
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            compression_threshold: self.compression_threshold,
            compression_level: self.compression_level.min(9),
        };
        (response, params)
    }
}

#[cfg(test)]
mod tests;

//! The seam between the loop and the bytes on the wire: plain TCP, or a TLS
//! [`crate::tls::Session`] over the same non-blocking socket (feature `tls`). The loop reads
//! and writes plaintext through a [`Transport`]; handlers and topics never see which it is.
//!
//! - **Plain**: reads and writes are the socket's; the zero-copy paths (`send_through`
//!   writing from the read buffer) write to the socket itself.
//! - **TLS**: a [`crate::tls::Session`] (rustls' handshake, then our own records): `read`
//!   reads the socket once (up to 64 KiB) and opens the records into the loop's buffer;
//!   `write` seals plaintext into the session's outgoing buffer (bounded, so it
//!   takes what fits and says so, as a full socket would), and [`Transport::write_records`]
//!   moves those records to the socket. No thread, no blocking: the loop's readiness drives
//!   both.

use mio::net::TcpStream;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

/// A connection's transport. An idle plain one is the socket alone; a TLS one adds a boxed
/// session (its keys; its buffers are the thread's while it is idle).
pub(super) struct Transport {
    pub(super) stream: TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<Tls>>,
}

#[cfg(feature = "tls")]
struct Tls {
    session: crate::tls::Session,
    /// Nothing has been read yet: the first bytes are checked for plain HTTP.
    fresh: bool,
    /// The last read emptied the socket ([`crate::tls::Plaintext::drained`]).
    drained: bool,
}

/// What [`Transport::read`] fails with when a peer speaks plain HTTP to a TLS port.
pub(super) const PLAIN_HTTP_ON_TLS: &str = "plain HTTP on a TLS port";

/// The answer to plain HTTP on a TLS port (as nginx gives one), then the connection closes.
pub(super) const PLAIN_HTTP_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 48\r\n\
Connection: close\r\n\
\r\n\
This port speaks TLS: use https:// or wss://.\r\n\r\n";

impl Transport {
    pub(super) fn plain(stream: TcpStream) -> Transport {
        Transport {
            stream,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    #[cfg(feature = "tls")]
    pub(super) fn tls(
        stream: TcpStream,
        config: &std::sync::Arc<rustls::ServerConfig>,
    ) -> io::Result<Transport> {
        let session = crate::tls::Session::server(config.clone())?;
        Ok(Transport {
            stream,
            tls: Some(Box::new(Tls {
                session,
                fresh: true,
                drained: false,
            })),
        })
    }

    /// Whether this is TLS.
    pub(super) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Whether the TLS handshake is still going: plaintext written now would only wait in
    /// rustls' buffer, out of the loop's accounting. Never for plain TCP.
    pub(super) fn is_handshaking(&self) -> bool {
        #[cfg(feature = "tls")]
        return self
            .tls
            .as_ref()
            .is_some_and(|t| t.session.is_handshaking());
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Whether TLS records wait to be written to the socket.
    pub(super) fn wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.as_ref().is_some_and(|t| t.session.wants_write());
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Whether the last [`read`](Self::read), which returned `n` bytes into a buffer of
    /// `len`, emptied the socket, so that under edge-triggered readiness the next bytes raise
    /// a new event. Plain TCP: a short read. TLS: a short read of the socket with every
    /// record decrypted so far handed out, as [`crate::tls::Session::read`] reports it.
    pub(super) fn read_drained(&self, n: usize, len: usize) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.drained;
        }
        n < len
    }

    /// Reads plaintext, as a socket's `read`: `Ok(0)` at the end (TCP EOF, or the peer's TLS
    /// close_notify), `WouldBlock` when nothing more has arrived. A TLS failure is an
    /// `InvalidData` error (the alert is queued: [`write_records`](Self::write_records)
    /// sends it); plain HTTP on a TLS port fails with [`PLAIN_HTTP_ON_TLS`].
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls_read(tls, &mut self.stream, buf);
        }
        self.stream.read(buf)
    }

    /// Writes TLS records waiting in rustls to the socket: `Ok(true)` when all went, `Ok(false)`
    /// when the socket is full. Nothing to do for plain TCP.
    pub(super) fn write_records(&mut self) -> io::Result<bool> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls.session.write_records(&mut self.stream);
        }
        Ok(true)
    }

    /// Ends our sending side: TLS close_notify (best effort), then TCP FIN.
    pub(super) fn shutdown_write(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            tls.session.send_close_notify();
            let _ = self.write_records();
        }
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// One last try at `data` before the connection is dropped.
    pub(super) fn write_last(&mut self, data: &[u8]) {
        let _ = self.write(data);
        let _ = self.write_records();
    }
}

/// Plaintext is written to the socket (plain) or encrypted into rustls' buffer (TLS), taking
/// what fits: as much as the socket, or rustls' buffer limit, takes.
impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls.session.write_vectored(&[IoSlice::new(buf)]);
        }
        self.stream.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls.session.write_vectored(bufs);
        }
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "tls")]
fn tls_read(tls: &mut Tls, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    tls.drained = false;
    if tls.fresh {
        // A TLS connection begins with a handshake record (0x16); an HTTP method begins with
        // a capital letter. Answer that one in plain HTTP rather than with an alert that a
        // browser or curl would show as garbage.
        let mut first = [0u8; 1];
        match stream.peek(&mut first) {
            Ok(1) if first[0].is_ascii_uppercase() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    PLAIN_HTTP_ON_TLS,
                ))
            }
            Ok(1) => tls.fresh = false,
            Ok(_) => return Ok(0),
            Err(e) => return Err(e),
        }
    }
    let read = tls.session.read(stream, buf)?;
    tls.drained = read.drained;
    Ok(read.len)
}

//! `wss://` for the load tool: a non-blocking socket that is plain TCP or a
//! `rfc6455::tls::Session` (rustls' handshake, then the library's own records) over it, with
//! the socket's own interface (read, write, register), so the worker's loop does not change.
//! Like a socket, `write` takes plaintext only once the records of the last write have gone
//! (`WouldBlock` until then); `flush` pushes records still waiting, and `read` does too,
//! first (TLS answers reads with writes: handshake messages, key updates).

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rfc6455::tls::rustls;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

/// What every connection of a `wss://` run shares: one configuration (one root store, one
/// session cache) and the name the server's certificate must have.
#[derive(Clone)]
pub struct TlsPlan {
    pub config: Arc<rustls::ClientConfig>,
    pub name: rustls::pki_types::ServerName<'static>,
    /// TLS session resumption on (`--no-resume` turns it off).
    pub resume: bool,
}

pub struct Sock {
    tcp: TcpStream,
    tls: Option<Box<rfc6455::tls::Session>>,
    /// The last TLS read emptied the socket (`tls::Plaintext::drained`).
    drained: bool,
}

impl Sock {
    /// `config`: the plan's, or (`--churn`) the slot's own, so that each slot resumes its own
    /// session as a returning browser does.
    pub fn connect(
        addr: SocketAddr,
        tls: Option<(&TlsPlan, &Arc<rustls::ClientConfig>)>,
    ) -> io::Result<Sock> {
        let tcp = TcpStream::connect(addr)?;
        let tls = match tls {
            Some((plan, config)) => Some(Box::new(rfc6455::tls::Session::client(
                config.clone(),
                plan.name.clone(),
            )?)),
            None => None,
        };
        Ok(Sock {
            tcp,
            tls,
            drained: false,
        })
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.tcp.take_error()
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.tcp.set_nodelay(on)
    }

    /// Whether the TLS handshake resumed a session (false for plain TCP, and before the
    /// handshake is over).
    pub fn resumed(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.resumed())
    }

    /// Whether the last read, which returned `n` bytes into a buffer of `len`, emptied the
    /// socket: a short read in plain TCP; with TLS, a short read of the socket with every
    /// record decrypted so far handed out (a short TLS read may only be some records).
    pub fn read_drained(&self, n: usize, len: usize) -> bool {
        match self.tls {
            None => n < len,
            Some(_) => self.drained,
        }
    }

    /// Writes waiting records: `WouldBlock` if some are left.
    fn push_records(&mut self) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        match tls.write_records(&mut self.tcp)? {
            true => Ok(()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.read(buf);
        }
        match self.push_records() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        let tls = self.tls.as_mut().expect("TLS");
        self.drained = false;
        let read = tls.read(&mut self.tcp, buf).map(|read| {
            self.drained = read.drained;
            read.len
        });
        // TLS answers reads with writes (the handshake's next flight, tickets, key updates):
        // send them, whatever the read says (a WouldBlock often follows a flight).
        match self.push_records() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => read,
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return self.tcp.write(buf);
        }
        self.push_records()?;
        let tls = self.tls.as_mut().expect("TLS");
        let n = tls.write_vectored(&[io::IoSlice::new(buf)])?;
        match self.push_records() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push_records()
    }
}

impl Source for Sock {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.register(r, t, i)
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.tcp.reregister(r, t, i)
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.tcp.deregister(r)
    }
}

impl AsFd for Sock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp.as_fd()
    }
}

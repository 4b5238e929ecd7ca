//! Listening sockets: `SO_REUSEPORT`, a free port check, TCP congestion control.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};

/// The same address for another loop: its own socket with `SO_REUSEPORT` on Unix, so the
/// kernel spreads connections; elsewhere the first socket, shared.
pub(super) fn another_listener(
    first: &StdListener,
    addr: SocketAddr,
    congestion: Option<&str>,
) -> io::Result<StdListener> {
    #[cfg(unix)]
    {
        let _ = first;
        bind_listener(addr, congestion)
    }
    #[cfg(not(unix))]
    {
        let _ = (addr, congestion);
        first.try_clone()
    }
}

/// A listening socket with `SO_REUSEADDR` and (on Unix) `SO_REUSEPORT`, non-blocking, and
/// the congestion control its connections inherit, if one was chosen.
pub(super) fn bind_listener(addr: SocketAddr, congestion: Option<&str>) -> io::Result<StdListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if let Some(name) = congestion {
        set_congestion(&socket, name)?;
    }
    socket
        .bind(&addr.into())
        .map_err(|e| listen_error(addr, e))?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// With `SO_REUSEPORT` a second server of the same user may bind a port this one listens on,
/// and the kernel then gives it part of the connections without a word. A plain socket
/// (`SO_REUSEADDR` only, so connections in TIME_WAIT do not count) binds only where nothing
/// listens: bound and dropped first, it makes "in use" an error again.
#[cfg(unix)]
pub(super) fn check_port_free(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    if addr.port() == 0 {
        return Ok(()); // the system picks a free one
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|e| listen_error(addr, e))
}

/// A bind error that says which address, and what to check for the common causes.
pub(super) fn listen_error(addr: SocketAddr, e: io::Error) -> io::Error {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => " (is another server using the port?)",
        io::ErrorKind::AddrNotAvailable => " (is the address one of this machine's?)",
        io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
        _ => "",
    };
    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}{hint}"))
}

/// Sets `TCP_CONGESTION`, saying what to do when the kernel refuses it.
#[cfg(any(target_os = "linux", target_os = "freebsd"))]
pub(super) fn set_congestion(socket: &socket2::Socket, name: &str) -> io::Result<()> {
    socket.set_tcp_congestion(name.as_bytes()).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => {
                "not an algorithm this kernel has: see /proc/sys/net/ipv4/tcp_available_congestion_control"
            }
            io::ErrorKind::PermissionDenied => {
                "not allowed without CAP_NET_ADMIN: see /proc/sys/net/ipv4/tcp_allowed_congestion_control (reno always is)"
            }
            _ => "the kernel refused it",
        };
        io::Error::new(
            e.kind(),
            format!("cannot use TCP congestion control {name:?}: {hint} ({e})"),
        )
    })
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
pub(super) fn set_congestion(_: &socket2::Socket, name: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("cannot use TCP congestion control {name:?}: only Linux and FreeBSD let a program choose it"),
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::server::{Context, Handler, Server};
    use std::net::TcpStream;

    /// The algorithm the kernel reports for an accepted connection of `listener`.
    fn accepted_algorithm(listener: &StdListener) -> String {
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let mut name = socket2::SockRef::from(&accepted).tcp_congestion().unwrap();
        name.retain(|&b| b != 0); // the kernel pads it to 16 bytes
        String::from_utf8(name).unwrap()
    }

    #[test]
    fn connections_inherit_the_chosen_congestion_control() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(
            accepted_algorithm(&bind_listener(any, None).unwrap()),
            system
        );
        // reno is always allowed; cubic (or bbr) only with CAP_NET_ADMIN or when the system
        // allows it, and at least one of them differs from the system's default.
        for name in ["reno", "cubic", "bbr"] {
            match bind_listener(any, Some(name)) {
                Ok(listener) => assert_eq!(accepted_algorithm(&listener), name),
                Err(e) if name != "reno" => {
                    assert!(e.to_string().contains(name), "{e}");
                }
                Err(e) => panic!("reno refused: {e}"),
            }
        }
    }

    #[test]
    fn an_unknown_congestion_control_fails_bind_saying_where_to_look() {
        #[derive(Clone)]
        struct Nothing;
        impl Handler for Nothing {
            fn message(&mut self, _: &mut Context<'_>, _: crate::Message<'_>) {}
        }
        let err = Server::builder()
            .listen("127.0.0.1:0")
            .tcp_congestion("no-such-algorithm")
            .bind(Nothing)
            .err()
            .expect("bind must fail");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let text = err.to_string();
        assert!(text.contains("\"no-such-algorithm\""), "{text}");
        assert!(text.contains("tcp_available_congestion_control"), "{text}");
    }
}

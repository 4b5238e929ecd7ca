//! [`Builder`] (the options of a server; binds its listeners) and the bound [`Server`].

use super::event_loop::{self, DeflateOption, EventLoop, Shared, TlsOption};
use super::socket::{another_listener, bind_listener, check_port_free};
use super::{signals, Context, Handle, Handler, Limits, Timeouts};
use crate::proto::{Config, Message};
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Arc;

/// Collects the options of a [`Server`]; [`bind`](Self::bind) opens the listeners.
#[derive(Clone, Debug)]
pub struct Builder {
    addrs: Vec<String>,
    tls_addrs: Vec<String>,
    tls: TlsOption,
    config: Config,
    threads: usize,
    timeouts: Timeouts,
    limits: Limits,
    signals: bool,
    deflate: DeflateOption,
    congestion: Option<String>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the defaults: no address yet, [`Config::default`], one thread per
    /// core, [`Timeouts::default`], [`Limits::default`], signals handled, no compression,
    /// the system's TCP congestion control.
    pub fn new() -> Builder {
        Builder {
            addrs: Vec::new(),
            tls_addrs: Vec::new(),
            tls: TlsOption::default(),
            config: Config::default(),
            threads: 0,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            signals: true,
            deflate: DeflateOption::default(),
            congestion: None,
        }
    }

    /// Adds an address to listen on (`"127.0.0.1:9001"`, `"[::]:80"`; port 0 picks one:
    /// see [`Server::local_addrs`]). Call it once per address.
    pub fn listen(mut self, addr: impl Into<String>) -> Builder {
        self.addrs.push(addr.into());
        self
    }

    /// Adds an address to listen on with TLS (`wss://`, and `https://` for
    /// [`Handler::http`]); it needs [`tls`](Self::tls). Plain and TLS addresses can be
    /// mixed: handlers and topics see no difference (one topic reaches subscribers of both).
    #[cfg(feature = "tls")]
    pub fn listen_tls(mut self, addr: impl Into<String>) -> Builder {
        self.tls_addrs.push(addr.into());
        self
    }

    /// The certificate and TLS settings of the [`listen_tls`](Self::listen_tls) addresses:
    /// usually [`TlsConfig::from_pem_files`](crate::tls::TlsConfig::from_pem_files). The
    /// TLS handshake runs in the loop ([`Session`](crate::tls::Session): rustls' handshake
    /// over the same non-blocking socket, then the session's own records), within
    /// [`Timeouts::handshake`] together with the HTTP upgrade.
    /// With signals on ([`shutdown_on_signals`](Self::shutdown_on_signals)), SIGHUP reloads
    /// the certificate and key files ([`TlsConfig::reload`](crate::tls::TlsConfig::reload)):
    /// open connections are kept; a bad new pair is refused with a line on stderr and the
    /// old one stays.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::tls::TlsConfig) -> Builder {
        self.tls = Some(config);
        self
    }

    /// The core's limits and options for every connection.
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self
    }

    /// Event loop threads. Default: the number of cores. 0 means the default.
    pub fn threads(mut self, threads: usize) -> Builder {
        self.threads = threads;
        self
    }

    /// Time limits and heartbeat.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Builder {
        self.timeouts = timeouts;
        self
    }

    /// Resource limits.
    pub fn limits(mut self, limits: Limits) -> Builder {
        self.limits = limits;
        self
    }

    /// Offers permessage-deflate (RFC 7692) to clients that ask for it, negotiated with
    /// `config` ([`DeflateConfig::server_negotiate`](crate::proto::deflate::DeflateConfig::server_negotiate)):
    /// the first acceptable offer of the request is answered in the `101` (appended to the
    /// extensions the handler's [`Accept`](crate::proto::Accept) names, if any) and the connection compresses and
    /// decompresses from then on. Clients that do not offer it, or offer only parameters
    /// this server declines, get a connection without it. (With this set, a handler must not
    /// answer `permessage-deflate` itself.)
    ///
    /// **Off by default**, for memory: without it an idle connection costs about 0.2 KiB of
    /// the core's state; with it, a connection busy with messages holds a compressor and a
    /// decompressor (about 425 KiB at 15 window bits). What an *idle* connection keeps
    /// depends on context takeover: with [`DeflateConfig::default`](crate::proto::deflate::DeflateConfig::default)
    /// (`server_no_context_takeover`) the compressor is freed once the connection's output
    /// drains and about 47 KiB (the client-to-server inflater's window) remain; setting
    /// `client_no_context_takeover` too brings it under 1 KiB at some cost in ratio; with
    /// context takeover both ways it is about 418 KiB. 10 000 idle connections: 2 MiB without
    /// deflate, 470 MiB with the default config, 4 GiB with context takeover both ways.
    ///
    /// ```no_run
    /// use rfc6455::proto::deflate::DeflateConfig;
    /// use rfc6455::server::Builder;
    /// # #[derive(Clone)] struct Echo;
    /// # impl rfc6455::server::Handler for Echo {
    /// #     fn message(&mut self, _: &mut rfc6455::server::Context<'_>, _: rfc6455::Message<'_>) {}
    /// # }
    /// let mut deflate = DeflateConfig::default();
    /// deflate.client_no_context_takeover = true; // idle connections < 1 KiB
    /// let server = Builder::new().listen("127.0.0.1:9001").deflate(deflate).bind(Echo)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, config: crate::proto::deflate::DeflateConfig) -> Builder {
        self.deflate = Some(config);
        self
    }

    /// Whether [`Server::run`] shuts down gracefully on SIGINT and SIGTERM (a second signal
    /// exits at once with status 130) and handles SIGHUP (reloads the TLS certificate, or
    /// says on stderr that there is none, instead of dying of it). Default on; turn it off
    /// when embedding the server.
    pub fn shutdown_on_signals(mut self, on: bool) -> Builder {
        self.signals = on;
        self
    }

    /// The TCP congestion control algorithm for every accepted connection (`"reno"`,
    /// `"cubic"`, `"bbr"`; Linux and FreeBSD), set once on each listening socket, which its
    /// connections inherit. Default: the system's (`net.ipv4.tcp_congestion_control`).
    ///
    /// Worth setting when clients are on the same host, such as a reverse proxy in front of
    /// the server: BBR, a common system default, paces its sending to a modelled bottleneck
    /// bandwidth, and over loopback that model is noise (round trips of microseconds) and the
    /// pacing only adds timer waits: 1 MiB echoes over loopback go markedly faster with
    /// `"reno"` than with the system's BBR (the measurements are in benches/LOAD.md in the
    /// repository). Over real networks keep the system's choice.
    ///
    /// [`bind`](Self::bind) fails if the kernel refuses the name: unknown algorithms are not
    /// in `/proc/sys/net/ipv4/tcp_available_congestion_control`, and without
    /// `CAP_NET_ADMIN` only those in `tcp_allowed_congestion_control` may be chosen (`reno`
    /// always is).
    ///
    /// ```no_run
    /// use rfc6455::server::Builder;
    /// # #[derive(Clone)] struct Echo;
    /// # impl rfc6455::server::Handler for Echo {
    /// #     fn message(&mut self, _: &mut rfc6455::server::Context<'_>, _: rfc6455::Message<'_>) {}
    /// # }
    /// // Behind a proxy on the same host:
    /// let server = Builder::new().listen("127.0.0.1:9001").tcp_congestion("reno").bind(Echo)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn tcp_congestion(mut self, algorithm: impl Into<String>) -> Builder {
        self.congestion = Some(algorithm.into());
        self
    }

    /// Binds every listen address on every loop thread; each thread's handler is a clone of
    /// `handler`. Fails if there is no address, an address does not resolve, or a bind
    /// fails (in use, even by another server that also sets `SO_REUSEPORT`; no permission;
    /// not an address of this machine).
    pub fn bind<H: Handler + Clone>(self, handler: H) -> io::Result<Server<H>> {
        if self.addrs.is_empty() && self.tls_addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listen address: call Builder::listen(\"127.0.0.1:9001\") first",
            ));
        }
        #[cfg(feature = "tls")]
        if !self.tls_addrs.is_empty() && self.tls.is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "TLS listen address without a certificate: call Builder::tls(TlsConfig::\
                 from_pem_files(cert, key)?) too",
            ));
        }
        let threads = if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        };
        let mut resolved = Vec::new();
        let secure = self.addrs.iter().map(|a| (a, false));
        for (addr, secure) in secure.chain(self.tls_addrs.iter().map(|a| (a, true))) {
            let found = addr.to_socket_addrs().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot resolve listen address {addr}: {e}"),
                )
            })?;
            resolved.extend(found.map(|a| (a, secure)));
        }
        // listeners[thread][address]
        let mut listeners: Vec<Vec<(StdListener, bool)>> =
            (0..threads).map(|_| Vec::new()).collect();
        let mut local_addrs = Vec::new();
        let mut tls_addrs = Vec::new();
        for (addr, secure) in resolved {
            let congestion = self.congestion.as_deref();
            #[cfg(unix)]
            check_port_free(addr)?;
            let first = bind_listener(addr, congestion)?;
            let actual = first.local_addr()?;
            local_addrs.push(actual);
            if secure {
                tls_addrs.push(actual);
            }
            for per_thread in listeners.iter_mut().skip(1) {
                per_thread.push((another_listener(&first, actual, congestion)?, secure));
            }
            listeners[0].push((first, secure));
        }
        let mut loops = Vec::with_capacity(threads);
        let mut mailboxes = Vec::with_capacity(threads);
        let mut receivers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), event_loop::WAKER)?;
            let (tx, rx) = mpsc::sync_channel(self.limits.mailbox.max(1));
            mailboxes.push(event_loop::Mailbox { tx, waker });
            receivers.push((poll, rx));
        }
        let shared = Arc::new(Shared::new(mailboxes, threads));
        let handle = Handle { shared };
        for (index, ((poll, rx), listeners)) in receivers.into_iter().zip(listeners).enumerate() {
            loops.push(EventLoop::new(
                index as u32,
                poll,
                rx,
                listeners,
                self.tls.clone(),
                handler.clone(),
                handle.clone(),
                self.config.clone(),
                self.timeouts.clone(),
                self.limits.clone(),
                self.deflate.clone(),
            )?);
        }
        Ok(Server {
            loops,
            handle,
            local_addrs,
            tls_addrs,
            tls: self.tls,
            signals: self.signals,
        })
    }
}

/// A bound server, not yet running. Get its addresses and a [`Handle`], then
/// [`run`](Self::run) it (on this thread, or one you spawn).
pub struct Server<H: Handler> {
    loops: Vec<EventLoop<H>>,
    handle: Handle,
    local_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    tls: TlsOption,
    signals: bool,
}

impl Server<NoHandler> {
    /// The same as [`Builder::new`], which is the constructor to use; kept so that code
    /// written against it still compiles.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

/// Stands in for the handler type in [`Server::builder`]; never constructed.
#[doc(hidden)]
#[derive(Clone)]
pub enum NoHandler {}

impl Handler for NoHandler {
    fn message(&mut self, _: &mut Context<'_>, _: Message<'_>) {
        match *self {}
    }
}

impl<H: Handler> Server<H> {
    /// The addresses bound, with the ports the system picked for port 0: the plain ones
    /// ([`Builder::listen`]) in order, then the TLS ones.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The TLS addresses among [`local_addrs`](Self::local_addrs).
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The number of event loop threads.
    pub fn threads(&self) -> usize {
        self.loops.len()
    }

    /// A handle to send to connections or stop the server.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs every loop on its own thread and blocks until they have all stopped (after
    /// [`Handle::shutdown`] or a signal). Fails if a thread cannot be started or a loop
    /// hits an error polling.
    pub fn run(self) -> io::Result<()> {
        let signals = if self.signals {
            #[cfg(feature = "tls")]
            let tls = self.tls.clone();
            #[cfg(not(feature = "tls"))]
            let tls = ();
            Some(signals::watch(self.handle.clone(), tls)?)
        } else {
            None
        };
        let mut threads = Vec::with_capacity(self.loops.len());
        for (i, event_loop) in self.loops.into_iter().enumerate() {
            let spawned = std::thread::Builder::new()
                .name(format!("rfc6455-loop-{i}"))
                .spawn(move || event_loop.run());
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    self.handle.shutdown();
                    return Err(e);
                }
            }
        }
        let mut result = Ok(());
        for t in threads {
            let outcome = t.join().unwrap_or_else(|_| {
                Err(io::Error::other(
                    "an event loop thread panicked (a handler bug?)",
                ))
            });
            if let Err(e) = outcome {
                self.handle.shutdown();
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        if let Some(signals) = signals {
            signals.close();
        }
        result
    }
}

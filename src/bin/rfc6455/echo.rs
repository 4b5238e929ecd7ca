//! `rfc6455 echo`: echoes every text and binary message; the Autobahn testee.
//!
//! Options map onto the server's [`Builder`] in [`Args::builder`]; a new flag is a field
//! here plus a line there.

use rfc6455::server::{CloseReason, Context, Handler, Heartbeat, Limits, Server, Timeouts};
use rfc6455::{Config, Message, Part};
use std::process::ExitCode;
use std::time::Duration;

/// Options of `rfc6455 echo`.
#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on: HOST:PORT (127.0.0.1:9001, 0.0.0.0:9001, [::1]:9001,
    /// localhost:9001) or a port alone (9001 or :9001 mean 127.0.0.1:9001); port 0 picks a
    /// free one. Repeat for several. Default 127.0.0.1:9001, unless only --listen-tls is
    /// given. With --tls-cert and no --listen-tls, these speak TLS (wss://).
    #[arg(long, value_parser = listen_address)]
    listen: Vec<String>,
    /// Address to listen on with TLS (wss://), beside the plain --listen ones; repeat for
    /// several. Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    listen_tls: Vec<String>,
    /// Certificate chain for TLS (PEM, leaf first). SIGHUP reloads it and the key; open
    /// connections are kept, and a bad new pair is refused (the old one stays).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key for TLS (PEM: RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Event loop threads (0 or not given: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Largest message accepted, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_message_size: usize,
    /// Most connections open at once (1 or more); the next one is refused with 503.
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one)]
    max_connections: usize,
    /// Ping a peer after this many seconds of silence (0: never).
    #[arg(long, default_value_t = 30)]
    heartbeat: u64,
    /// Offer permessage-deflate (RFC 7692). Every parameter a client offers is accepted (window
    /// bits 8 to 15, either no-context-takeover); this server resets its compressor after each
    /// message, so an idle connection keeps about 47 KiB rather than 418 KiB.
    #[arg(long)]
    deflate: bool,
    /// TCP congestion control for its connections (Linux: reno, cubic, bbr…; default: the
    /// system's). `reno` pays when clients are on this host: BBR's pacing only adds waits on
    /// loopback.
    #[arg(long, value_name = "ALGORITHM")]
    tcp_congestion: Option<String>,
    /// Echo binary messages of at least this many bytes as they arrive, part by part, instead
    /// of collecting each before sending it back (0: never). The echo then starts while the
    /// rest of the message is still on its way.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 10)]
    stream_from: usize,
    /// Publish every message to every open connection, the sender included, instead of
    /// echoing it: a broadcast server (and the testee of `rfc6455 load --broadcast`). Each
    /// message is encoded once and shared by all connections, on every thread.
    #[arg(long)]
    broadcast: bool,
    /// Log a line to stderr per connection opened and closed: `conn ID PEER open PATH`, then
    /// `conn ID PEER closed: …`. ID is LOOP.SLOT.SEQ: the event loop thread's number, the
    /// connection's slot in that loop, and how many connections the loop accepted before it.
    #[arg(short, long)]
    verbose: bool,
}

/// `--listen`: HOST:PORT as given (checked by resolving it), a bare `PORT` or `:PORT` as
/// 127.0.0.1:PORT.
fn listen_address(value: &str) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    let port = value.strip_prefix(':').unwrap_or(value);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        return match port.parse::<u16>() {
            Ok(port) => Ok(format!("127.0.0.1:{port}")),
            Err(_) => Err(format!("port {port} is not from 0 to 65535")),
        };
    }
    match value.to_socket_addrs().map(|addrs| addrs.len()) {
        Ok(1..) => Ok(value.to_owned()),
        _ => Err("give HOST:PORT (127.0.0.1:9001, 0.0.0.0:9001, [::1]:9001, \
                  localhost:9001) or a port alone (9001 means 127.0.0.1:9001)"
            .to_owned()),
    }
}

/// A count that must be 1 or more.
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("give 1 or more (0 would refuse every connection)".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl Args {
    /// The plain addresses and the TLS ones.
    fn addresses(&self) -> (Vec<String>, Vec<String>) {
        let mut plain = self.listen.clone();
        let mut tls = self.listen_tls.clone();
        if plain.is_empty() && tls.is_empty() {
            plain.push("127.0.0.1:9001".into());
        }
        if self.tls_cert.is_some() && tls.is_empty() {
            tls = std::mem::take(&mut plain);
        }
        (plain, tls)
    }

    fn builder(&self) -> Result<rfc6455::server::Builder, String> {
        let mut config = Config::default();
        config.max_message_size = self.max_message_size;
        config.max_frame_size = self.max_message_size;
        // A broadcast publishes whole messages: no parts.
        config.stream_binary_from =
            (self.stream_from > 0 && !self.broadcast).then_some(self.stream_from);
        let mut limits = Limits::default();
        limits.max_connections = self.max_connections;
        // Room to echo the largest message on top of the backpressure mark.
        limits.max_write_queue = self
            .max_message_size
            .saturating_add(limits.write_high_water + (1 << 20));
        let mut timeouts = Timeouts::default();
        timeouts.heartbeat = (self.heartbeat > 0)
            .then(|| Heartbeat::new(Duration::from_secs(self.heartbeat), Duration::from_secs(10)));
        let mut builder = Server::builder()
            .config(config)
            .limits(limits)
            .timeouts(timeouts)
            .threads(self.threads.unwrap_or(0));
        #[cfg(feature = "deflate")]
        if self.deflate {
            // DeflateConfig::default: answers every valid offer, server_no_context_takeover.
            builder = builder.deflate(rfc6455::proto::deflate::DeflateConfig::default());
        }
        if let Some(name) = &self.tcp_congestion {
            builder = builder.tcp_congestion(name.clone());
        }
        let (plain, tls) = self.addresses();
        for addr in plain {
            builder = builder.listen(addr);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            #[cfg(feature = "tls")]
            {
                let config = rfc6455::tls::TlsConfig::from_pem_files(cert, key)
                    .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
                builder = builder.tls(config);
                for addr in tls {
                    builder = builder.listen_tls(addr);
                }
            }
            #[cfg(not(feature = "tls"))]
            {
                let _ = (cert, key, tls);
                return Err("--tls-cert: this build has no tls feature; rebuild with it".into());
            }
        }
        Ok(builder)
    }
}

/// Echoes messages back, or publishes them to everyone; logs connections when verbose.
#[derive(Clone)]
struct Echo {
    verbose: bool,
    broadcast: bool,
}

/// The topic every connection of `--broadcast` subscribes to.
const EVERYONE: &str = "everyone";

impl Handler for Echo {
    fn open(
        &mut self,
        ctx: &mut Context<'_>,
        request: &rfc6455::proto::Request,
    ) -> Result<rfc6455::proto::Accept, rfc6455::proto::Rejection> {
        if self.verbose {
            eprintln!(
                "conn {} {} open {}",
                ctx.id(),
                ctx.peer_addr(),
                request.target()
            );
        }
        if self.broadcast {
            // One topic name, well under the limits: cannot fail.
            let _ = ctx.subscribe(EVERYONE);
        }
        Ok(request.accept())
    }

    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        if self.broadcast {
            // Fails only when another loop's mailbox is full: its connections miss this one.
            let _ = ctx.publish(EVERYONE, message);
            return;
        }
        // Fails only once the connection is closing: then there is no one to echo to.
        let _ = ctx.send(message);
    }

    fn part(&mut self, ctx: &mut Context<'_>, part: Part<'_>) {
        let _ = ctx.send_part(&part.data, part.last);
    }

    fn close(&mut self, ctx: &mut Context<'_>, reason: CloseReason<'_>) {
        if self.verbose {
            eprintln!("conn {} {} {reason}", ctx.id(), ctx.peer_addr());
        }
    }
}

/// Runs the command.
pub fn run(args: Args) -> ExitCode {
    if args.deflate && cfg!(not(feature = "deflate")) {
        eprintln!("rfc6455 echo: --deflate: this build has no deflate feature; rebuild with it");
        return ExitCode::from(2);
    }
    let builder = match args.builder() {
        Ok(builder) => builder,
        Err(e) => {
            eprintln!("rfc6455 echo: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match builder.bind(Echo {
        verbose: args.verbose,
        broadcast: args.broadcast,
    }) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("rfc6455 echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addrs: Vec<String> = server
        .local_addrs()
        .iter()
        .map(|a| {
            let scheme = if server.tls_addrs().contains(a) {
                "wss"
            } else {
                "ws"
            };
            format!("{scheme}://{a}")
        })
        .collect();
    println!(
        "rfc6455 echo: listening on {} ({} threads){}",
        addrs.join(", "),
        server.threads(),
        if args.broadcast { ", broadcasting" } else { "" }
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rfc6455 echo: {e}");
            ExitCode::FAILURE
        }
    }
}

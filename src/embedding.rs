//! # How to embed the core
//!
//! The core ([`proto`](crate::proto), [`Connection`]) never touches a socket, a clock or an
//! RNG: a driver moves bytes and time, and every protocol rule stays in the core. This guide
//! is the calling order a driver follows, what it does with each event, the timers and
//! backpressure; the tokio adapter (`rfc6455::tokio`, `src/tokio/socket.rs`) is the worked
//! example, and a driver on plain std threads closes it, to show nothing here is tied to a
//! runtime. The mio server (`src/server/`) and the blocking client (`src/client/`) follow
//! the same order.
//!
//! ## 1. The handshake
//!
//! Server: append what the socket reads to a buffer and call
//! [`Request::parse`](crate::proto::Request::parse) until it says
//! [`Status::Complete(request, head_len)`](crate::proto::Status). An error is answered with
//! its [`response`](crate::proto::HandshakeError::response) (400, 405, 426, 431), then
//! close. Show the request to the application, which answers with
//! [`request.accept()`](crate::proto::Request::accept) (a subprotocol, headers) or a
//! [`Rejection`](crate::proto::Rejection). Hand the accept to
//! [`ServerSession::accept`](crate::proto::ServerSession::accept), which negotiates
//! permessage-deflate and returns the configured [`Connection`] and the `101` to write.
//! **Bytes after `head_len` are already frames**: they are the connection's first input.
//!
//! Client: [`ClientSession::offer`](crate::proto::ClientSession::offer) the options,
//! [`ClientHandshake::new`](crate::proto::ClientHandshake::new), write its
//! [`request`](crate::proto::ClientHandshake::request), feed the reply to
//! [`parse_response`](crate::proto::ClientHandshake::parse_response) until complete, then
//! [`ClientSession::connection`](crate::proto::ClientSession::connection) (an error there
//! means: close TCP, send nothing). Bytes after the head are frames, as above.
//!
//! In the tokio adapter: `accept_with` and `client` in `src/tokio/mod.rs`, 40 lines each.
//!
//! ## 2. The loop
//!
//! ```text
//! start:      conn.handle_timeout(now)                      (if the timers are wanted)
//! readable:   n = read(buf)
//!             n == 0 → conn.handle_eof()                    (Ok: clean; Err: 1006)
//!             while let Some(event) = conn.read(&mut input)? { act on it }
//! after it:   write conn.poll_transmit(), conn.consume_transmit(written), until empty
//!             conn.should_close_transport() → close TCP, done
//! deadline:   sleep until conn.poll_timeout(); then conn.handle_timeout(now), write, check
//! ```
//!
//! - **Input** goes in with [`Connection::read`] (zero-copy: it unmasks in place in your
//!   buffer and hands out a whole message as a slice of it) or [`Connection::handle_bytes`]
//!   and [`Connection::poll_event`] (owned events). Either takes any split of the stream, even
//!   one byte at a time; an unfinished frame is kept inside the connection, so your buffer is
//!   free again once `read` returns `Ok(None)`.
//! - **Events are acted on as they are handed out**, so answers go out in arrival order: the
//!   reply to a close that came after a message goes out after your answer to that message.
//!   Hand events out one at a time (the tokio adapter parses one event per `recv`) if the
//!   application answers between them.
//! - **Output**: write everything one read produced in one write. That is the one trick
//!   behind the mio server's and the tokio adapter's rate on many small messages: send the
//!   answers to all the messages of a read, then write once.
//!
//! ## 3. Each event
//!
//! | event | the core has already | the driver does |
//! |---|---|---|
//! | [`Event::Message`] | checked UTF-8, inflated, checked the limits | hands it to the application |
//! | [`Event::Ping`] | queued the pong ([`Config::auto_pong`]) | nothing (writes it with the rest) |
//! | [`Event::Pong`] | noted it (the heartbeat) | nothing |
//! | [`Event::Close`] | queued the reply; the state is [`State::Closed`] | writes it; a server closes TCP ([`Connection::should_close_transport`]), a client waits for the server to, a bounded time |
//! | [`Event::Part`] | (only with [`Config::stream_binary_from`]) | passes the piece on |
//! | `Err(`[`Error::Protocol`]`)` | queued the close frame with the error's code (1002, 1007, 1009) | writes it, closes TCP; the error is sticky |
//!
//! ## 4. Timers
//!
//! The core keeps the deadlines ([`Config::ping_interval`], [`Config::ping_timeout`],
//! [`Config::idle_timeout`], [`Config::close_timeout`]); the driver only sleeps. Call
//! [`Connection::handle_timeout`] once at the start, then whenever
//! [`Connection::poll_timeout`] has passed (a time already past means "now"); after it,
//! write (a heartbeat ping or a close may be queued) and check
//! [`Connection::should_close_transport`] and [`Connection::timed_out`]. The tokio adapter's
//! whole timer code is `src/tokio/timers.rs`: a `tokio::time::Sleep` reset to
//! `poll_timeout()`, polled beside the read. The mio server runs the same rules, with its
//! deadlines in one heap per loop instead of one sleep per connection.
//!
//! ## 5. Backpressure and memory
//!
//! [`Connection::transmit_len`] is what the peer has not taken yet. Stop reading (and stop
//! accepting sends) above a high-water mark, as the tokio adapter's `Sink` does; the peer's
//! own sends then wait in its TCP window. For many connections: lend one read buffer per
//! thread (nothing of it is kept once `read` returns `Ok(None)`), lend one transmit buffer
//! with [`Connection::swap_transmit_buffer`], and call [`Connection::shrink_buffers`] when a
//! connection goes idle; the tokio adapter does all three, so an idle connection holds no
//! buffer.
//!
//! ## A driver on std threads
//!
//! One thread per connection, a blocking socket, the read timeout as the timer: a whole
//! echo server with heartbeat, in the order above.
//!
//! ```
//! use rfc6455::proto::{HandshakeLimits, Request, ServerSession, Status};
//! use rfc6455::{Config, Event};
//! use std::io::{ErrorKind, Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::{Duration, Instant};
//!
//! fn serve(mut tcp: TcpStream) -> std::io::Result<()> {
//!     // 1. The handshake.
//!     let mut buf = vec![0u8; 64 * 1024];
//!     let mut len = 0;
//!     let (request, head_len) = loop {
//!         let n = tcp.read(&mut buf[len..])?;
//!         if n == 0 {
//!             return Ok(());
//!         }
//!         len += n;
//!         match Request::parse(&buf[..len], &HandshakeLimits::default()) {
//!             Ok(Status::Complete(request, head_len)) => break (request, head_len),
//!             Ok(Status::Partial) => {}
//!             Err(e) => return tcp.write_all(&e.response()),
//!         }
//!     };
//!     let mut config = Config::default();
//!     config.ping_interval = Some(Duration::from_secs(30));
//!     let (mut conn, response) = ServerSession::new().accept(&request, request.accept(), config);
//!     tcp.write_all(&response)?;
//!     buf.copy_within(head_len..len, 0); // already frames
//!     let mut filled = len - head_len;
//!     conn.handle_timeout(Instant::now());
//!     loop {
//!         // 2. Every event out of what was read, each answered as it comes.
//!         let mut input = &mut buf[..filled];
//!         let received = loop {
//!             match conn.read(&mut input) {
//!                 Ok(Some(Event::Message(m))) => {
//!                     let _ = conn.send(m); // Err(Closed) once closing: skip it
//!                 }
//!                 Ok(Some(_)) => {} // pongs and close replies are queued by the core
//!                 Ok(None) => break Ok(()),
//!                 Err(e) => break Err(e),
//!             }
//!         };
//!         // All the answers to one read in one write.
//!         while !conn.poll_transmit().is_empty() {
//!             let n = tcp.write(conn.poll_transmit())?;
//!             conn.consume_transmit(n);
//!         }
//!         if received.is_err() || conn.should_close_transport() {
//!             return Ok(());
//!         }
//!         // 4. Read until the next deadline, then pass the time in.
//!         let wait = conn.poll_timeout().map(|t| {
//!             t.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))
//!         });
//!         tcp.set_read_timeout(wait)?;
//!         filled = match tcp.read(&mut buf) {
//!             Ok(0) => {
//!                 let _ = conn.handle_eof(); // Err: lost without a close (1006)
//!                 return Ok(());
//!             }
//!             Ok(n) => n,
//!             Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => 0,
//!             Err(e) => return Err(e),
//!         };
//!         conn.handle_timeout(Instant::now());
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     # if true { return Ok(()); } // the doctest only compiles the loop below
//!     for tcp in listener.incoming() {
//!         let tcp = tcp?;
//!         std::thread::spawn(move || serve(tcp));
//!     }
//!     Ok(())
//! }
//! ```
//!
//! [`Connection`]: crate::Connection
//! [`Connection::read`]: crate::Connection::read
//! [`Connection::handle_bytes`]: crate::Connection::handle_bytes
//! [`Connection::poll_event`]: crate::Connection::poll_event
//! [`Connection::handle_timeout`]: crate::Connection::handle_timeout
//! [`Connection::poll_timeout`]: crate::Connection::poll_timeout
//! [`Connection::timed_out`]: crate::Connection::timed_out
//! [`Connection::should_close_transport`]: crate::Connection::should_close_transport
//! [`Connection::transmit_len`]: crate::Connection::transmit_len
//! [`Connection::swap_transmit_buffer`]: crate::Connection::swap_transmit_buffer
//! [`Connection::shrink_buffers`]: crate::Connection::shrink_buffers
//! [`Event::Message`]: crate::Event::Message
//! [`Event::Ping`]: crate::Event::Ping
//! [`Event::Pong`]: crate::Event::Pong
//! [`Event::Close`]: crate::Event::Close
//! [`Event::Part`]: crate::Event::Part
//! [`Error::Protocol`]: crate::Error::Protocol
//! [`State::Closed`]: crate::State::Closed
//! [`Config::auto_pong`]: crate::Config::auto_pong
//! [`Config::stream_binary_from`]: crate::Config::stream_binary_from
//! [`Config::ping_interval`]: crate::Config::ping_interval
//! [`Config::ping_timeout`]: crate::Config::ping_timeout
//! [`Config::idle_timeout`]: crate::Config::idle_timeout
//! [`Config::close_timeout`]: crate::Config::close_timeout

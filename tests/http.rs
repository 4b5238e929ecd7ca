//! Plain HTTP requests on the WebSocket port (`Handler::http`), over real sockets.
#![cfg(feature = "server")]
#![allow(clippy::field_reassign_with_default)]

mod common;

use common::{raw, read_to_end, Client};
use rfc6455::proto::{HttpRequest, HttpResponse};
use rfc6455::server::{Context, Handler, HttpContext, Limits, Server};
use rfc6455::Message;
use std::io::Write;
use std::net::SocketAddr;

/// `GET /healthz` → 200 ok; `POST /echo` → the body back; anything else: not handled.
#[derive(Clone)]
struct Site;

impl Handler for Site {
    fn http(&mut self, _: &mut HttpContext<'_>, request: &HttpRequest) -> Option<HttpResponse> {
        match (request.method(), request.path()) {
            ("GET", "/healthz") => Some(HttpResponse::new(200).text("ok\n")),
            ("POST", "/echo") => {
                Some(HttpResponse::new(200).body("application/octet-stream", request.body()))
            }
            _ => None,
        }
    }

    fn message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let _ = ctx.send(message);
    }
}

fn start(limits: Limits) -> (SocketAddr, rfc6455::server::Handle) {
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .threads(1)
        .limits(limits)
        .shutdown_on_signals(false)
        .bind(Site)
        .expect("bind");
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    std::thread::spawn(move || server.run());
    (addr, handle)
}

fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = raw(addr);
    stream.write_all(request).unwrap();
    read_to_end(stream)
}

#[test]
fn plain_requests_are_answered_and_upgrades_still_work() {
    let mut limits = Limits::default();
    limits.max_http_body = 100;
    let (addr, handle) = start(limits);
    let ok = exchange(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("\r\nConnection: close\r\n") && ok.ends_with("\r\n\r\nok\n"),
        "{ok}"
    );

    // A body that arrives in pieces, after the head, is read whole.
    let mut stream = raw(addr);
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    stream.write_all(b"456789").unwrap();
    let echoed = read_to_end(stream);
    assert!(
        echoed.starts_with("HTTP/1.1 200 OK\r\n") && echoed.ends_with("\r\n\r\n0123456789"),
        "{echoed}"
    );

    // Over the body limit: 413 at once, before the body is sent.
    let big = exchange(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",
    );
    assert!(big.starts_with("HTTP/1.1 413 "), "{big}");
    let chunked = exchange(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 411 "), "{chunked}");

    // Not handled: answered as before, as a failed handshake.
    let other = exchange(addr, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        other.starts_with("HTTP/1.1 400 ") && other.contains("Upgrade"),
        "{other}"
    );
    let post = exchange(
        addr,
        b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(
        post.starts_with("HTTP/1.1 405 ") && post.contains("\r\nAllow: GET\r\n"),
        "{post}"
    );

    // The same port still speaks WebSocket.
    let mut client = Client::connect(addr);
    client.send(Message::text("still here"));
    assert_eq!(client.next_message(), Message::text("still here"));
    handle.shutdown();
}

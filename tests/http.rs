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

/// Defers `/later/MS` (answered by a worker thread MS ms later) and `/never` (answered by
/// no one: 504 after 300 ms, and the worker's late reply to it is dropped).
#[derive(Clone)]
struct Later(std::sync::mpsc::Sender<(rfc6455::server::ConnId, u64)>);

impl Handler for Later {
    fn http(&mut self, ctx: &mut HttpContext<'_>, request: &HttpRequest) -> Option<HttpResponse> {
        use std::time::Duration;
        if let Some(ms) = request.path().strip_prefix("/later/") {
            let id = ctx.defer(Duration::from_secs(5));
            let _ = self.0.send((id, ms.parse().unwrap_or(0)));
        } else if request.path() == "/never" {
            let id = ctx.defer(Duration::from_millis(300));
            // Replied to after its deadline.
            let _ = self.0.send((id, 600));
        }
        None
    }

    fn message(&mut self, _: &mut Context<'_>, _: Message<'_>) {}
}

#[test]
fn a_deferred_request_is_answered_from_another_thread_or_504_after_its_timeout() {
    use std::time::{Duration, Instant};
    let (tx, rx) = std::sync::mpsc::channel();
    let server = Server::builder()
        .listen("127.0.0.1:0")
        .threads(1)
        .shutdown_on_signals(false)
        .bind(Later(tx))
        .expect("bind");
    let addr = server.local_addrs()[0];
    let handle = server.handle();
    std::thread::spawn(move || server.run());
    // The worker: answers each deferred request after its delay, from its own thread.
    let worker = handle.clone();
    std::thread::spawn(move || {
        for (id, ms) in rx {
            let worker = worker.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                let body = format!("answered after {ms} ms\n");
                let _ = worker.respond_http(id, HttpResponse::new(200).text(body));
            });
        }
    });

    let started = Instant::now();
    let late = exchange(addr, b"GET /later/200 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        late.starts_with("HTTP/1.1 200 OK\r\n")
            && late.ends_with("\r\n\r\nanswered after 200 ms\n"),
        "{late}"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));

    // Several waiting at once, answered in the order their replies come.
    let slow =
        std::thread::spawn(move || exchange(addr, b"GET /later/400 HTTP/1.1\r\nHost: x\r\n\r\n"));
    let fast = exchange(addr, b"GET /later/50 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(fast.ends_with("after 50 ms\n"), "{fast}");
    assert!(slow.join().unwrap().ends_with("after 400 ms\n"));

    // No reply in time: the server answers 504 itself; the reply that comes later (600 ms)
    // is dropped, and the server goes on.
    let started = Instant::now();
    let timed_out = exchange(addr, b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    let took = started.elapsed();
    assert!(timed_out.starts_with("HTTP/1.1 504 "), "{timed_out}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "504 after {took:?}"
    );
    // The late reply (due 600 ms after /never came) does not reach the next request, which
    // likely waits in the same slot then.
    let next = exchange(addr, b"GET /later/1000 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(next.ends_with("after 1000 ms\n"), "{next}");
    // A client that leaves before its answer: the answer is dropped.
    let mut gone = raw(addr);
    gone.write_all(b"GET /later/100 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    drop(gone);
    std::thread::sleep(Duration::from_millis(700));
    let after = exchange(addr, b"GET /later/0 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(after.ends_with("after 0 ms\n"), "{after}");
    handle.shutdown();
}

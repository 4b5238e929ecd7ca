//! A hyper 1 request upgraded to a [`WebSocket`] (feature `hyper`), and so axum's
//! (`axum::extract::Request` is `http::Request<axum::body::Body>`).
//!
//! ```no_run
//! use http_body_util::Empty;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//! use rfc6455::tokio::{upgrade, AcceptOptions};
//!
//! async fn handle(mut request: Request<Incoming>) -> Result<Response<Empty<Bytes>>, rfc6455::tokio::Error> {
//!     let (response, websocket) = upgrade(&mut request, &AcceptOptions::default())?;
//!     tokio::spawn(async move {
//!         let Ok(mut ws) = websocket.await else { return };
//!         while let Some(Ok(message)) = ws.recv().await {
//!             let _ = ws.send(message).await;
//!         }
//!     });
//!     Ok(response) // the 101; hyper hands the connection over once it is written
//! }
//! ```
//!
//! The request is checked by the core exactly as [`accept_with`](super::accept_with) checks
//! one read from a socket ([`Request::parse`]: method, version, `Upgrade`, `Connection`,
//! key, version 13, extensions), and permessage-deflate is negotiated by
//! [`ServerSession`](crate::proto::ServerSession) from [`AcceptOptions::deflate`].

use super::socket::Inner;
use super::{adapter_config, AcceptOptions, Error, WebSocket};
use crate::proto::{Accept, HandshakeError, Rejection, Request, Status};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The transport of an upgraded hyper connection.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

/// Whether `request` asks for a WebSocket (`Upgrade: websocket`), to route it to
/// [`upgrade`] before checking it fully.
pub fn is_upgrade_request<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get_all(http::header::UPGRADE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Checks `request` as a WebSocket handshake and accepts it with `options`: returns the `101`
/// response to give hyper and a future that yields the [`WebSocket`] once hyper has written
/// it and handed the connection over.
///
/// A request that is not a valid handshake fails with [`Error::Handshake`]; its
/// [`HandshakeError::response`] says why (400, 405, 426, 431): see [`rejection_response`].
pub fn upgrade<B>(
    request: &mut http::Request<B>,
    options: &AcceptOptions,
) -> Result<(http::Response<Empty<Bytes>>, UpgradeFuture), Error> {
    upgrade_with(request, |r: &Request| Ok(r.accept()), options)
}

/// [`upgrade`] with the application's decision, as [`accept_with`](super::accept_with):
/// `callback` sees the parsed request and answers with an [`Accept`] (a subprotocol,
/// headers) or a [`Rejection`], which fails with [`Error::Rejected`] (send
/// [`rejection_response`] of it).
pub fn upgrade_with<B, F>(
    request: &mut http::Request<B>,
    callback: F,
    options: &AcceptOptions,
) -> Result<(http::Response<Empty<Bytes>>, UpgradeFuture), Error>
where
    F: FnOnce(&Request) -> Result<Accept, Rejection>,
{
    let head = head_bytes(request);
    let parsed = match Request::parse(&head, &options.limits) {
        Ok(Status::Complete(parsed, _)) => parsed,
        Ok(Status::Partial) => return Err(Error::Handshake(HandshakeError::Malformed("head"))),
        Err(e) => return Err(Error::Handshake(e)),
    };
    let accept = callback(&parsed).map_err(|r| Error::Rejected(r.status()))?;
    let (conn, response) =
        options
            .session()
            .accept(&parsed, accept, adapter_config(options.config.clone()));
    let response = to_http_response(&response)?;
    let future = UpgradeFuture {
        on_upgrade: hyper::upgrade::on(request),
        ready: Some((conn, options.write_buffer)),
    };
    Ok((response, future))
}

/// The response for a failed [`upgrade`] ([`Error::Handshake`] or [`Error::Rejected`]): the
/// status and a line of text saying what was wrong; `None` for other errors.
pub fn rejection_response(error: &Error) -> Option<http::Response<String>> {
    let (status, body) = match error {
        Error::Handshake(e) => (e.status(), format!("{e}\n")),
        Error::Rejected(status) => (*status, String::new()),
        _ => return None,
    };
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).ok()?;
    if let Error::Handshake(HandshakeError::UnsupportedVersion(_)) = error {
        response.headers_mut().insert(
            "sec-websocket-version",
            http::HeaderValue::from_static("13"),
        );
    }
    Some(response)
}

/// Yields the [`WebSocket`] once hyper hands the upgraded connection over.
#[must_use = "the WebSocket comes out of this future"]
pub struct UpgradeFuture {
    on_upgrade: hyper::upgrade::OnUpgrade,
    ready: Option<(crate::Connection, usize)>,
}

impl std::fmt::Debug for UpgradeFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradeFuture").finish_non_exhaustive()
    }
}

impl Future for UpgradeFuture {
    type Output = Result<WebSocket<Upgraded>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let upgraded = ready!(Pin::new(&mut this.on_upgrade).poll(cx))
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let (conn, write_buffer) = this.ready.take().ok_or_else(|| {
            Error::Io(std::io::Error::other(
                "UpgradeFuture polled after completion",
            ))
        })?;
        // hyper keeps bytes it read past the head inside `Upgraded` and hands them out first.
        let inner = Inner::new(TokioIo::new(upgraded), conn, Vec::new(), write_buffer);
        Poll::Ready(Ok(WebSocket::from_inner(inner)))
    }
}

/// The request's head as it came on the wire (hyper has parsed it already; the core checks
/// it again, so every rule lives in one place).
fn head_bytes<B>(request: &http::Request<B>) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(request.method().as_str().as_bytes());
    head.push(b' ');
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    head.extend_from_slice(target.as_bytes());
    let version: &[u8] = match request.version() {
        http::Version::HTTP_10 => b" HTTP/1.0\r\n",
        http::Version::HTTP_09 => b" HTTP/0.9\r\n",
        _ => b" HTTP/1.1\r\n",
    };
    head.extend_from_slice(version);
    if !request.headers().contains_key(http::header::HOST) {
        if let Some(authority) = request.uri().authority() {
            head.extend_from_slice(b"Host: ");
            head.extend_from_slice(authority.as_str().as_bytes());
            head.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in request.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The `101` the core wrote, as an `http::Response` for hyper.
fn to_http_response(bytes: &[u8]) -> Result<http::Response<Empty<Bytes>>, Error> {
    let bad = || {
        Error::Io(std::io::Error::other(
            "the core's 101 response did not parse",
        ))
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    if !matches!(parsed.parse(bytes), Ok(httparse::Status::Complete(_))) {
        return Err(bad());
    }
    let mut response = http::Response::new(Empty::new());
    *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    for header in parsed.headers.iter() {
        let name = http::HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| bad())?;
        let value = http::HeaderValue::from_bytes(header.value).map_err(|_| bad())?;
        response.headers_mut().append(name, value);
    }
    Ok(response)
}

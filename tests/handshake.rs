//! The opening handshake through the public API: real browser requests, tables of bad
//! requests and responses, every split of a head, and interop with tungstenite.

use proptest::prelude::*;
use rfc6455::proto::{
    accept_key, format_extensions, parse_extensions, ClientHandshake, ClientHandshakeError,
    ClientOptions, ExtensionOffer, HandshakeError, HandshakeLimits, Rejection, Request, Response,
    Status, Url,
};
use std::io::{self, Read, Write};

fn crlf(head: &str) -> Vec<u8> {
    head.lines()
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        .into_bytes()
}

fn parse(wire: &[u8]) -> Result<Status<Request>, HandshakeError> {
    Request::parse(wire, &HandshakeLimits::default())
}

fn complete(wire: &[u8]) -> (Request, usize) {
    match parse(wire) {
        Ok(Status::Complete(req, n)) => (req, n),
        other => panic!("expected a complete request, got {other:?}"),
    }
}

const CHROME: &str = "GET /chat?room=lobby HTTP/1.1
Host: localhost:9001
Connection: Upgrade
Pragma: no-cache
Cache-Control: no-cache
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36
Upgrade: websocket
Origin: http://localhost:9001
Sec-WebSocket-Version: 13
Accept-Encoding: gzip, deflate, br, zstd
Accept-Language: en-US,en;q=0.9
Sec-WebSocket-Key: 7s/Ddad8Qgi3e1xXGx7jqg==
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits

";

const FIREFOX: &str = "GET /chat HTTP/1.1
Host: localhost:9001
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0
Accept: */*
Accept-Language: en-US,en;q=0.5
Accept-Encoding: gzip, deflate, br
Sec-WebSocket-Version: 13
Origin: http://localhost:9001
Sec-WebSocket-Protocol: chat.v2, chat.v1
Sec-WebSocket-Extensions: permessage-deflate
Sec-WebSocket-Key: SjMSl6DqtG2/8oPKcWEK0A==
Connection: keep-alive, Upgrade
Sec-Fetch-Dest: empty
Sec-Fetch-Mode: websocket
Sec-Fetch-Site: same-origin
Pragma: no-cache
Cache-Control: no-cache
Upgrade: websocket

";

const SAFARI: &str = "GET /chat HTTP/1.1
Host: localhost:9001
Sec-WebSocket-Extensions: permessage-deflate
Sec-WebSocket-Key: cZM8p5OtxmnmS6TPVggwZw==
Upgrade: websocket
Accept-Encoding: gzip, deflate
Origin: http://localhost:9001
Pragma: no-cache
Cache-Control: no-cache
Accept-Language: en-GB,en;q=0.9
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15
Sec-WebSocket-Version: 13
Connection: Upgrade

";

#[test]
fn rfc_6455_accept_key() {
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn rfc_6455_section_1_3_request_and_response() {
    let wire = crlf(
        "GET /chat HTTP/1.1
Host: server.example.com
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Origin: http://example.com
Sec-WebSocket-Protocol: chat, superchat
Sec-WebSocket-Version: 13

",
    );
    let (req, n) = complete(&wire);
    assert_eq!(n, wire.len());
    assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat", "superchat"]);
    let response = req.accept().protocol("chat").unwrap().to_bytes();
    assert_eq!(
        response,
        crlf(
            "HTTP/1.1 101 Switching Protocols
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
Sec-WebSocket-Protocol: chat

"
        )
    );
}

#[test]
fn browsers() {
    let (chrome, _) = complete(&crlf(CHROME));
    assert_eq!(
        (chrome.path(), chrome.query()),
        ("/chat", Some("room=lobby"))
    );
    assert_eq!(chrome.host(), "localhost:9001");
    assert_eq!(chrome.origin(), Some("http://localhost:9001"));
    assert_eq!(chrome.key(), "7s/Ddad8Qgi3e1xXGx7jqg==");
    assert_eq!(chrome.protocols().count(), 0);
    assert_eq!(
        chrome.extensions(),
        [ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None)]
    );
    assert_eq!(
        chrome.header("user-agent").map(|ua| ua.contains("Chrome/")),
        Some(true)
    );
    assert_eq!(chrome.headers().count(), 12);

    let (firefox, _) = complete(&crlf(FIREFOX));
    assert_eq!((firefox.path(), firefox.query()), ("/chat", None));
    assert_eq!(
        firefox.protocols().collect::<Vec<_>>(),
        ["chat.v2", "chat.v1"]
    );
    assert_eq!(
        firefox.extensions(),
        [ExtensionOffer::new("permessage-deflate")]
    );
    assert_eq!(firefox.header("CONNECTION"), Some("keep-alive, Upgrade"));

    let (safari, _) = complete(&crlf(SAFARI));
    assert_eq!(safari.key(), "cZM8p5OtxmnmS6TPVggwZw==");
    assert_eq!(
        safari.extensions(),
        [ExtensionOffer::new("permessage-deflate")]
    );

    for (req, accept) in [
        (&chrome, accept_key(b"7s/Ddad8Qgi3e1xXGx7jqg==")),
        (&firefox, accept_key(b"SjMSl6DqtG2/8oPKcWEK0A==")),
        (&safari, accept_key(b"cZM8p5OtxmnmS6TPVggwZw==")),
    ] {
        let response = String::from_utf8(req.accept().to_bytes()).unwrap();
        assert!(response.contains(&format!("\r\nSec-WebSocket-Accept: {accept}\r\n")));
    }
}

/// Replaces one header line (by name) in a valid request, or removes it when `to` is None.
fn edit(base: &str, name: &str, to: Option<&str>) -> Vec<u8> {
    let lines: Vec<String> = base
        .lines()
        .filter_map(|l| match l.split_once(':') {
            Some((n, _)) if n.eq_ignore_ascii_case(name) => to.map(|v| format!("{name}: {v}")),
            _ => Some(l.to_owned()),
        })
        .collect();
    crlf(&(lines.join("\n") + "\n"))
}

#[test]
fn bad_requests() {
    let many_headers = {
        let extra: String = (0..65).map(|i| format!("X-{i}: {i}\n")).collect();
        crlf(&CHROME.replacen("Host:", &format!("{extra}Host:"), 1))
    };
    let long_head =
        crlf(&CHROME.replacen("Host:", &format!("Cookie: {}\nHost:", "a".repeat(9000)), 1));
    let cases: Vec<(&str, Vec<u8>, u16, HandshakeError)> = vec![
        (
            "missing Host",
            edit(CHROME, "Host", None),
            400,
            HandshakeError::MissingHeader("Host"),
        ),
        (
            "two Hosts",
            crlf(&CHROME.replacen("Host: localhost:9001", "Host: a\nHost: b", 1)),
            400,
            HandshakeError::DuplicateHeader("Host"),
        ),
        (
            "POST",
            crlf(&CHROME.replacen("GET", "POST", 1)),
            405,
            HandshakeError::MethodNotAllowed("POST".into()),
        ),
        (
            "version 8",
            edit(CHROME, "Sec-WebSocket-Version", Some("8")),
            426,
            HandshakeError::UnsupportedVersion("8".into()),
        ),
        (
            "asterisk target",
            crlf(&CHROME.replacen("GET /chat?room=lobby", "GET *", 1)),
            400,
            HandshakeError::InvalidTarget("*".into()),
        ),
        (
            "relative target",
            crlf(&CHROME.replacen("GET /chat?room=lobby", "GET chat", 1)),
            400,
            HandshakeError::InvalidTarget("chat".into()),
        ),
        (
            "ftp target",
            crlf(&CHROME.replacen("GET /chat?room=lobby", "GET ftp://h/x", 1)),
            400,
            HandshakeError::InvalidTarget("ftp://h/x".into()),
        ),
        (
            "Host with a space",
            edit(CHROME, "Host", Some("a b")),
            400,
            HandshakeError::InvalidHost("a b".into()),
        ),
        (
            "Host with userinfo and a path",
            edit(CHROME, "Host", Some("a/b@c")),
            400,
            HandshakeError::InvalidHost("a/b@c".into()),
        ),
        (
            "a body",
            crlf(&CHROME.replacen("Host:", "Content-Length: 14\nHost:", 1)),
            400,
            HandshakeError::RequestBody,
        ),
        (
            "a chunked body",
            crlf(&CHROME.replacen("Host:", "Transfer-Encoding: chunked\nHost:", 1)),
            400,
            HandshakeError::RequestBody,
        ),
        (
            "no version",
            edit(CHROME, "Sec-WebSocket-Version", None),
            400,
            HandshakeError::MissingHeader("Sec-WebSocket-Version"),
        ),
        (
            "key of 15 bytes",
            edit(CHROME, "Sec-WebSocket-Key", Some("lyLWjHNqI9q4ZJfydlm5")),
            400,
            HandshakeError::InvalidKey("lyLWjHNqI9q4ZJfydlm5".into()),
        ),
        (
            "key of 17 bytes",
            edit(
                CHROME,
                "Sec-WebSocket-Key",
                Some("dJN3BC62Y0kSMKwwIvs1ty4="),
            ),
            400,
            HandshakeError::InvalidKey("dJN3BC62Y0kSMKwwIvs1ty4=".into()),
        ),
        (
            "key not base64",
            edit(
                CHROME,
                "Sec-WebSocket-Key",
                Some("not base64 at all!!!!!!!"),
            ),
            400,
            HandshakeError::InvalidKey("not base64 at all!!!!!!!".into()),
        ),
        (
            "no key",
            edit(CHROME, "Sec-WebSocket-Key", None),
            400,
            HandshakeError::MissingHeader("Sec-WebSocket-Key"),
        ),
        (
            "no Upgrade",
            edit(CHROME, "Upgrade", None),
            400,
            HandshakeError::MissingHeader("Upgrade"),
        ),
        (
            "Upgrade: h2c",
            edit(CHROME, "Upgrade", Some("h2c")),
            400,
            HandshakeError::InvalidUpgrade("h2c".into()),
        ),
        (
            "Connection without upgrade",
            edit(CHROME, "Connection", Some("keep-alive")),
            400,
            HandshakeError::InvalidConnection("keep-alive".into()),
        ),
        (
            "no Connection",
            edit(CHROME, "Connection", None),
            400,
            HandshakeError::MissingHeader("Connection"),
        ),
        (
            "HTTP/1.0",
            crlf(&CHROME.replacen("HTTP/1.1", "HTTP/1.0", 1)),
            400,
            HandshakeError::HttpVersion,
        ),
        (
            "head over the limit",
            long_head,
            431,
            HandshakeError::HeadTooLarge { limit: 8192 },
        ),
        (
            "too many headers",
            many_headers,
            431,
            HandshakeError::TooManyHeaders { limit: 64 },
        ),
        (
            "garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            400,
            HandshakeError::Malformed("an invalid method or request target"),
        ),
        (
            "bad extensions",
            edit(
                CHROME,
                "Sec-WebSocket-Extensions",
                Some("permessage-deflate; ="),
            ),
            400,
            HandshakeError::InvalidExtensions(
                parse_extensions("permessage-deflate; =").unwrap_err(),
            ),
        ),
    ];
    for (what, wire, status, want) in cases {
        let err = parse(&wire).expect_err(what);
        assert_eq!((err.status(), &err), (status, &want), "{what}");
        let response = String::from_utf8(err.response()).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {head}"
        );
        assert!(
            head.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
            "{what}"
        );
        assert!(
            head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
            "{what}"
        );
        let connection = head.split("\r\n").find(|l| l.starts_with("Connection: "));
        let want = if status == 426 {
            "Connection: Upgrade, close"
        } else {
            "Connection: close"
        };
        assert_eq!(connection, Some(want), "{what}");
        assert_eq!(body, format!("{err}\n"), "{what}");
        assert_eq!(body.lines().count(), 1, "{what}");
        assert_eq!(head.contains("\r\nAllow: GET"), status == 405, "{what}");
        assert_eq!(
            head.contains("\r\nSec-WebSocket-Version: 13"),
            status == 426,
            "{what}"
        );
        // RFC 7231 §6.5.15: a 426 says what to upgrade to (and so lists Upgrade above).
        assert_eq!(
            head.contains("\r\nUpgrade: websocket"),
            status == 426,
            "{what}"
        );
    }
}

#[test]
fn absolute_targets_and_bracketed_hosts_are_accepted() {
    for (target, host, path) in [
        (
            "http://localhost:9001/chat?room=lobby",
            "localhost:9001",
            "/chat",
        ),
        ("WSS://example.com", "example.com", "/"),
        ("/chat", "[::1]:9001", "/chat"),
    ] {
        let head = crlf(&CHROME.replacen("/chat?room=lobby", target, 1).replacen(
            "localhost:9001",
            host,
            1,
        ));
        let (req, _) = complete(&head);
        assert_eq!((req.path(), req.host()), (path, host), "{target} {host}");
    }
}

#[test]
fn expect_100_continue_gets_a_100_before_the_101() {
    // RFC 7230 §6.7: with Upgrade and Expect: 100-continue, a 100 (Continue) comes first.
    let head = crlf(&CHROME.replacen("Host:", "Expect: 100-Continue\nHost:", 1));
    let (req, _) = complete(&head);
    let bytes = req.accept().to_bytes();
    assert!(
        bytes.starts_with(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n"),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let (plain, _) = complete(&crlf(CHROME));
    assert!(plain.accept().to_bytes().starts_with(b"HTTP/1.1 101 "));
}

#[test]
fn an_empty_body_is_no_body() {
    let head = crlf(&CHROME.replacen("Host:", "Content-Length: 0\nHost:", 1));
    assert!(parse(&head).is_ok());
}

#[test]
fn bad_request_messages_say_what_to_do() {
    let err = parse(&edit(CHROME, "Host", None)).unwrap_err();
    assert!(err.to_string().contains("no Host header"), "{err}");
    let err = parse(&edit(CHROME, "Sec-WebSocket-Version", Some("8"))).unwrap_err();
    assert!(err.to_string().contains("version 13"), "{err}");
}

#[test]
fn limits_are_configurable() {
    let mut limits = HandshakeLimits::default();
    limits.max_headers = 12; // Chrome sends exactly 12
    assert!(matches!(
        Request::parse(&crlf(CHROME), &limits),
        Ok(Status::Complete(..))
    ));
    limits.max_headers = 11;
    let err = Request::parse(&crlf(CHROME), &limits).unwrap_err();
    assert_eq!(err, HandshakeError::TooManyHeaders { limit: 11 });
    limits.max_headers = 200;
    limits.max_head_size = 100;
    let err = Request::parse(&crlf(CHROME), &limits).unwrap_err();
    assert_eq!(err, HandshakeError::HeadTooLarge { limit: 100 });
    // Under the limit and still partial: need more bytes.
    assert_eq!(
        Request::parse(&crlf(CHROME)[..99], &limits),
        Ok(Status::Partial)
    );
}

#[test]
fn request_split_at_every_byte() {
    for browser in [CHROME, FIREFOX, SAFARI] {
        let head = crlf(browser);
        for cut in 0..head.len() {
            assert_eq!(parse(&head[..cut]), Ok(Status::Partial), "cut {cut}");
        }
        let mut wire = head.clone();
        wire.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4, b'h' ^ 1]); // a client's first frame
        let (req, n) = complete(&wire);
        assert_eq!(n, head.len());
        assert_eq!(complete(&head).0, req);
    }
}

fn fixed_client(options: &ClientOptions) -> ClientHandshake {
    let url: Url = "ws://localhost:9001/chat?room=1".parse().unwrap();
    ClientHandshake::new(&url, options, &mut || *b"0123456789abcdef").unwrap()
}

fn response_for(client: &ClientHandshake, extra: &str) -> Vec<u8> {
    crlf(&format!(
        "HTTP/1.1 101 Switching Protocols
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Accept: {}
{extra}
",
        accept_key(client.key().as_bytes())
    ))
}

fn complete_response(client: &ClientHandshake, wire: &[u8]) -> (Response, usize) {
    match client.parse_response(wire) {
        Ok(Status::Complete(res, n)) => (res, n),
        other => panic!("expected a complete response, got {other:?}"),
    }
}

#[test]
fn client_request_is_exact() {
    let options = ClientOptions::default()
        .protocol("chat.v2")
        .protocol("chat.v1")
        .extension(
            ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None),
        )
        .header("Origin", "http://localhost:9001")
        .header("Authorization", "Bearer abc");
    let client = fixed_client(&options);
    assert_eq!(client.key(), "MDEyMzQ1Njc4OWFiY2RlZg==");
    assert_eq!(
        client.request(),
        crlf(
            "GET /chat?room=1 HTTP/1.1
Host: localhost:9001
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==
Sec-WebSocket-Version: 13
Sec-WebSocket-Protocol: chat.v2, chat.v1
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits
Origin: http://localhost:9001
Authorization: Bearer abc

"
        )
    );
    // And our own server takes it.
    let (req, _) = complete(client.request());
    assert_eq!(
        (req.path(), req.query(), req.host()),
        ("/chat", Some("room=1"), "localhost:9001")
    );
    assert_eq!(req.protocols().collect::<Vec<_>>(), ["chat.v2", "chat.v1"]);
    assert_eq!(req.header("authorization"), Some("Bearer abc"));
}

#[test]
fn client_options_that_cannot_be_sent() {
    let url: Url = "ws://h/".parse().unwrap();
    for options in [
        ClientOptions::default().protocol("two words"),
        ClientOptions::default().protocol("a").protocol("a"),
        ClientOptions::default().extension(ExtensionOffer::new("a b")),
        ClientOptions::default().header("Sec-WebSocket-Key", "x"),
        ClientOptions::default().header("host", "x"),
        ClientOptions::default().header("X-Evil", "a\r\nInjected: yes"),
    ] {
        assert!(
            ClientHandshake::new(&url, &options, &mut rfc6455::proto::RandomKeys).is_err(),
            "{options:?}"
        );
    }
}

#[test]
fn random_keys_are_fresh() {
    let url: Url = "wss://h/".parse().unwrap();
    let options = ClientOptions::default();
    let a = ClientHandshake::new(&url, &options, &mut rfc6455::proto::RandomKeys).unwrap();
    let b = ClientHandshake::new(&url, &options, &mut rfc6455::proto::RandomKeys).unwrap();
    assert_ne!(a.key(), b.key());
    assert_eq!(a.key().len(), 24);
}

#[test]
fn a_full_round_trip_with_negotiation() {
    let options = ClientOptions::default()
        .protocol("chat.v2")
        .protocol("chat.v1")
        .extension(
            ExtensionOffer::new("permessage-deflate").with_param("client_max_window_bits", None),
        );
    let client = fixed_client(&options);
    let (req, _) = complete(client.request());
    let chosen = req.protocols().find(|p| *p == "chat.v1").unwrap();
    let answer =
        [ExtensionOffer::new("permessage-deflate")
            .with_param("client_max_window_bits", Some("10"))];
    let mut wire = req
        .accept()
        .protocol(chosen)
        .unwrap()
        .extensions(&answer)
        .unwrap()
        .header("X-Server", "rfc6455")
        .unwrap()
        .to_bytes();
    let head_len = wire.len();
    wire.extend_from_slice(&[0x81, 0x02, b'h', b'i']); // the server's first frame
    let (res, n) = complete_response(&client, &wire);
    assert_eq!(n, head_len);
    assert_eq!((res.status(), res.reason()), (101, "Switching Protocols"));
    assert_eq!(res.protocol(), Some("chat.v1"));
    assert_eq!(res.extensions(), answer);
    assert_eq!(res.header("x-server"), Some("rfc6455"));
    assert_eq!(res.headers().count(), 6);
}

#[test]
fn bad_responses() {
    let options = ClientOptions::default()
        .protocol("chat")
        .extension(ExtensionOffer::new("permessage-deflate"));
    let client = fixed_client(&options);
    let good = String::from_utf8(response_for(&client, "")).unwrap();
    let without = |name: &str| {
        good.lines()
            .filter(|l| !l.starts_with(name))
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
            .into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, ClientHandshakeError)> = vec![
        (
            "200",
            crlf("HTTP/1.1 200 OK\nContent-Length: 0\n\n"),
            ClientHandshakeError::UnexpectedStatus {
                status: 200,
                reason: "OK".into(),
            },
        ),
        (
            "403 with reason",
            crlf("HTTP/1.1 403 Forbidden\nContent-Length: 0\n\n"),
            ClientHandshakeError::UnexpectedStatus {
                status: 403,
                reason: "Forbidden".into(),
            },
        ),
        (
            "wrong accept",
            good.replace(
                &accept_key(client.key().as_bytes()),
                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            )
            .into_bytes(),
            ClientHandshakeError::AcceptMismatch {
                expected: accept_key(client.key().as_bytes()),
                received: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
            },
        ),
        (
            "no accept",
            without("Sec-WebSocket-Accept"),
            ClientHandshakeError::MissingHeader("Sec-WebSocket-Accept"),
        ),
        (
            "missing Upgrade",
            without("Upgrade"),
            ClientHandshakeError::MissingHeader("Upgrade"),
        ),
        (
            "Upgrade: h2c",
            good.replace("Upgrade: websocket", "Upgrade: h2c")
                .into_bytes(),
            ClientHandshakeError::InvalidUpgrade("h2c".into()),
        ),
        (
            "missing Connection",
            without("Connection"),
            ClientHandshakeError::MissingHeader("Connection"),
        ),
        (
            "Connection: close",
            good.replace("Connection: Upgrade", "Connection: close")
                .into_bytes(),
            ClientHandshakeError::InvalidConnection("close".into()),
        ),
        (
            "unoffered subprotocol",
            response_for(&client, "Sec-WebSocket-Protocol: superchat\n"),
            ClientHandshakeError::UnofferedProtocol("superchat".into()),
        ),
        (
            "two subprotocols",
            response_for(&client, "Sec-WebSocket-Protocol: chat, chat\n"),
            ClientHandshakeError::UnofferedProtocol("chat, chat".into()),
        ),
        (
            "unoffered extension",
            response_for(
                &client,
                "Sec-WebSocket-Extensions: x-webkit-deflate-frame\n",
            ),
            ClientHandshakeError::UnofferedExtension("x-webkit-deflate-frame".into()),
        ),
        (
            "bad extension grammar",
            response_for(&client, "Sec-WebSocket-Extensions: permessage-deflate;\n"),
            ClientHandshakeError::InvalidExtensions(
                parse_extensions("permessage-deflate;").unwrap_err(),
            ),
        ),
        (
            "garbage",
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec(),
            ClientHandshakeError::Malformed("a version that is not HTTP/1.0 or HTTP/1.1"),
        ),
    ];
    for (what, wire, want) in cases {
        assert_eq!(client.parse_response(&wire), Err(want), "{what}");
    }
    // A subprotocol when none was offered.
    let plain = fixed_client(&ClientOptions::default());
    assert_eq!(
        plain.parse_response(&response_for(&plain, "Sec-WebSocket-Protocol: chat\n")),
        Err(ClientHandshakeError::UnofferedProtocol("chat".into()))
    );
    // The refusal reads well.
    let err = client
        .parse_response(&crlf("HTTP/1.1 403 Forbidden\n\n"))
        .unwrap_err();
    assert!(err.to_string().contains("403 Forbidden"), "{err}");
}

#[test]
fn response_split_at_every_byte() {
    let options = ClientOptions::default().protocol("chat");
    let client = fixed_client(&options);
    let head = response_for(&client, "Sec-WebSocket-Protocol: chat\n");
    for cut in 0..head.len() {
        assert_eq!(
            client.parse_response(&head[..cut]),
            Ok(Status::Partial),
            "cut {cut}"
        );
    }
    let mut wire = head.clone();
    wire.extend_from_slice(b"\x81\x05hello");
    let (res, n) = complete_response(&client, &wire);
    assert_eq!(n, head.len());
    assert_eq!(res.protocol(), Some("chat"));
}

#[test]
fn rejections() {
    let text = |r: Rejection| String::from_utf8(r.to_bytes()).unwrap();
    assert_eq!(
        text(Rejection::new(404)),
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 14\r\n\
         Connection: close\r\n\r\n404 Not Found\n"
    );
    let r = Rejection::new(503)
        .header("Retry-After", "5")
        .unwrap()
        .header("Content-Type", "application/json")
        .unwrap()
        .body("{}");
    assert_eq!(
        text(r),
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\
         Retry-After: 5\r\nContent-Type: application/json\r\n\r\n{}"
    );
    assert_eq!(Rejection::new(101).status(), 500);
    assert_eq!(Rejection::new(200).status(), 500);
    assert!(Rejection::new(401).header("Content-Length", "9").is_err());
    assert!(Rejection::new(401).header("X", "a\nb").is_err());
}

#[test]
fn accept_checks_what_it_writes() {
    let (req, _) = complete(&crlf(FIREFOX));
    assert!(req.accept().protocol("chat v2").is_err());
    assert!(req.accept().header("Sec-WebSocket-Accept", "x").is_err());
    assert!(req.accept().extensions(&[ExtensionOffer::new("")]).is_err());
    // No extensions, no header.
    let bytes = req.accept().extensions(&[]).unwrap().to_bytes();
    assert!(!String::from_utf8(bytes).unwrap().contains("Extensions"));
}

/// A transport for tungstenite whose far end is this crate's server handshake.
struct OurServer {
    from_client: Vec<u8>,
    to_client: Vec<u8>,
    sent: usize,
}

impl Read for OurServer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.to_client.is_empty() {
            match parse(&self.from_client) {
                Ok(Status::Complete(req, _)) => {
                    let chosen = req.protocols().find(|p| *p == "chat").map(str::to_owned);
                    let mut accept = req.accept();
                    if let Some(p) = chosen {
                        accept = accept.protocol(&p).unwrap();
                    }
                    self.to_client = accept.to_bytes();
                }
                Ok(Status::Partial) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => self.to_client = e.response(),
            }
        }
        let rest = &self.to_client[self.sent..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.sent += n;
        Ok(n)
    }
}

impl Write for OurServer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.from_client.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn tungstenite_client_against_our_server() {
    use tungstenite::client::IntoClientRequest;
    let mut request = "ws://localhost:9001/chat".into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "superchat, chat".parse().unwrap());
    let stream = OurServer {
        from_client: Vec::new(),
        to_client: Vec::new(),
        sent: 0,
    };
    let (_ws, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
}

/// A transport for tungstenite's server that replays our client's request.
struct OurClient {
    request: io::Cursor<Vec<u8>>,
    response: Vec<u8>,
}

impl Read for OurClient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.request.read(buf)
    }
}

impl Write for OurClient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.response.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn our_client_against_tungstenite_server() {
    let client = ClientHandshake::new(
        &"ws://[::1]:9001/x".parse().unwrap(),
        &ClientOptions::default().header("Origin", "http://[::1]:9001"),
        &mut rfc6455::proto::RandomKeys,
    )
    .unwrap();
    assert!(client
        .request()
        .starts_with(b"GET /x HTTP/1.1\r\nHost: [::1]:9001\r\n"));
    let stream = OurClient {
        request: io::Cursor::new(client.request().to_vec()),
        response: Vec::new(),
    };
    let ws = tungstenite::accept(stream).unwrap();
    let wire = ws.get_ref().response.clone();
    let (res, n) = complete_response(&client, &wire);
    assert_eq!((n, res.protocol()), (wire.len(), None));
}

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn offer() -> impl Strategy<Value = ExtensionOffer> {
    (
        token(),
        prop::collection::vec((token(), prop::option::of(token())), 0..4),
    )
        .prop_map(|(name, params)| ExtensionOffer { name, params })
}

proptest! {
    #[test]
    fn extensions_format_then_parse(offers in prop::collection::vec(offer(), 0..5)) {
        let value = format_extensions(&offers).unwrap();
        prop_assert_eq!(parse_extensions(&value).unwrap(), offers);
    }

    #[test]
    fn extensions_parse_with_any_spacing_and_quoting(
        offers in prop::collection::vec(offer(), 1..4),
        ws in prop::collection::vec("[ \t]{0,2}", 8),
        quote in any::<bool>(),
    ) {
        // Hand-format with odd whitespace and quoted (escaped) values.
        let mut value = String::new();
        for (i, o) in offers.iter().enumerate() {
            if i > 0 { value.push_str(&format!("{},{}", ws[0], ws[1])); }
            value.push_str(&o.name);
            for (n, v) in &o.params {
                value.push_str(&format!("{};{}{n}", ws[2], ws[3]));
                if let Some(v) = v {
                    let v = if quote {
                        format!("\"{}\"", v.chars().map(|c| format!("\\{c}")).collect::<String>())
                    } else {
                        v.clone()
                    };
                    value.push_str(&format!("{}={}{v}", ws[4], ws[5]));
                }
            }
        }
        prop_assert_eq!(parse_extensions(&value).unwrap(), offers);
    }

    #[test]
    fn extensions_parse_never_panics(value in "\\PC{0,40}") {
        let _ = parse_extensions(&value);
    }

    #[test]
    fn request_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
        let mut wire = crlf(CHROME);
        wire.truncate(bytes.len().min(wire.len()));
        wire.extend_from_slice(&bytes);
        let _ = parse(&wire);
    }

    #[test]
    fn response_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = fixed_client(&ClientOptions::default()).parse_response(&bytes);
    }

    #[test]
    fn accept_key_matches_tungstenite(key in prop::array::uniform16(any::<u8>())) {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        prop_assert_eq!(accept_key(key.as_bytes()), tungstenite::handshake::derive_accept_key(key.as_bytes()));
    }

    #[test]
    fn urls_never_panic(s in "(ws|wss|http)://\\PC{0,30}") {
        if let Ok(url) = Url::parse(&s) {
            prop_assert_eq!(Url::parse(&url.to_string()), Ok(url));
        }
    }
}

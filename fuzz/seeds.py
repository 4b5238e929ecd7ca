#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed; rerun after changing it).

Seeds come from the RFC 6455 §5.7 examples, the tables in tests/core.rs and real browser
handshake heads. Connection seeds carry the 4-byte prefix + split lengths described in
src/__fuzz.rs (`ConnInput`).
"""
import os
import shutil
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x5A, 0x17, 0xC3, 0x88])


def frame(b0, payload=b"", masked=False, key=KEY):
    n = len(payload)
    bit = 0x80 if masked else 0
    if n <= 125:
        out = bytes([b0, bit | n])
    elif n <= 0xFFFF:
        out = bytes([b0, bit | 126]) + n.to_bytes(2, "big")
    else:
        out = bytes([b0, bit | 127]) + n.to_bytes(8, "big")
    if masked:
        out += key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    else:
        out += payload
    return out


def c(b0, payload=b""):
    return frame(b0, payload, masked=True)


def s(b0, payload=b""):
    return frame(b0, payload, masked=False)


def conn(stream, splits=(), auto_pong=True, close_first=False, max_frame=1000, max_message=1500):
    flags = (1 if auto_pong else 0) | (2 if close_first else 0)
    head = bytes([flags, min(max_frame // 4, 255), min(max_message // 8, 255), len(splits)])
    return head + bytes(splits) + stream


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")  # RFC 6455 §5.7
HELLO = bytes.fromhex("810548656c6c6f")
HELLO_FRAGMENTED = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
PING_MASKED = bytes.fromhex("898537fa213d7f9f4d5158")
PING = bytes.fromhex("890548656c6c6f")
PONG_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")
PONG = bytes.fromhex("8a0548656c6c6f")
BIN256 = bytes.fromhex("827e0100") + bytes([7]) * 256

write("frame_header", {
    "rfc_hello": HELLO,
    "rfc_hello_masked": HELLO_MASKED,
    "rfc_fragment_first": HELLO_FRAGMENTED[:5],
    "rfc_fragment_last": HELLO_FRAGMENTED[5:],
    "rfc_ping_masked": PING_MASKED,
    "rfc_pong_masked": PONG_MASKED,
    "rfc_256_binary": bytes.fromhex("827e0100"),
    "rfc_64k_binary": bytes.fromhex("827f0000000000010000"),
    "len16_masked": bytes.fromhex("82fe01000a0b0c0d"),
    "len64_masked": bytes.fromhex("02ff0000000000010000a1b2c3d4"),
    "len64_max": bytes.fromhex("827f7fffffffffffffff"),
    "non_minimal_16": bytes.fromhex("827e0005"),
    "non_minimal_64": bytes.fromhex("827f0000000000000005"),
    "rsv_all": bytes.fromhex("f100"),
    "close_125": bytes.fromhex("887d"),
    "err_reserved_opcode": bytes.fromhex("8380"),
    "err_reserved_control_opcode": bytes.fromhex("8b80"),
    "err_fragmented_ping": bytes.fromhex("0980"),
    "err_close_126": bytes.fromhex("88fe"),
    "err_len64_top_bit": bytes.fromhex("827f8000000000000000"),
    "partial_one_byte": bytes.fromhex("81"),
    "partial_len64": bytes.fromhex("82ff000000"),
})

# Server side: the peer is a client, so frames are masked.
server_bad = {
    "bad_unmasked": s(0x81, b"hi"),
    "bad_reserved_opcode": c(0x83),
    "bad_reserved_control": c(0x8B),
    "bad_rsv1": c(0xC1, b"x"),
    "bad_ping_126": bytes([0x89, 0xFE, 0x00, 0x7E]) + KEY + bytes(126),
    "bad_len64_top_bit": bytes.fromhex("82ff8000000000000001") + bytes.fromhex("01020304"),
    "bad_unexpected_continuation": c(0x80, b"x"),
    "bad_expected_continuation": c(0x01, b"a") + c(0x81, b"b"),
    "bad_frame_too_large": c(0x82, bytes(1001)),
    "bad_message_too_large": c(0x02, bytes(1000)) + c(0x80, bytes(501)),
    "bad_utf8": c(0x81, b"\xce\xba\xff"),
    "bad_utf8_across_frames": c(0x01, b"\xce") + c(0x80, b"\x41"),
    "bad_utf8_truncated": c(0x81, b"ok\xe2\x82"),
    "bad_utf8_mid_frame": c(0x81, b"valid then \xf4\x90 and more"),
    "bad_close_1_byte": c(0x88, b"\x03"),
    "bad_close_1005": c(0x88, b"\x03\xed"),
    "bad_close_1006": c(0x88, b"\x03\xee"),
    "bad_close_999": c(0x88, b"\x03\xe7"),
    "bad_close_1016": c(0x88, b"\x03\xf8"),
    "bad_close_2999": c(0x88, b"\x0b\xb7"),
    "bad_close_5000": c(0x88, b"\x13\x88"),
    "bad_close_reason_utf8": c(0x88, b"\x03\xe8\xff"),
    "events_then_error": c(0x81, b"first") + c(0x89, b"p") + c(0x83),
}
server_good = {
    "rfc_hello_masked": HELLO_MASKED,
    "rfc_ping_masked": PING_MASKED,
    "rfc_pong_masked": PONG_MASKED,
    "fragmented_with_controls": c(0x01, b"Hel") + c(0x89, b"p") + c(0x00, b"l") + c(0x8A) + c(0x80, b"o"),
    "code_point_across_frames": c(0x01, b"\xe2") + c(0x00, b"\x82") + c(0x80, b"\xac"),
    "utf8_text": c(0x81, "κόσμε Hello-µ@ßöäüàá-UTF-8!!".encode()),
    "binary_256": frame(0x82, bytes(range(256)), masked=True),
    "empty_messages": c(0x81) + c(0x82) + c(0x89) + c(0x8A),
    "close_normal": c(0x88, b"\x03\xe8bye") + c(0x81, b"after close"),
    "close_empty": c(0x88),
    "close_4000": c(0x88, b"\x0f\xa0bye"),
}
seeds = {}
for name, stream in {**server_good, **server_bad}.items():
    seeds[name] = conn(stream)
seeds["hello_byte_by_byte"] = conn(HELLO_MASKED, splits=[1] * 10)
seeds["fragmented_split"] = conn(server_good["fragmented_with_controls"], splits=[3, 7, 1, 0, 9])
seeds["utf8_split"] = conn(server_good["utf8_text"], splits=[7, 1, 1, 1, 2])
seeds["no_auto_pong"] = conn(PING_MASKED + HELLO_MASKED, auto_pong=False)
seeds["close_first_then_peer_close"] = conn(HELLO_MASKED + c(0x88, b"\x03\xe8"), close_first=True)
seeds["close_first_then_error"] = conn(c(0x89, b"p") + c(0x83), close_first=True)
seeds["tiny_limits"] = conn(c(0x01, b"abcd") + c(0x80, b"efgh"), max_frame=4, max_message=8)
write("server_connection", seeds)

# Client side: the peer is a server, so frames are unmasked.
client_streams = {
    "rfc_hello": HELLO,
    "rfc_hello_fragmented": HELLO_FRAGMENTED,
    "rfc_ping": PING,
    "rfc_pong": PONG,
    "rfc_256_binary": BIN256,
    "fragmented_with_controls": s(0x01, b"Hel") + s(0x89, b"p") + s(0x00, b"l") + s(0x8A) + s(0x80, b"o"),
    "close_normal": s(0x88, b"\x03\xe8bye"),
    "close_going_away_after_text": s(0x81, b"hi") + s(0x88, b"\x03\xe9"),
    "close_empty": s(0x88),
    "bad_masked": c(0x81, b"hi"),
    "bad_rsv": s(0xF1),
    "bad_reserved_opcode": s(0x83),
    "bad_unexpected_continuation": s(0x80, b"x"),
    "bad_expected_continuation": s(0x01, b"a") + s(0x81, b"b"),
    "bad_frame_too_large": s(0x82, bytes(1001)),
    "bad_utf8": s(0x81, b"\xce\xba\xff"),
    "bad_close_1_byte": s(0x88, b"\x03"),
    "bad_close_1015": s(0x88, b"\x03\xf7"),
    "bad_close_reason_utf8": s(0x88, b"\x03\xe8\xff"),
}
seeds = {name: conn(stream) for name, stream in client_streams.items()}
seeds["hello_byte_by_byte"] = conn(HELLO, splits=[1] * 7)
seeds["fragmented_split"] = conn(HELLO_FRAGMENTED, splits=[1, 4, 2])
seeds["close_first_then_peer_close"] = conn(HELLO + s(0x88, b"\x03\xe8"), close_first=True)
seeds["no_auto_pong"] = conn(PING + HELLO, auto_pong=False)
write("client_connection", seeds)


# Opening handshake: 2 limit bytes (max_head_size 16 + 16*b0, max_headers b1 % 72), then the head.
def hs(head, max_head=255, max_headers=64):
    return bytes([max_head, max_headers]) + head.replace(b"\n", b"\r\n")


RFC_REQUEST = b"""GET /chat HTTP/1.1
Host: server.example.com
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Origin: http://example.com
Sec-WebSocket-Protocol: chat, superchat
Sec-WebSocket-Version: 13

"""
CHROME = b"""GET /chat?room=1 HTTP/1.1
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
Cookie: session=8f2a1c; theme=dark
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits

"""
FIREFOX = b"""GET /ws HTTP/1.1
Host: localhost:9001
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0
Accept: */*
Accept-Language: en-US,en;q=0.5
Accept-Encoding: gzip, deflate, br
Sec-WebSocket-Version: 13
Origin: http://localhost:9001
Sec-WebSocket-Extensions: permessage-deflate
Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==
Connection: keep-alive, Upgrade
Sec-Fetch-Dest: empty
Sec-Fetch-Mode: websocket
Sec-Fetch-Site: same-origin
Pragma: no-cache
Cache-Control: no-cache
Upgrade: websocket

"""
SAFARI = b"""GET /socket HTTP/1.1
Host: example.com
Sec-WebSocket-Extensions: permessage-deflate
Sec-WebSocket-Key: E4WSEcseoWr4csPLS2QJHA==
Upgrade: websocket
Origin: https://example.com
Cache-Control: no-cache
Pragma: no-cache
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15
Connection: Upgrade
Sec-WebSocket-Version: 13

"""
write("handshake_request", {
    "rfc_1_3": hs(RFC_REQUEST),
    "chrome": hs(CHROME),
    "firefox": hs(FIREFOX),
    "safari": hs(SAFARI),
    "rfc_with_frame_after": hs(RFC_REQUEST) + HELLO_MASKED,
    "rfc_bare_lf": bytes([255, 64]) + RFC_REQUEST,
    "partial": hs(RFC_REQUEST)[:60],
    "too_large": hs(CHROME, max_head=20),
    "too_many_headers": hs(CHROME, max_headers=5),
    "post": hs(RFC_REQUEST.replace(b"GET", b"POST")),
    "http_1_0": hs(RFC_REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0")),
    "no_upgrade": hs(RFC_REQUEST.replace(b"Upgrade: websocket\n", b"")),
    "version_8": hs(RFC_REQUEST.replace(b"Version: 13", b"Version: 8")),
    "short_key": hs(RFC_REQUEST.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"dGhlIHNhbXBsZQ==")),
    "two_hosts": hs(RFC_REQUEST.replace(b"Host: server.example.com\n", b"Host: a\nHost: b\n")),
    "bad_extensions": hs(RFC_REQUEST.replace(b"Origin", b"Sec-WebSocket-Extensions: ;;\nOrigin")),
    "malformed": hs(b"GET /chat HTTP/1.1\nHo st: x\n\n"),
})

RFC_RESPONSE = b"""HTTP/1.1 101 Switching Protocols
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
Sec-WebSocket-Protocol: chat

"""
write("handshake_response", {
    "rfc_1_3": hs(RFC_RESPONSE),
    "no_protocol": hs(RFC_RESPONSE.replace(b"Sec-WebSocket-Protocol: chat\n", b"")),
    "deflate": hs(RFC_RESPONSE.replace(b"\n\n", b"\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=15\n\n")),
    "with_frame_after": hs(RFC_RESPONSE) + HELLO,
    "bare_lf": bytes([255, 64]) + RFC_RESPONSE,
    "partial": hs(RFC_RESPONSE)[:40],
    "forbidden": hs(b"HTTP/1.1 403 Forbidden\nContent-Length: 0\n\n"),
    "wrong_accept": hs(RFC_RESPONSE.replace(b"s3pP", b"AAAA")),
    "unoffered_protocol": hs(RFC_RESPONSE.replace(b"Protocol: chat", b"Protocol: mqtt")),
    "unoffered_extension": hs(RFC_RESPONSE.replace(b"\n\n", b"\nSec-WebSocket-Extensions: x-webkit-deflate-frame\n\n")),
    "no_upgrade": hs(RFC_RESPONSE.replace(b"Upgrade: websocket\n", b"")),
    "too_large": hs(RFC_RESPONSE, max_head=3),
    "malformed": hs(b"HTTP/1.1 10x Switching\n\n"),
})


# ------------------------------------------------------------------ inflate
# Prefix: byte 0 flags (bit 0 client role, bit 1 server_no_context_takeover, bit 2
# client_no_context_takeover, bit 3 framed records), byte 1 window bits (server high nibble,
# client low, each 8 + n mod 8), then a `conn` layout. Compressed bodies from RFC 7692 §7.2.3.
HELLO_Z = bytes.fromhex("f248cdc9c90700")             # "Hello", one compressed block
HELLO_Z_AGAIN = bytes.fromhex("f200110000")             # "Hello" again, with context takeover
HELLO_STORED = bytes.fromhex("000500faff48656c6c6f00")  # a stored (no compression) block
HELLO_BFINAL = bytes.fromhex("f348cdc9c90700 00".replace(" ", ""))
# 200 KiB of zeros compress to about 200 bytes: a bomb against a small max_message_size.
_z = zlib.compressobj(9, zlib.DEFLATED, -15)
ZEROS_Z = _z.compress(bytes(200 << 10)) + _z.flush(zlib.Z_SYNC_FLUSH)
ZEROS_Z = ZEROS_Z[:-4] if ZEROS_Z.endswith(b"\x00\x00\xff\xff") else ZEROS_Z


def inflate(stream, flags=0, bits=0x77, **kw):
    return bytes([flags, bits]) + conn(stream, **kw)


def records(*recs):
    """Framed records [b0, len, payload] (flags bit 3)."""
    return b"".join(bytes([b0, len(p)]) + p for b0, p in recs)


write("inflate", {
    "hello_server": inflate(c(0xC1, HELLO_Z)),
    "hello_client": inflate(s(0xC1, HELLO_Z), flags=1),
    "hello_twice_takeover": inflate(c(0xC1, HELLO_Z) + c(0xC1, HELLO_Z_AGAIN)),
    "hello_twice_reset": inflate(c(0xC1, HELLO_Z) + c(0xC1, HELLO_Z), flags=4),
    "hello_fragmented": inflate(c(0x41, HELLO_Z[:3]) + c(0x80, HELLO_Z[3:])),
    "hello_fragmented_ping": inflate(c(0x41, HELLO_Z[:3]) + c(0x89, b"p") + c(0x80, HELLO_Z[3:])),
    "hello_stored": inflate(c(0xC1, HELLO_STORED)),
    "hello_bfinal": inflate(c(0xC1, HELLO_BFINAL)),
    "hello_binary": inflate(c(0xC2, HELLO_Z)),
    "empty_compressed": inflate(c(0xC1, b"\x00")),
    "uncompressed_too": inflate(c(0x81, b"plain") + c(0xC1, HELLO_Z)),
    "rsv1_on_continuation": inflate(c(0x41, HELLO_Z[:3]) + c(0xC0, HELLO_Z[3:])),
    "rsv1_on_ping": inflate(c(0xC9, b"x")),
    "rsv2": inflate(c(0xA1, HELLO_Z)),
    "garbage": inflate(c(0xC1, b"\xff\xff\xff\xff")),
    "bad_utf8": inflate(c(0xC1, bytes.fromhex("3a3f0000"))),
    "bomb": inflate(c(0xC2, ZEROS_Z), max_message=800),
    "bomb_split": inflate(c(0xC2, ZEROS_Z), splits=(3, 7, 100, 1), max_message=2000),
    "split_bytes": inflate(c(0xC1, HELLO_Z) + c(0x88, b"\x03\xe8"), splits=(1,) * 15),
    "framed_hello": inflate(records((0xC1, HELLO_Z), (0xC1, HELLO_Z_AGAIN)), flags=8),
    "framed_client": inflate(records((0xC1, HELLO_Z), (0x88, b"\x03\xe8")), flags=9),
    "framed_window_8": inflate(records((0xC2, HELLO_STORED)), flags=8 | 2 | 4, bits=0x00),
    "round_trip": bytes([0, 0x77, 6, 0x2C]) + b"Hello, Hello, Hello,\xff\xfe binary, " + bytes(300),
})


# tls_session: byte 0 the suite (0-2 TLS 1.3, 3-4 TLS 1.2; bit 6: the client reads; top bit:
# raw handshake bytes),
# then operations (src/__fuzz/tls.rs).
def u16(n):
    return n.to_bytes(2, "big")


def send(n, a=0, b=0):
    return bytes([0]) + u16(n) + u16(a) + u16(b)


def record(kind, content, padding=0):
    return bytes([1, kind]) + u16(len(content)) + content + u16(padding)


def read(size=65535, chunk=65535):
    return bytes([4]) + u16(size) + u16(chunk)


def key_update(ask):
    return bytes([5, 1 if ask else 0])


CLOSE, FLUSH, TCP_CLOSE = bytes([6]), bytes([8]), bytes([9])


def server_sends(n):
    return bytes([7]) + u16(n)


def flip(at, x=1):
    return bytes([3]) + u16(at) + bytes([x])


def raw(data):
    return bytes([2, len(data)]) + data


TLS_RUNS = {
    "clean": send(1000, 4, 500) + read(1460, 1460) + send(16392, 8, 8) + key_update(True)
    + send(300) + server_sends(5000) + read(100, 7) + read() + CLOSE + read(),
    "small_reads": send(40000, 14, 16398) + read(1, 1) + read(3, 5) + read(17, 16389) + read(),
    "padded": record(23, b"hello", 200) + record(23, b"", 0) + record(23, b"x" * 16384)
    + record(23, b"z" * 16000, 200) + read(300, 1000) + send(10) + read(),
    "user_canceled": send(3) + record(21, b"\x01\x5a") + send(4) + read(),
    "key_updates": key_update(False) + key_update(True) + server_sends(100) + send(5)
    + key_update(True) + key_update(True) + server_sends(20000) + read(),
    "flipped": send(3000) + flip(2000) + read(),
    # The second of three records fails in a read that handed out the first: the third is
    # not kept (it was, in a cut-record buffer of 32 KiB, until the session was dropped).
    "failure_mid_read": send(16384) + send(16384) + send(16384) + flip(16500) + read(),
    # A failed reader's writes fail too, and seal nothing.
    "write_after_failure": send(3000) + flip(2000) + read() + server_sends(100) + read(),
    "raw_header": send(10) + raw(bytes([23, 3, 3, 0x48, 0x01])) + read(),
    "overflow": record(23, b"y" * 16385) + read(),
    # TLS 1.3: a zero type reads as padding, so this is application data "abc" (found by the
    # fuzzer in the harness's own model); all zeros is a record without a type.
    "zero_type": send(2) + record(0, b"abc\x17", 10) + send(3) + read(),
    "no_type": send(2) + record(0, b"\x00\x00", 3) + read(),
    "alert": send(5) + record(21, b"\x02\x28") + read() + read(),
    "handshake_message": record(22, bytes([24, 0, 0, 1, 7])) + read(),
    # A NewSessionTicket (lifetime 60 s, a 1-byte nonce, a 1-byte ticket): a client takes it.
    "ticket": send(5) + record(22, bytes([4, 0, 0, 15, 0, 0, 0, 60, 0, 0, 0, 1, 1, 7, 0, 1, 9, 0, 0]))
    + send(5) + read(),
    "after_close": send(70) + CLOSE + send(30) + read() + read(),
    # Plaintext that does not fit the caller's buffer waits in the session.
    "held": send(16384) + read(100, 65535) + read(1, 3) + read(7000, 9) + read(),
    # Records without data in a row: a session takes 32 (a client counts the record of the
    # server's session tickets among them), then fails.
    **{f"idle_{n}": record(23, b"") * n + send(5) + read() for n in (30, 31, 32, 33)},
    "idle_reset": (record(23, b"") * 20 + send(5)) * 2 + read(),
    # TLS 1.3: 16 KiB of content with 299 bytes of padding is over 2^14 + 256 bytes.
    "over_expansion": record(23, b"x" * 16384, 299) + read(),
    # TLS 1.2: a ChangeCipherSpec after the handshake.
    "change_cipher_spec": send(3) + record(20, b"\x01") + send(3) + read(),
    # The reader answers a KeyUpdate request before its next data.
    "answered": key_update(True) + read() + server_sends(5000) + send(3) + read(),
    # A KeyUpdate sealed as a plain record: the reader's keys move, the peer's do not.
    "keys_apart": send(4) + record(22, bytes([24, 0, 0, 1, 0])) + send(4) + read(),
    "data_after_key_update": record(22, bytes([24, 0, 0, 1, 0, 24, 0, 0, 1, 0])) + read(),
    # TCP closed: after whole records, and in the middle of one.
    "tcp_close": send(100) + TCP_CLOSE + send(50) + read() + read(),
    "tcp_close_mid_record": send(100) + raw(bytes([23, 3, 3, 0, 50, 1, 2])) + TCP_CLOSE + read(),
}
seeds = {}
for suite in range(5):
    for name, ops in TLS_RUNS.items():
        seeds[f"{name}_{suite}"] = bytes([suite]) + ops
        # Bit 6: the same with the client reading what the server seals.
        seeds[f"{name}_{suite}_client"] = bytes([0x40 | suite]) + ops
seeds["raw_hello_prefix"] = bytes([0x80, 0, 22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3]) + bytes(40)
seeds["raw_plain_http"] = bytes([0x80, 3]) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
write("tls_session", seeds)

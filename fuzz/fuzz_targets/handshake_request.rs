//! The server's `Request::parse` on arbitrary bytes (limits from the first two bytes);
//! properties in `rfc6455::__fuzz::check_handshake_request`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rfc6455::__fuzz::check_handshake_request(data));

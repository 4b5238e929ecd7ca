//! The client's `ClientHandshake::parse_response` on arbitrary bytes (limits from the first
//! two bytes); properties in `rfc6455::__fuzz::check_handshake_response`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rfc6455::__fuzz::check_handshake_response(data));

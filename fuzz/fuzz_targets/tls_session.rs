//! `tls::Session`'s records after a real in-memory handshake, under a peer that misbehaves;
//! input layout and properties in `rfc6455::__fuzz::check_tls_session`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rfc6455::__fuzz::check_tls_session(data));

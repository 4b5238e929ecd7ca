//! permessage-deflate: a `Connection` with deflate negotiated fed arbitrary bytes (RSV1 frames
//! of arbitrary content), and a deflate → inflate round trip of the same input; layouts and
//! properties in `rfc6455::__fuzz::{check_inflate, check_deflate_round_trip}`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rfc6455::__fuzz::check_inflate(data);
    rfc6455::__fuzz::check_deflate_round_trip(data);
});

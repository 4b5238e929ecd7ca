//! `FrameHeader::parse` on arbitrary bytes; properties in `rfc6455::__fuzz::check_frame_header`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rfc6455::__fuzz::check_frame_header(data));

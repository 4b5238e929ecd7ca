//! The UTF-8 validator and masking against their definitions (`str::from_utf8`, a byte-wise
//! XOR); layout and properties in `rfc6455::__fuzz::check_primitives`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rfc6455::__fuzz::check_primitives(data);
});

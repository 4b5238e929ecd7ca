//! A client-role `Connection` fed arbitrary bytes in arbitrary splits; input layout and
//! properties in `rfc6455::__fuzz::check_connection`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rfc6455::__fuzz::check_connection(rfc6455::Role::Client, data));

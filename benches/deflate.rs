//! permessage-deflate throughput (written in a later commit).
fn main() {}

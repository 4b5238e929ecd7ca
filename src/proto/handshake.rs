//! The opening handshake (RFC 6455 §4): to be written (issue 3).

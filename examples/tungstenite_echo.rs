//! A small thread-per-connection echo server on `tungstenite`, to try `rfc6455 load` against
//! before (or beside) this crate's own server:
//!
//! ```text
//! cargo run --release --example tungstenite_echo -- 127.0.0.1:9002
//! rfc6455 load ws://127.0.0.1:9002/ -c 10 -d 2
//! ```

use std::net::{TcpListener, TcpStream};
use tungstenite::{accept, Error, Message};

fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = accept(stream) else { return };
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return,
            Err(_) => return,
        }
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("echoing on ws://{}/", listener.local_addr()?);
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
    Ok(())
}

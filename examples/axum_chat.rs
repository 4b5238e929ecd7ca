//! A broadcast chat on axum, its WebSocket through `rfc6455::tokio::upgrade` (feature
//! `hyper`): every text message one user sends goes to every user.
//!
//! ```text
//! cargo run --example axum_chat -- 127.0.0.1:3000
//! cargo run --example tokio_client -- ws://127.0.0.1:3000/chat   # in two terminals
//! ```

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rfc6455::proto::deflate::DeflateConfig;
use rfc6455::tokio::{rejection_response, upgrade, AcceptOptions, UpgradeFuture};
use rfc6455::Message;
use tokio::sync::broadcast;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let (room, _) = broadcast::channel::<String>(1024);
    let app = Router::new().route("/chat", get(chat)).with_state(room);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("axum_chat: ws://{addr}/chat");
    axum::serve(listener, app).await
}

async fn chat(State(room): State<broadcast::Sender<String>>, mut request: Request) -> Response {
    let options = AcceptOptions::default().deflate(DeflateConfig::default());
    match upgrade(&mut request, &options) {
        Ok((response, websocket)) => {
            tokio::spawn(session(websocket, room));
            response.map(Body::new)
        }
        Err(e) => match rejection_response(&e) {
            Some(response) => response.map(Body::from),
            None => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
    }
}

async fn session(websocket: UpgradeFuture, room: broadcast::Sender<String>) {
    let Ok(ws) = websocket.await else { return };
    let (mut reader, mut writer) = ws.split();
    let mut heard = room.subscribe();
    // The writer half in a task of its own: everything said in the room goes out.
    let out = tokio::spawn(async move {
        while let Ok(text) = heard.recv().await {
            if writer.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = reader.recv().await {
        if let Some(text) = message.as_text() {
            let _ = room.send(text.to_owned());
        }
    }
    out.abort();
}

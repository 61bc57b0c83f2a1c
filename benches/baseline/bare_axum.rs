//! The baseline for `benches/scale.sh`: a minimal axum handler receiving the same POST as the
//! scaler's `/webhook/{pool}/delta` (parse the JSON body, answer 202 with JSON) and nothing
//! else. Same axum, tokio runtime and build profile as `pilum`, so the ratio measures what the
//! scaler adds: auth, validation, dedupe, rate limiting, enqueue and audit.
//!
//! `cargo run --release --example bare_axum -- <ready-file>` writes the bound address to
//! `<ready-file>`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;

async fn delta(
    Path(_pool): Path<String>,
    body: Bytes,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({"accepted": true, "delta": v["delta"]})),
        ),
        Err(_) => (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"error": "bad json"}))),
    }
}

fn main() {
    let ready = std::env::args().nth(1).expect("usage: bare_axum <ready-file>");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        std::fs::write(&ready, listener.local_addr().expect("addr").to_string())
            .expect("ready file");
        let app = Router::new().route("/webhook/{pool}/delta", post(delta));
        axum::serve(listener, app).await.expect("serve");
    });
}

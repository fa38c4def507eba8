//! `hookline listen`: a local receiver that verifies each delivery and prints it, with the
//! endpoint's `whsec_` secret (`v1,` entries) or its `whpk_` public key (`v1a,` entries).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hookline_core::signing::{verify, VerifyKey};
use time::OffsetDateTime;

/// The tolerance Standard Webhooks receivers use for the timestamp.
const TOLERANCE_SECS: i64 = 300;

pub async fn run(listen: SocketAddr, secret: &str) -> anyhow::Result<()> {
    let secret = Arc::new(
        VerifyKey::parse(secret)
            .context("--secret is neither a whsec_ secret nor a whpk_ public key")?,
    );
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(secret);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "listening on http://{} (use it as the endpoint URL); Ctrl-C stops",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn receive(
    State(secret): State<Arc<VerifyKey>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    // Standard Webhooks names first, Svix's as the fallback.
    let header = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
            .unwrap_or("")
            .to_owned()
    };
    let id = header(["webhook-id", "svix-id"]);
    let timestamp = header(["webhook-timestamp", "svix-timestamp"]);
    let signature = header(["webhook-signature", "svix-signature"]);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match verify(
        &secret,
        &id,
        &timestamp,
        &body,
        &signature,
        now,
        TOLERANCE_SECS,
    ) {
        Ok(()) => {
            let pretty = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            println!("verified {id} ({} bytes)\n{pretty}", body.len());
            StatusCode::NO_CONTENT
        }
        Err(error) => {
            println!("REJECTED {id}: {error}");
            StatusCode::UNAUTHORIZED
        }
    }
}

//! Starting and stopping the HTTP service.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{App, web};

use crate::config::Config;
use crate::engine::Engine;
use crate::http::{self, AppState};

/// Builds the HTTP server on an already bound listener, so tests can bind port 0.
pub fn build(
    engine: Arc<Engine>,
    config: &Config,
    listener: TcpListener,
) -> std::io::Result<Server> {
    if config.api_keys.is_empty() {
        tracing::warn!(
            "no API keys are configured: the API accepts unauthenticated requests, so bind it to a private address only"
        );
    }
    let state = web::Data::new(AppState {
        engine,
        api_keys: config.api_keys.clone(),
        max_body_bytes: config.max_body_bytes,
    });
    let mut server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .listen(listener)?;
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    Ok(server.run())
}

/// Reloads the rules and the model artifact on SIGHUP until the process ends.
#[cfg(unix)]
pub fn reload_on_sighup(engine: Arc<Engine>) {
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGHUP; reload with POST /admin/reload");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the rules and the model");
            let engine = engine.clone();
            // The engine logs and counts the outcome of each part itself.
            let _ = web::block(move || engine.reload()).await;
        }
    });
}

//! The HTTP API (actix-web).
//!
//! Handlers read the body themselves, so that an oversized body, a wrong content type and
//! malformed JSON all get the same JSON error shape as a validation failure. Scoring runs on
//! actix's blocking pool because the store is synchronous SQLite. A panic there becomes a 500
//! for that request and does not take a worker down.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::config::{ApiKeyConfig, Scope};
use crate::engine::Engine;
use crate::error::ApiError;

/// State shared by every handler.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub api_keys: Vec<ApiKeyConfig>,
    pub max_body_bytes: usize,
}

/// Registers every route on an actix `App`.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/v1/score", web::post().to(score))
        .route("/v1/events", web::post().to(events))
        .route("/v1/decisions/{id}", web::get().to(decision))
        .route("/v1/users/{id}", web::delete().to(erase_user))
        .route("/healthz", web::get().to(healthz))
        .route("/healthz", web::head().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/readyz", web::head().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/admin/reload", web::post().to(reload));
}

/// The response for a path or method that does not exist.
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    let error = ApiError::not_found(
        "not_found",
        format!("no endpoint `{} {}`", request.method(), request.path()),
    );
    actix_web::ResponseError::error_response(&error)
}

fn authorize(state: &AppState, request: &HttpRequest, scope: Scope) -> Result<(), ApiError> {
    if state.api_keys.is_empty() {
        return Ok(());
    }
    // The scheme name is case-insensitive (RFC 9110, section 11.1).
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key)
        .ok_or_else(|| {
            ApiError::unauthorized("missing `Authorization: Bearer <api key>` header")
        })?;
    let digest = hex::encode(Sha256::digest(presented.trim().as_bytes()));
    let key = state
        .api_keys
        .iter()
        .find(|key| key.sha256.eq_ignore_ascii_case(&digest))
        .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
    if key.scopes.contains(&scope) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "API key `{}` lacks the `{}` scope",
            key.name,
            scope_name(scope)
        )))
    }
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::Score => "score",
        Scope::Events => "events",
        Scope::Admin => "admin",
    }
}

/// Time allowed for a client to send the whole body once the headers have arrived.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a JSON body of at most `limit` bytes within [`BODY_TIMEOUT`].
async fn read_json_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        let shown = if media_type.is_empty() {
            "(none)"
        } else {
            media_type
        };
        return Err(ApiError::unsupported_media_type(shown));
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::payload_too_large(limit));
    }
    let encoding = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty() && !value.eq_ignore_ascii_case("identity"));
    if let Some(encoding) = encoding {
        return Err(ApiError {
            status: 415,
            code: "unsupported_content_encoding",
            message: format!(
                "content encoding `{}` is not supported: send the JSON body uncompressed",
                crate::request::truncate(encoding)
            ),
            field: None,
        });
    }
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| {
                ApiError::malformed(format!("cannot read the request body: {error}"), None)
            })?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::payload_too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    match actix_web::rt::time::timeout(BODY_TIMEOUT, read).await {
        Ok(result) => result,
        Err(_) => Err(ApiError {
            status: 408,
            code: "request_timeout",
            message: format!(
                "the request body did not arrive within {} seconds",
                BODY_TIMEOUT.as_secs()
            ),
            field: None,
        }),
    }
}

fn count(state: &AppState, endpoint: &str, status: u16) {
    state
        .engine
        .metrics
        .requests
        .with_label_values(&[endpoint, &status.to_string()])
        .inc();
}

/// Runs `work` on the blocking pool and turns a panic into a 500.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    match web::block(work).await {
        Ok(result) => result,
        Err(error) => {
            tracing::error!(%error, "a request handler panicked");
            Err(ApiError::internal(
                "internal error while handling the request",
            ))
        }
    }
}

fn respond<T: serde::Serialize>(
    state: &AppState,
    endpoint: &str,
    result: Result<T, ApiError>,
) -> HttpResponse {
    match result {
        Ok(body) => {
            count(state, endpoint, 200);
            HttpResponse::Ok().json(body)
        }
        Err(error) => {
            count(state, endpoint, error.status);
            // Values from the request are not logged: they may hold personal data.
            match error.status {
                500.. => {
                    tracing::warn!(endpoint, code = error.code, message = %error.message, "request failed")
                }
                401 | 403 => {
                    tracing::warn!(
                        endpoint,
                        code = error.code,
                        "request rejected: authentication"
                    )
                }
                _ => {
                    tracing::info!(endpoint, code = error.code, field = ?error.field, "request rejected")
                }
            }
            actix_web::ResponseError::error_response(&error)
        }
    }
}

/// Authorizes, reads the JSON body and runs `work` on it in the blocking pool.
async fn with_body<T, F>(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
    scope: Scope,
    endpoint: &str,
    work: F,
) -> HttpResponse
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&Engine, &[u8]) -> Result<T, ApiError> + Send + 'static,
{
    let result = async {
        authorize(&state, &request, scope)?;
        let body = read_json_body(&request, payload, state.max_body_bytes).await?;
        let engine = state.engine.clone();
        blocking(move || work(&engine, &body)).await
    }
    .await;
    respond(&state, endpoint, result)
}

/// Authorizes and runs `work` on the path's id in the blocking pool.
async fn with_id<T, F>(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    scope: Scope,
    endpoint: &str,
    work: F,
) -> HttpResponse
where
    T: serde::Serialize + Send + 'static,
    F: FnOnce(&Engine, &str) -> Result<T, ApiError> + Send + 'static,
{
    let result = async {
        authorize(&state, &request, scope)?;
        let engine = state.engine.clone();
        let id = path.into_inner();
        blocking(move || work(&engine, &id)).await
    }
    .await;
    respond(&state, endpoint, result)
}

async fn score(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    with_body(
        state,
        request,
        payload,
        Scope::Score,
        "score",
        Engine::score_bytes,
    )
    .await
}

async fn events(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    with_body(
        state,
        request,
        payload,
        Scope::Events,
        "events",
        Engine::event_bytes,
    )
    .await
}

async fn decision(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    with_id(
        state,
        request,
        path,
        Scope::Admin,
        "decisions",
        Engine::decision,
    )
    .await
}

async fn erase_user(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    with_id(
        state,
        request,
        path,
        Scope::Admin,
        "users",
        Engine::erase_user,
    )
    .await
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let engine = state.engine.clone();
    let store = blocking(move || Ok(engine.ready())).await;
    let mut body = serde_json::json!({
        "rules_version": state.engine.rules_version(),
        "model_version": state.engine.model_version(),
        "rules_reload_error": state.engine.rules_reload_error(),
        "model_reload_error": state.engine.model_reload_error(),
    });
    match store {
        Ok(Ok(())) => {
            body["status"] = "ready".into();
            HttpResponse::Ok().json(body)
        }
        Ok(Err(message)) | Err(ApiError { message, .. }) => {
            tracing::warn!(%message, "not ready: the store does not respond");
            body["status"] = "unavailable".into();
            body["store"] = message.into();
            HttpResponse::ServiceUnavailable().json(body)
        }
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.engine.render_metrics())
}

async fn reload(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let result = async {
        authorize(&state, &request, Scope::Admin)?;
        let engine = state.engine.clone();
        blocking(move || {
            engine.reload().map_err(|error| ApiError {
                status: 422,
                // When both parts were rejected, the code names the rules and the message
                // names both.
                code: if error.rules.is_some() {
                    "invalid_rules"
                } else {
                    "invalid_model"
                },
                message: error.to_string(),
                field: None,
            })
        })
        .await
    }
    .await;
    respond(&state, "reload", result)
}

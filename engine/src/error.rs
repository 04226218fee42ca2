//! Client-facing errors of the HTTP API.
//!
//! Every rejected request gets `{"error": {"code", "message", "field"}}`, where `field` is the
//! dotted path of the offending input (`keystrokes.events[3].down_ms`) or null when the problem
//! is not tied to one field.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An error returned to an API client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    /// Builds a 400 for an invalid value of `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// Builds a 400 for a required field that is absent.
    pub fn missing(field: impl Into<String>) -> Self {
        let field = field.into();
        ApiError {
            status: 400,
            code: "missing_field",
            message: format!("missing required field `{field}`"),
            field: Some(field),
        }
    }

    /// Builds a 400 for a body that is not valid JSON.
    pub fn malformed(message: impl Into<String>, field: Option<String>) -> Self {
        ApiError {
            status: 400,
            code: "malformed_json",
            message: message.into(),
            field,
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: 404,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError {
            status: 413,
            code: "payload_too_large",
            message: format!("request body is larger than the limit of {limit} bytes"),
            field: None,
        }
    }

    pub fn unsupported_media_type(found: &str) -> Self {
        ApiError {
            status: 415,
            code: "unsupported_media_type",
            message: format!("content type `{found}` is not supported: send `application/json`"),
            field: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: 401,
            code: "unauthorized",
            message: message.into(),
            field: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError {
            status: 403,
            code: "forbidden",
            message: message.into(),
            field: None,
        }
    }

    /// Builds a 500 whose message is safe to show. The cause goes to the log, not the client.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: 500,
            code: "internal_error",
            message: message.into(),
            field: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: 503,
            code: "unavailable",
            message: message.into(),
            field: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {}", field, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ApiError {}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ApiError,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody { error: self })
    }
}

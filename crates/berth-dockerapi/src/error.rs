//! Docker's error responses: a status code and `{"message": "…"}`.

use axum::Json;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// An error as the Docker API reports it.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message the CLI prints after `Error response from daemon: `.
    pub message: String,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({"message": self.message})),
        )
            .into_response()
    }
}

impl From<berth_image::Error> for ApiError {
    fn from(error: berth_image::Error) -> Self {
        use berth_image::Error::*;
        let status = match &error {
            NotFound(_) => StatusCode::NOT_FOUND,
            Invalid { what, .. } if what == "removal" => StatusCode::CONFLICT,
            Invalid { .. } | Unsafe { .. } | DigestMismatch { .. } => StatusCode::BAD_REQUEST,
            Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &error {
            Invalid { what, reason } if what == "removal" => reason.clone(),
            _ => error.to_string(),
        };
        Self::new(status, message)
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(error: berth_engine::Error) -> Self {
        match error {
            berth_engine::Error::Image(error) => error.into(),
        }
    }
}

/// Endpoints not served yet: a clear 501, never a hang.
pub(crate) async fn not_implemented(uri: Uri) -> ApiError {
    let path = uri.path();
    if let Some(version) = path.strip_prefix("/_unsupported_version/") {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "client version {version} is not supported: this daemon serves API {} to {}",
                crate::version_string(crate::MIN_API_VERSION),
                crate::version_string(crate::MAX_API_VERSION)
            ),
        );
    }
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!("berth does not implement {path} yet"),
    )
}

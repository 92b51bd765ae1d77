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

    /// A 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
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
        image_error(&error)
    }
}

fn image_error(error: &berth_image::Error) -> ApiError {
    use berth_image::Error::*;
    match error {
        NotFound(_) | RegistryMissing(_) => ApiError::new(StatusCode::NOT_FOUND, error.to_string()),
        Registry(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        RegistryDenied(_) => ApiError::new(StatusCode::UNAUTHORIZED, error.to_string()),
        // The store words its conflicts as Docker does.
        Invalid { what, reason } if what == "removal" => {
            ApiError::new(StatusCode::CONFLICT, reason.clone())
        }
        Invalid { .. } | Unsafe { .. } | DigestMismatch { .. } => {
            ApiError::new(StatusCode::BAD_REQUEST, error.to_string())
        }
        Io { .. } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

impl From<berth_engine::Error> for ApiError {
    fn from(error: berth_engine::Error) -> Self {
        use berth_engine::Error::*;
        let status = match &error {
            Image(error) => return image_error(error),
            NoSuchContainer(_) | NoSuchSandbox(_) | NoSuchVolume(_) | NoSuchExec(_)
            | NoSuchPath(_) | NoSuchNetwork(_) => StatusCode::NOT_FOUND,
            Conflict(_) => StatusCode::CONFLICT,
            Forbidden(_) => StatusCode::FORBIDDEN,
            Invalid(_) => StatusCode::BAD_REQUEST,
            Runtime(_) | Start(_) | Network(_) | Io(..) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, error.to_string())
    }
}

/// `GET /plugins/{name}/json`: Berth has no plugins.
pub(crate) async fn no_such_plugin(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> ApiError {
    let name = name.trim_end_matches("/json");
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("plugin \"{name}\" not found"),
    )
}

/// Endpoints not served yet: a clear 501, never a hang. The request body is read first,
/// so a client still sending it does not see its connection reset.
pub(crate) async fn not_implemented(uri: Uri, _body: axum::body::Bytes) -> ApiError {
    let path = uri.path();
    if let Some(version) = path.strip_prefix("/_unsupported_version/") {
        if version.matches('.').count() == 2 {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "podman API version {version} is not supported: this daemon serves libpod API {}",
                    crate::libpod::LIBPOD_API_VERSION
                ),
            );
        }
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

//! The distribution spec's errors: a code, a message and an HTTP status, answered as
//! `{"errors": [{"code", "message", "detail"}]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The spec's error codes that this registry answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The blob is not in the repository.
    BlobUnknown,
    /// The upload session does not exist.
    BlobUploadUnknown,
    /// The uploaded content does not hash to the digest given.
    DigestInvalid,
    /// A manifest refers to a blob the repository does not hold.
    ManifestBlobUnknown,
    /// The manifest cannot be parsed or is not what it says.
    ManifestInvalid,
    /// The manifest is not in the repository.
    ManifestUnknown,
    /// The repository name is not a valid one.
    NameInvalid,
    /// The repository does not exist.
    NameUnknown,
    /// The tag is not a valid one.
    TagInvalid,
    /// The request is not one the spec defines.
    Unsupported,
    /// A chunk does not start where the upload ends.
    RangeInvalid,
    /// A blob read asks for bytes the blob does not have.
    RangeNotSatisfiable,
    /// The request carries no credentials the registry takes.
    Unauthorized,
}

impl Code {
    fn name(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::TagInvalid => "TAG_INVALID",
            Self::Unsupported => "UNSUPPORTED",
            Self::RangeInvalid => "BLOB_UPLOAD_INVALID",
            Self::RangeNotSatisfiable => "RANGE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::BlobUnknown => "blob unknown to registry",
            Self::BlobUploadUnknown => "blob upload unknown to registry",
            Self::DigestInvalid => "provided digest did not match uploaded content",
            Self::ManifestBlobUnknown => "blob unknown to registry",
            Self::ManifestInvalid => "manifest invalid",
            Self::ManifestUnknown => "manifest unknown",
            Self::NameInvalid => "invalid repository name",
            Self::NameUnknown => "repository name not known to registry",
            Self::TagInvalid => "manifest tag did not match URI",
            Self::Unsupported => "The operation is unsupported.",
            Self::RangeInvalid => "blob upload invalid",
            Self::RangeNotSatisfiable => "invalid content range",
            Self::Unauthorized => "authentication required",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::BlobUnknown
            | Self::BlobUploadUnknown
            | Self::ManifestUnknown
            | Self::NameUnknown => StatusCode::NOT_FOUND,
            Self::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::RangeInvalid | Self::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A request the registry refuses, or a failure of its own.
#[derive(Debug)]
pub struct RegistryError {
    code: Option<Code>,
    detail: String,
}

impl RegistryError {
    /// The spec's error `code`, with `detail` naming what it was about.
    pub fn new(code: Code, detail: &str) -> Self {
        Self {
            code: Some(code),
            detail: detail.to_string(),
        }
    }

    /// A failure of the registry itself (its disk), logged and answered as a 500.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self {
            code: None,
            detail: error.to_string(),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let Some(code) = self.code else {
            tracing::error!(error = self.detail, "registry storage failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let body = serde_json::json!({"errors": [{
            "code": code.name(), "message": code.message(), "detail": self.detail,
        }]});
        (code.status(), axum::Json(body)).into_response()
    }
}

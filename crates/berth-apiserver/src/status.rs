//! Errors as the Kubernetes API reports them: a `Status` object with the HTTP code, a
//! reason kubectl understands (NotFound, AlreadyExists, Conflict…) and a message naming
//! the object.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed request.
#[derive(Debug)]
pub(crate) struct Status {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: serde_json::Value,
}

impl Status {
    pub(crate) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: json!({}),
        }
    }

    /// `RESOURCE "NAME" not found`.
    pub(crate) fn not_found(resource: &str, name: &str) -> Self {
        let mut status = Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} \"{name}\" not found"),
        );
        status.details = json!({"name": name, "kind": resource});
        status
    }

    /// A request that cannot be understood or is invalid.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// An object that fails validation, the field named.
    pub(crate) fn invalid(kind: &str, name: &str, message: impl Into<String>) -> Self {
        Self::invalid_fields(kind, name, &[message.into()])
    }

    /// An object `problems` (each `field: what is wrong`) make invalid, as
    /// kube-apiserver reports it: one message, and each problem as a cause of the
    /// details, which kubectl prints (`The CronTab "a" is invalid: spec.x: …`).
    pub(crate) fn invalid_fields(qualified_kind: &str, name: &str, problems: &[String]) -> Self {
        let message = match problems {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut status = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {message}"),
        );
        let causes: Option<Vec<serde_json::Value>> = problems
            .iter()
            .map(|problem| {
                let (field, message) = problem.split_once(": ")?;
                (!field.contains(char::is_whitespace)).then(
                    || json!({"reason": "FieldValueInvalid", "message": message, "field": field}),
                )
            })
            .collect();
        // Without a field for every problem, kubectl prints the message instead.
        if let Some(causes) = causes {
            let (kind, group) = qualified_kind
                .split_once('.')
                .unwrap_or((qualified_kind, ""));
            status.details = json!({"name": name, "group": group, "kind": kind, "causes": causes});
        }
        status
    }

    /// The same status with `details` (name, group, kind, causes).
    pub(crate) fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// Whether this is a 409 Conflict (a stale revision), not an AlreadyExists.
    pub(crate) fn is_conflict(&self) -> bool {
        self.reason == "Conflict"
    }

    /// Whether this is a 404.
    pub(crate) fn is_not_found(&self) -> bool {
        self.code == StatusCode::NOT_FOUND
    }

    /// The HTTP code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> StatusCode {
        self.code
    }

    /// What the client is told.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The store's error about `resource` `name`.
    pub(crate) fn from_store(error: berth_store::Error, resource: &str, name: &str) -> Self {
        match error {
            berth_store::Error::NotFound(_) => Self::not_found(resource, name),
            berth_store::Error::Exists(_) => Self::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{resource} \"{name}\" already exists"),
            ),
            berth_store::Error::Conflict { .. } => Self::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            ),
            berth_store::Error::Compacted { .. } => Self::new(
                StatusCode::GONE,
                "Expired",
                "too old resource version".to_string(),
            ),
            berth_store::Error::Backend(message) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
            }
        }
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code.as_u16(),
        });
        (self.code, Json(body)).into_response()
    }
}

//! Errors of the HTTP API as RFC 9457 problem details
//! (`application/problem+json`), each carrying the SMPP status an SMPP
//! client would have been answered, so both sides of an account share one
//! error vocabulary (and one set of alerts).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tern_codec::CommandStatus;

/// One refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub detail: String,
    /// The SMPP status of the same refusal.
    pub smpp: CommandStatus,
    /// The request field at fault (400), by its JSON name.
    pub field: Option<String>,
    /// Seconds before trying again (429, 503).
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem with no field and no wait.
    pub fn new(status: StatusCode, smpp: CommandStatus, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            smpp,
            field: None,
            retry_after: None,
        }
    }

    /// 400 for `field`, with the SMPP status of that field's fault.
    pub fn field(field: &str, smpp: CommandStatus, detail: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, smpp, detail)
        }
    }

    /// The answer to a submit Tern refused with SMPP status `smpp` (what
    /// intake would have answered an SMPP client): 429 throttled, 503 for
    /// a full store (temporary), 500 for a store failure, else 400 on the
    /// destination, the one field routing and number checks look at.
    pub fn refused(smpp: CommandStatus) -> Self {
        let name = smpp.name().unwrap_or("a vendor status");
        match smpp {
            CommandStatus::Throttled => Self {
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    smpp,
                    "over the account's rate",
                )
            },
            CommandStatus::MessageQueueFull => Self {
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    smpp,
                    "Tern cannot store more now; try again later",
                )
            },
            CommandStatus::SystemError => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                smpp,
                "the store refused the message",
            ),
            _ => Self::field("to", smpp, format!("refused as {name}")),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "smpp_status": self.smpp.name(),
            "smpp_code": self.smpp.code(),
            "field": self.field,
        })
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tern\", Basic realm=\"tern\""),
            );
        }
        response
    }
}

/// Any path the API does not have.
pub async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        CommandStatus::InvalidCommandId,
        "no such route; see /v1/openapi.json",
    )
}

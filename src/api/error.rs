//! The API's errors: a status and one line saying why, as
//! `{"error": "..."}`. Bad input is a 4xx; the API never answers 500 for
//! what a caller sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::model::ErrorBody;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl AsRef<str>) -> ApiError {
        // One line, whatever the reason's source printed.
        let error = reason
            .as_ref()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        ApiError {
            status,
            body: ErrorBody {
                error,
                leader: None,
            },
        }
    }

    pub fn bad_request(reason: impl AsRef<str>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn not_found(reason: impl AsRef<str>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason)
    }

    pub fn unauthorized(reason: impl AsRef<str>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, reason)
    }

    pub fn forbidden(reason: impl AsRef<str>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, reason)
    }

    /// The operation is illegal for the topology as it is (the plan
    /// layer's refusal).
    pub fn refused(reason: impl AsRef<str>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, reason)
    }

    pub fn unavailable(reason: impl AsRef<str>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }

    /// A follower that cannot pass an operation on: 503 naming the
    /// leader.
    pub fn not_leader(leader: Option<String>) -> ApiError {
        let mut e = ApiError::unavailable(match &leader {
            Some(l) => format!("this orca does not lead; ask the leader, {l}"),
            None => "this orca does not lead and no leader is known yet".to_string(),
        });
        e.body.leader = leader;
        e
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.body.error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut r = (self.status, Json(self.body)).into_response();
        if unauthorized {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

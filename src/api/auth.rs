//! Who may do what through the API. Mutating calls need a bearer token;
//! reads too, unless they were opened by a setting. Outside Kubernetes
//! the token is one a file holds ([`StaticToken`]); in Kubernetes it is
//! checked with a TokenReview and the caller's right with a
//! SubjectAccessReview ([`crate::k8s::api_auth`]). The caller's identity
//! goes into the audit.

use std::future::Future;
use std::pin::Pin;

use super::error::ApiError;
use super::model::ClusterId;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a request asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A read: of one cluster, or of all (`None`).
    Read(Option<ClusterId>),
    Operate(ClusterId),
}

/// Who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
}

pub trait Authorizer: Send + Sync {
    fn authorize(
        &self,
        token: Option<String>,
        access: Access,
    ) -> BoxFuture<Result<Caller, ApiError>>;
}

/// A token from a file: whoever presents it may do everything.
pub struct StaticToken {
    token: Option<String>,
    open_reads: bool,
}

/// Never shows the token.
impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticToken")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

impl StaticToken {
    /// `token` empty or absent: no operation is taken.
    pub fn new(token: Option<String>, open_reads: bool) -> StaticToken {
        StaticToken {
            token: token.filter(|t| !t.is_empty()),
            open_reads,
        }
    }

    /// Reads the token from the first line of a file.
    pub fn from_file(
        path: Option<&std::path::Path>,
        open_reads: bool,
    ) -> Result<StaticToken, String> {
        let token = match path {
            None => None,
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read the API token file {}: {e}", p.display()))?;
                let t = text.lines().next().unwrap_or_default().trim().to_string();
                if t.len() < 16 {
                    return Err(format!(
                        "the API token in {} is shorter than 16 characters",
                        p.display()
                    ));
                }
                Some(t)
            }
        };
        Ok(StaticToken::new(token, open_reads))
    }

    pub fn check(&self, token: Option<&str>, access: &Access) -> Result<Caller, ApiError> {
        if matches!(access, Access::Read(_)) && self.open_reads {
            return Ok(Caller {
                name: "anonymous".into(),
            });
        }
        let Some(expected) = &self.token else {
            return Err(ApiError::forbidden(match access {
                Access::Read(_) => {
                    "reads need a token and this orca has none: start it with --api-token-file, or open reads with --api-open-reads"
                }
                Access::Operate(_) => {
                    "this orca takes no operations through the API: start it with --api-token-file"
                }
            }));
        };
        let Some(given) = token else {
            return Err(ApiError::unauthorized(
                "a bearer token is needed (Authorization: Bearer TOKEN)",
            ));
        };
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(Caller {
                name: "token".into(),
            })
        } else {
            Err(ApiError::forbidden("the bearer token is not this orca's"))
        }
    }
}

impl Authorizer for StaticToken {
    fn authorize(
        &self,
        token: Option<String>,
        access: Access,
    ) -> BoxFuture<Result<Caller, ApiError>> {
        let r = self.check(token.as_deref(), &access);
        Box::pin(async move { r })
    }
}

/// Compares without stopping at the first byte that differs.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn who_may_do_what() {
        let op = Access::Operate(ClusterId::new("ns", "c"));
        let t = StaticToken::new(Some("s3cret-token-abcdef".into()), false);
        // (token, access, status or ok)
        let table: [(Option<&str>, &Access, Option<StatusCode>); 6] = [
            (Some("s3cret-token-abcdef"), &op, None),
            (Some("s3cret-token-abcdef"), &Access::Read(None), None),
            (None, &op, Some(StatusCode::UNAUTHORIZED)),
            (None, &Access::Read(None), Some(StatusCode::UNAUTHORIZED)),
            (
                Some("s3cret-token-abcdeF"),
                &op,
                Some(StatusCode::FORBIDDEN),
            ),
            (Some("short"), &op, Some(StatusCode::FORBIDDEN)),
        ];
        for (token, access, want) in table {
            let got = t.check(token, access);
            assert_eq!(
                got.as_ref().err().map(|e| e.status),
                want,
                "{token:?} {access:?}"
            );
        }
        let open = StaticToken::new(None, true);
        assert!(open.check(None, &Access::Read(None)).is_ok());
        let e = open.check(None, &op).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.body.error.contains("--api-token-file"), "{e}");
        let closed = StaticToken::new(Some(String::new()), false);
        assert_eq!(
            closed.check(None, &Access::Read(None)).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn a_short_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "abc\n").unwrap();
        assert!(
            StaticToken::from_file(Some(&p), false)
                .unwrap_err()
                .contains("shorter")
        );
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        let t = StaticToken::from_file(Some(&p), false).unwrap();
        assert!(
            t.check(Some("0123456789abcdef0123"), &Access::Read(None))
                .is_ok()
        );
        assert!(StaticToken::from_file(Some(&dir.path().join("none")), false).is_err());
    }
}

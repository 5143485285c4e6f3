//! The operator's side of the agent: its state, the arming of a
//! re-provisioning, the forgetting of a copy's result. Every call is
//! bounded (connect and whole request).

use std::time::Duration;

use serde_json::json;

use super::{AgentError, AgentState, Arming};

/// A client of the agents of one cluster (one token).
#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    token: String,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient").finish_non_exhaustive()
    }
}

/// Every call's limit.
pub const CALL_LIMIT: Duration = Duration::from_secs(3);

impl AgentClient {
    pub fn new(token: impl Into<String>) -> Result<AgentClient, AgentError> {
        let http = super::http_builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(CALL_LIMIT)
            .build()
            .map_err(|e| AgentError::Config(format!("an HTTP client: {e}")))?;
        Ok(AgentClient {
            http,
            token: token.into(),
        })
    }

    fn failed(at: &str, why: impl std::fmt::Display) -> AgentError {
        AgentError::Call {
            at: at.to_string(),
            why: why.to_string(),
        }
    }

    async fn check(at: &str, resp: reqwest::Response) -> Result<reqwest::Response, AgentError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        Err(Self::failed(at, format!("{status}: {}", text.trim())))
    }

    /// Sends `req` (with the token) and decodes the answer.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        at: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, AgentError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Self::failed(at, e))?;
        Self::check(at, resp)
            .await?
            .json()
            .await
            .map_err(|e| Self::failed(at, e))
    }

    /// `at` is `host:port`.
    pub async fn state(&self, at: &str) -> Result<AgentState, AgentError> {
        self.call(at, self.http.get(format!("http://{at}/v1/state")))
            .await
    }

    /// Arms the re-provisioning of the pod at `at` from `sources` (agent
    /// addresses, best first).
    pub async fn arm(
        &self,
        at: &str,
        id: &str,
        sources: &[String],
        timeout: Duration,
    ) -> Result<Arming, AgentError> {
        let body =
            json!({ "id": id, "sources": sources, "timeoutSeconds": timeout.as_secs().max(1) });
        let req = self
            .http
            .post(format!("http://{at}/v1/reprovision"))
            .json(&body);
        self.call(at, req).await
    }

    /// Forgets the result of copy `id` (the replica joined from it).
    pub async fn forget_copy(&self, at: &str, id: &str) -> Result<(), AgentError> {
        let resp = self
            .http
            .delete(format!("http://{at}/v1/provisioned"))
            .query(&[("id", id)])
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| Self::failed(at, e))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        Self::check(at, resp).await.map(|_| ())
    }

    /// Saves the server's events after `after` (its tail, `gtids`) in
    /// its data directory, under `id`.
    pub async fn save_tail(
        &self,
        at: &str,
        id: &str,
        after: &str,
        gtids: &str,
    ) -> Result<super::tail::Tail, AgentError> {
        self.call(
            at,
            self.http
                .post(format!("http://{at}/v1/save-tail"))
                .timeout(std::time::Duration::from_secs(130))
                .json(&json!({ "id": id, "after": after, "gtids": gtids })),
        )
        .await
    }
}

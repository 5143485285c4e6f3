//! A cluster's FailoverPolicy, resolved: the explicit reference, else the
//! policy named `default` in the namespace, else built-in defaults; turned
//! into engine settings, promotion rules (the policy's, overridden by pod
//! annotations) and hooks (webhooks, and Jobs created from a template).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::annotations;
use super::crd::cluster::MySQLCluster;
use super::crd::policy::{FailoverPolicy, FailoverPolicySpec, Hook};
use super::worker::PodView;
use crate::engine::ClusterEngine;
use crate::engine::hooks::{ExternalHook, HookPayload, HookTarget, Hooks};
use crate::plan::HookEvent;
use crate::plan::candidate::PromotionRule;

/// The policy in force for one cluster.
#[derive(Debug, Clone)]
pub struct ResolvedPolicy {
    pub name: Option<String>,
    pub spec: FailoverPolicySpec,
    pub hooks: Hooks,
}

/// Resolves the policy of `cluster` (`found` is the referenced policy, or
/// the namespace's `default`, if it exists).
pub fn resolve(
    cluster: &MySQLCluster,
    found: Option<&FailoverPolicy>,
    client: Client,
    namespace: &str,
) -> ResolvedPolicy {
    let spec = found.map(|p| p.spec.clone()).unwrap_or_default();
    let mut hooks = Hooks::default();
    for e in HookEvent::ALL {
        for h in spec.hooks.for_event(e) {
            if let Some(t) = hook_target(h, &client, namespace, &cluster.name_any()) {
                hooks.add(e, t);
            }
        }
    }
    ResolvedPolicy {
        name: found.map(|p| p.name_any()),
        spec,
        hooks,
    }
}

fn hook_target(h: &Hook, client: &Client, namespace: &str, cluster: &str) -> Option<HookTarget> {
    if let Some(w) = &h.webhook {
        let timeout = w.timeout().unwrap_or(Duration::from_secs(10));
        return Some(HookTarget::Webhook {
            url: w.url.clone(),
            timeout,
        });
    }
    h.job.as_ref().map(|j| {
        HookTarget::External(Arc::new(JobHook {
            client: client.clone(),
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
            template: serde_json::to_value(&j.template).unwrap_or_default(),
            timeout: Duration::from_secs(300),
        }))
    })
}

impl ResolvedPolicy {
    /// Puts the policy into the engine: automatic failover, anti-flap
    /// period, probe interval, candidate lag, relay-log timeout, promotion
    /// rules by pod address, hooks.
    pub fn apply(&self, engine: &mut ClusterEngine, pods: &[PodView]) {
        let s = &self.spec;
        let c = &mut engine.config;
        c.auto_recover = s.auto_failover;
        if let Ok(d) = s.anti_flap_period() {
            c.anti_flap = d;
        }
        if let Ok(d) = s.probe_interval() {
            c.probe_interval = d.max(Duration::from_millis(100));
        }
        if let Ok(d) = s.max_candidate_lag() {
            c.recovery.candidate.max_lag_ms = Some(d.as_millis() as u64);
        }
        if let Ok(d) = s.relay_log_apply_timeout() {
            c.recovery.relay_apply_timeout = d;
        }
        let mut rules = BTreeMap::new();
        for p in pods {
            let Some(k) = &p.key else { continue };
            let from_policy = s.promotion_rule_for(&p.name);
            let rule = match annotations::promotion_rule(&p.annotations) {
                Ok(Some(r)) => r,
                _ => from_policy,
            };
            if rule != PromotionRule::Neutral {
                rules.insert(k.clone(), rule);
            }
        }
        c.recovery.candidate.rules = rules;
        engine.executor.hooks = self.hooks.clone();
    }
}

/// A hook run as a Kubernetes Job from the policy's template, with the
/// payload as `ORCA_*` environment variables and `ORCA_PAYLOAD` (JSON); it
/// succeeds when the Job completes, fails (and vetoes) when it fails or
/// does not finish in time.
pub struct JobHook {
    client: Client,
    namespace: String,
    cluster: String,
    template: serde_json::Value,
    timeout: Duration,
}

impl std::fmt::Debug for JobHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHook")
            .field("namespace", &self.namespace)
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl JobHook {
    async fn run_job(&self, payload: &HookPayload) -> Result<(), String> {
        let api: Api<Job> = Api::namespaced(self.client.clone(), &self.namespace);
        let opt = |k: &Option<crate::topology::InstanceKey>| {
            k.as_ref().map(|k| k.to_string()).unwrap_or_default()
        };
        let env = json!([
            { "name": "ORCA_EVENT", "value": payload.event.name() },
            { "name": "ORCA_CLUSTER", "value": payload.cluster },
            { "name": "ORCA_FAILURE_TYPE", "value": payload.failure_type },
            { "name": "ORCA_FAILED", "value": opt(&payload.failed) },
            { "name": "ORCA_SUCCESSOR", "value": opt(&payload.successor) },
            { "name": "ORCA_LOST_REPLICAS", "value": payload.lost_replicas.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(",") },
            { "name": "ORCA_RECOVERY_ID", "value": payload.recovery_id },
            { "name": "ORCA_PAYLOAD", "value": serde_json::to_string(payload).unwrap_or_default() },
        ]);
        let mut spec = self
            .template
            .get("spec")
            .cloned()
            .unwrap_or_else(|| json!({}));
        if let Some(containers) = spec
            .pointer_mut("/template/spec/containers")
            .and_then(|c| c.as_array_mut())
        {
            for c in containers {
                let mut all = c
                    .get("env")
                    .and_then(|e| e.as_array())
                    .cloned()
                    .unwrap_or_default();
                all.extend(env.as_array().cloned().unwrap_or_default());
                c["env"] = json!(all);
            }
        }
        if spec.pointer("/template/spec/restartPolicy").is_none()
            && let Some(t) = spec.pointer_mut("/template/spec")
        {
            t["restartPolicy"] = json!("Never");
        }
        let mut labels = self
            .template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        labels["orca.dev/cluster"] = json!(self.cluster);
        labels["orca.dev/hook"] = json!(payload.event.name());
        let job: Job = serde_json::from_value(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "generateName": format!("{}-{}-", self.cluster, payload.event.name().to_ascii_lowercase()),
                "namespace": self.namespace,
                "labels": labels,
            },
            "spec": spec,
        }))
        .map_err(|e| format!("the Job template: {e}"))?;
        let created = api
            .create(&PostParams::default(), &job)
            .await
            .map_err(|e| e.to_string())?;
        let name = created.name_any();
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let j = api.get(&name).await.map_err(|e| e.to_string())?;
            let conds = j
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            if conds
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
            {
                return Ok(());
            }
            if conds
                .iter()
                .any(|c| c.type_ == "Failed" && c.status == "True")
            {
                return Err(format!("Job {name} failed"));
            }
            if tokio::time::Instant::now() >= deadline {
                // Mark it, so that nobody mistakes it for one still counted.
                let _ = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(json!({ "metadata": { "annotations": { "orca.dev/hook-timed-out": "true" } } })))
                    .await;
                return Err(format!(
                    "Job {name} did not finish within {:?}",
                    self.timeout
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl ExternalHook for JobHook {
    fn describe(&self) -> String {
        format!("job in {}", self.namespace)
    }

    fn run<'a>(
        &'a self,
        payload: &'a HookPayload,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.run_job(payload))
    }
}

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

/// The policy a cluster names: `spec.failoverPolicyRef` (explicit), else
/// the namespace's `default` (implicit).
pub fn policy_name(cluster: &MySQLCluster) -> (String, bool) {
    match &cluster.spec.failover_policy_ref {
        Some(name) => (name.clone(), true),
        None => ("default".into(), false),
    }
}

/// What one read of a cluster's FailoverPolicy means: the policy
/// (`Ok(Some)`), the built-in defaults (`Ok(None)`: no `default` policy in
/// the namespace, and none named), or nothing at all (`Err`, why).
///
/// Only a policy known not to exist means the defaults (automatic
/// failover on, no hooks that could veto). A read that failed (forbidden,
/// a server error, a timeout, an object orca cannot decode) says nothing
/// about the policy, and neither does a `failoverPolicyRef` that names a
/// policy that does not exist (a typo, a policy deleted or not yet
/// created): the worker then takes no action until a read succeeds.
pub fn read_outcome(
    name: &str,
    explicit: bool,
    read: Result<FailoverPolicy, kube::Error>,
) -> Result<Option<FailoverPolicy>, String> {
    match read {
        Ok(p) => Ok(Some(p)),
        Err(kube::Error::Api(s)) if s.is_not_found() && !explicit => Ok(None),
        Err(kube::Error::Api(s)) if s.is_not_found() => Err(format!(
            "the FailoverPolicy {name} named by spec.failoverPolicyRef does not exist"
        )),
        Err(kube::Error::Api(s)) => Err(format!(
            "the FailoverPolicy {name} cannot be read: the API server answered {} {}: {}",
            s.code, s.reason, s.message
        )),
        // A decoding error quotes the value it could not read: the
        // policy's strings (a webhook URL may carry a token) stay out.
        Err(kube::Error::SerdeError(e)) => Err(format!(
            "the FailoverPolicy {name} cannot be decoded: {}",
            withhold_quoted(&e.to_string())
        )),
        Err(e) => Err(format!("the FailoverPolicy {name} cannot be read: {e}")),
    }
}

/// What a read of the policy from the watch cache means, as
/// [`read_outcome`] says of a read from the API server: `found` is the
/// cached policy (`Ok(None)`: not in the cache), or why the cache cannot
/// be trusted (not listed yet, its watch failing), which is an error,
/// never the defaults.
pub fn cached_outcome(
    name: &str,
    explicit: bool,
    found: Result<Option<FailoverPolicy>, String>,
) -> Result<Option<FailoverPolicy>, String> {
    match found {
        Ok(Some(p)) => Ok(Some(p)),
        Ok(None) if !explicit => Ok(None),
        Ok(None) => Err(format!(
            "the FailoverPolicy {name} named by spec.failoverPolicyRef does not exist"
        )),
        // A watch's decoding error may quote the policy's strings.
        Err(why) => Err(format!(
            "the FailoverPolicy {name} cannot be read: {}",
            withhold_quoted(&why)
        )),
    }
}

/// `text` with whatever stands between double quotes withheld.
fn withhold_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…");
            }
            quoted = !quoted;
            if !quoted {
                out.push('"');
            }
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// The promotion rule of one pod: must_not when any of its orca
/// annotations is malformed (a promotion rule or a downtime orca cannot
/// read: the most restrictive reading of what a person meant, never "no
/// annotation"), else its `orca.dev/promotion-rule` annotation, else the
/// policy's entry for it.
pub fn pod_rule(from_policy: PromotionRule, pod: &BTreeMap<String, String>) -> PromotionRule {
    if !annotations::pod_problems(pod).is_empty() {
        return PromotionRule::MustNot;
    }
    match annotations::promotion_rule(pod) {
        Ok(Some(r)) => r,
        _ => from_policy,
    }
}

/// The malformed orca annotations of each pod, by pod name.
pub fn invalid_annotations(pods: &[PodView]) -> Vec<(String, annotations::Malformed)> {
    pods.iter()
        .flat_map(|p| {
            annotations::pod_problems(&p.annotations)
                .into_iter()
                .map(|m| (p.name.clone(), m))
        })
        .collect()
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
            let rule = pod_rule(s.promotion_rule_for(&p.name), &p.annotations);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::annotations::tests::ann;
    use crate::k8s::crd::names::annotation;
    use kube::core::Status;

    #[test]
    fn a_pod_rule_from_annotations_and_policy() {
        use PromotionRule::*;
        let rule = annotation::PROMOTION_RULE;
        let down = annotation::DOWNTIME;
        // (policy's rule, annotations, rule in force)
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(PromotionRule, Pairs, PromotionRule)] = &[
            (Neutral, &[], Neutral),
            (Prefer, &[], Prefer),
            (Prefer, &[(rule, "prefer_not")], PreferNot),
            (MustNot, &[(rule, "prefer")], Prefer),
            (Neutral, &[(down, "2030-01-01T00:00:00Z")], Neutral),
            // A typo is the most restrictive reading, never "no annotation"
            // (which would leave the policy's rule, or neutral).
            (Neutral, &[(rule, "must-not")], MustNot),
            (Prefer, &[(rule, "must-not")], MustNot),
            (Prefer, &[(rule, "Prefer")], MustNot),
            (Neutral, &[(rule, "")], MustNot),
            // A downtime orca cannot read: not promotable either.
            (Prefer, &[(down, "tomorrow")], MustNot),
            (
                Neutral,
                &[(rule, "prefer"), (down, "2030-02-30T00:00:00Z")],
                MustNot,
            ),
        ];
        for (policy, pairs, want) in cases {
            assert_eq!(pod_rule(*policy, &ann(pairs)), *want, "{policy} {pairs:?}");
        }
    }

    fn pod(name: &str, pairs: &[(&str, &str)]) -> PodView {
        PodView {
            name: name.into(),
            ordinal: None,
            key: Some(crate::topology::InstanceKey::new(
                format!("10.0.0.{}", name.len()),
                3306,
            )),
            ready: true,
            deleting: false,
            restarting: false,
            role_label: None,
            annotations: ann(pairs),
            facts: Default::default(),
        }
    }

    #[test]
    fn malformed_annotations_by_pod() {
        let pods = [
            pod("db-0", &[]),
            pod("db-1", &[(annotation::PROMOTION_RULE, "must-not")]),
            pod("db-2", &[(annotation::PROMOTION_RULE, "prefer")]),
            pod(
                "db-3",
                &[
                    (annotation::DOWNTIME, "later"),
                    (annotation::PROMOTION_RULE, "x"),
                ],
            ),
        ];
        let got: Vec<(String, String, String)> = invalid_annotations(&pods)
            .into_iter()
            .map(|(p, m)| (p, m.annotation, m.value))
            .collect();
        let own = |p: &str, a: &str, v: &str| (p.to_string(), a.to_string(), v.to_string());
        assert_eq!(
            got,
            vec![
                own("db-1", annotation::PROMOTION_RULE, "must-not"),
                own("db-3", annotation::DOWNTIME, "later"),
                own("db-3", annotation::PROMOTION_RULE, "x"),
            ]
        );
    }

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            Status::failure("the server says so", reason).with_code(code),
        ))
    }

    #[test]
    fn what_a_policy_read_means() {
        let policy = || Ok(FailoverPolicy::new("p", FailoverPolicySpec::default()));
        let undecodable = || {
            let e = serde_json::from_str::<FailoverPolicy>(
                r#"{"apiVersion":"orca.dev/v1alpha1","kind":"FailoverPolicy","metadata":{"name":"p"},"spec":{"autoFailover":"https://hooks.example/T0KEN"}}"#,
            )
            .unwrap_err();
            Err(kube::Error::SerdeError(e))
        };
        let timeout = || {
            Err(kube::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ))))
        };
        type Read = fn() -> Result<FailoverPolicy, kube::Error>;
        // (read, explicit reference, found / defaults / unreadable, in the why)
        let cases: &[(Read, bool, &str, &str)] = &[
            (policy, false, "found", ""),
            (policy, true, "found", ""),
            (|| Err(api(404, "NotFound")), false, "defaults", ""),
            (
                || Err(api(404, "NotFound")),
                true,
                "unreadable",
                "does not exist",
            ),
            (
                || Err(api(403, "Forbidden")),
                false,
                "unreadable",
                "403 Forbidden",
            ),
            (
                || Err(api(500, "InternalError")),
                false,
                "unreadable",
                "500",
            ),
            (
                || Err(api(503, "ServiceUnavailable")),
                true,
                "unreadable",
                "503",
            ),
            (
                || Err(api(429, "TooManyRequests")),
                false,
                "unreadable",
                "429",
            ),
            (timeout, false, "unreadable", "timed out"),
            (undecodable, false, "unreadable", "cannot be decoded"),
        ];
        for (i, (read, explicit, want, why)) in cases.iter().enumerate() {
            let got = read_outcome("p", *explicit, read());
            check_outcome(i, got, want, why);
        }
    }

    /// One case of a policy read's outcome: found, defaults or unreadable,
    /// and an unreadable one names the policy and why, never a value.
    fn check_outcome(i: usize, got: Result<Option<FailoverPolicy>, String>, want: &str, why: &str) {
        let kind = match &got {
            Ok(Some(_)) => "found",
            Ok(None) => "defaults",
            Err(_) => "unreadable",
        };
        assert_eq!(kind, want, "case {i}: {got:?}");
        if let Err(e) = got {
            assert!(e.contains(why), "case {i}: {e}");
            assert!(e.contains("FailoverPolicy p"), "case {i}: {e}");
            assert!(!e.contains("T0KEN"), "case {i}: {e}");
        }
    }

    #[test]
    fn what_a_cached_policy_means() {
        let p = || {
            Ok(Some(FailoverPolicy::new(
                "p",
                FailoverPolicySpec::default(),
            )))
        };
        type Found = fn() -> Result<Option<FailoverPolicy>, String>;
        // (cache answer, explicit reference, found / defaults / unreadable, in the why)
        let cases: &[(Found, bool, &str, &str)] = &[
            (p, false, "found", ""),
            (p, true, "found", ""),
            (|| Ok(None), false, "defaults", ""),
            (|| Ok(None), true, "unreadable", "does not exist"),
            (
                || Err("the watch cache of FailoverPolicies is not ready yet".into()),
                false,
                "unreadable",
                "not ready",
            ),
            (
                || Err("the watch cache of FailoverPolicies is not ready yet".into()),
                true,
                "unreadable",
                "not ready",
            ),
            (
                || {
                    Err(
                        r#"the list of FailoverPolicies fails: invalid type: string "T0KEN""#
                            .into(),
                    )
                },
                false,
                "unreadable",
                "fails",
            ),
        ];
        for (i, (found, explicit, want, why)) in cases.iter().enumerate() {
            let got = cached_outcome("p", *explicit, found());
            check_outcome(i, got, want, why);
        }
    }

    #[test]
    fn quoted_values_are_withheld() {
        assert_eq!(
            withhold_quoted(r#"invalid type: string "s3cret", expected a boolean at line 1"#),
            r#"invalid type: string "…", expected a boolean at line 1"#
        );
        assert_eq!(withhold_quoted("no quotes"), "no quotes");
        assert_eq!(withhold_quoted(r#"open "unterminated"#), r#"open "…"#);
    }
}

//! The `FailoverPolicy` custom resource: how orca detects failures and
//! recovers from them, shared by any number of `MySQLCluster`s in its
//! namespace through `spec.failoverPolicyRef`.

use std::time::Duration;

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CrdError;
use super::checks::Problems;
use super::duration::{DURATION_PATTERN, parse_duration};
use super::schema::preserve_unknown_object;
/// The core's vocabulary, used as is: the schema of a rule is derived from
/// the core type, and names are parsed in one place.
pub use crate::plan::{HookEvent, PromotionRule};

/// The most hooks one event may have.
pub const MAX_HOOKS_PER_EVENT: usize = 16;

/// How orca detects failures and recovers from them.
// Several `printcolumn(...)` share a `type_`: not a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "orca.dev",
    version = "v1alpha1",
    kind = "FailoverPolicy",
    plural = "failoverpolicies",
    singular = "failoverpolicy",
    shortname = "fp",
    category = "orca",
    namespaced,
    status = "FailoverPolicyStatus",
    derive = "PartialEq",
    doc = "How orca detects failures of MySQLClusters and recovers from them.",
    printcolumn(
        name = "Auto",
        type_ = "boolean",
        json_path = ".spec.autoFailover",
        description = "Whether orca fails over on its own"
    ),
    printcolumn(
        name = "AntiFlap",
        type_ = "string",
        json_path = ".spec.antiFlapPeriod",
        description = "Least time between two automatic recoveries of a cluster"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct FailoverPolicySpec {
    /// Whether orca recovers a dead primary or intermediate primary on its
    /// own. When false, failures are reported and a person asks for the
    /// recovery with the `orca.dev/recover` annotation.
    #[serde(default = "default_true")]
    pub auto_failover: bool,

    /// Least time between two automatic recoveries of the same cluster
    /// (orchestrator's RecoveryPeriodBlockSeconds). An `orca.dev/acknowledge`
    /// annotation lifts the block early; requests by people ignore it.
    #[serde(default = "default_anti_flap_period")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub anti_flap_period: String,

    /// When an instance counts as failed.
    #[serde(default)]
    pub detection: DetectionSpec,

    /// A replica lagging more than this is not promoted automatically.
    #[serde(default = "default_max_candidate_lag")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub max_candidate_lag: String,

    /// How long a promotion waits for the candidate to apply its relay log
    /// before giving up.
    #[serde(default = "default_relay_log_apply_timeout")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub relay_log_apply_timeout: String,

    /// Promotion rules per pod. A pod's `orca.dev/promotion-rule` annotation
    /// takes precedence over its entry here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["pod"]))]
    pub promotion_rules: Vec<PodPromotionRule>,

    /// Hooks run on recovery and takeover events.
    #[serde(default, skip_serializing_if = "HooksSpec::is_empty")]
    pub hooks: HooksSpec,
}

fn default_true() -> bool {
    true
}
fn default_anti_flap_period() -> String {
    "1h".to_string()
}
fn default_max_candidate_lag() -> String {
    "10s".to_string()
}
fn default_relay_log_apply_timeout() -> String {
    "30s".to_string()
}
fn default_probe_interval() -> String {
    "1s".to_string()
}
fn default_failure_threshold() -> i32 {
    1
}
fn default_webhook_timeout() -> String {
    "10s".to_string()
}

impl Default for FailoverPolicySpec {
    /// The policy orca applies to a cluster without `failoverPolicyRef`.
    fn default() -> Self {
        FailoverPolicySpec {
            auto_failover: true,
            anti_flap_period: default_anti_flap_period(),
            detection: DetectionSpec::default(),
            max_candidate_lag: default_max_candidate_lag(),
            relay_log_apply_timeout: default_relay_log_apply_timeout(),
            promotion_rules: Vec::new(),
            hooks: HooksSpec::default(),
        }
    }
}

/// When an instance counts as failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetectionSpec {
    /// Time between two probes of an instance.
    #[serde(default = "default_probe_interval")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub probe_interval: String,

    /// Consecutive failed probes after which an instance is unreachable.
    /// A primary is dead only when its replicas also lose it.
    #[serde(default = "default_failure_threshold")]
    #[schemars(range(min = 1))]
    pub failure_threshold: i32,
}

impl Default for DetectionSpec {
    fn default() -> Self {
        DetectionSpec {
            probe_interval: default_probe_interval(),
            failure_threshold: default_failure_threshold(),
        }
    }
}

/// The promotion rule of one pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PodPromotionRule {
    /// Pod name.
    #[schemars(length(min = 1))]
    pub pod: String,
    /// Rule for that pod.
    pub rule: PromotionRule,
}

/// Hooks per event. Hooks of one event run in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HooksSpec {
    /// When orca detects a failure it may recover from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_HOOKS_PER_EVENT))]
    pub failure_detected: Vec<Hook>,

    /// Before a failover; a failing hook vetoes the failover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_HOOKS_PER_EVENT))]
    pub pre_failover: Vec<Hook>,

    /// After a successful failover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_HOOKS_PER_EVENT))]
    pub post_failover: Vec<Hook>,

    /// After a failover that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_HOOKS_PER_EVENT))]
    pub failed_failover: Vec<Hook>,

    /// Before a graceful takeover; a failing hook vetoes the takeover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_HOOKS_PER_EVENT))]
    pub pre_graceful_takeover: Vec<Hook>,

    /// After a successful graceful takeover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_HOOKS_PER_EVENT))]
    pub post_graceful_takeover: Vec<Hook>,
}

impl HooksSpec {
    /// The hooks of one event.
    pub fn for_event(&self, event: HookEvent) -> &[Hook] {
        match event {
            HookEvent::FailureDetected => &self.failure_detected,
            HookEvent::PreFailover => &self.pre_failover,
            HookEvent::PostFailover => &self.post_failover,
            HookEvent::FailedFailover => &self.failed_failover,
            HookEvent::PreGracefulTakeover => &self.pre_graceful_takeover,
            HookEvent::PostGracefulTakeover => &self.post_graceful_takeover,
        }
    }

    /// Whether no event has a hook.
    pub fn is_empty(&self) -> bool {
        HookEvent::ALL.iter().all(|e| self.for_event(*e).is_empty())
    }
}

/// One hook: exactly one of `webhook` and `job`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.webhook) != has(self.job)",
    "message": "a hook must set exactly one of webhook and job"
}]))]
pub struct Hook {
    /// An HTTP POST of the event, as JSON, to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookHook>,

    /// A Kubernetes Job created in the cluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobHook>,
}

/// An HTTP POST of the event, as JSON. A response other than 2xx, or none
/// within the timeout, is a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookHook {
    /// `http://` or `https://` URL.
    #[schemars(length(min = 1), pattern("^https?://"))]
    pub url: String,

    /// How long to wait for the response.
    #[serde(default = "default_webhook_timeout")]
    #[schemars(pattern(DURATION_PATTERN))]
    pub timeout: String,
}

/// A Job created from a template in the cluster's namespace; the hook
/// succeeds when the Job completes and fails when the Job fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobHook {
    /// A batch/v1 JobTemplateSpec (`metadata` and `spec` of the Job).
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template: JobTemplateSpec,
}

/// Observed state of a policy, written by orca.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverPolicyStatus {
    /// The `metadata.generation` of the spec orca last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Names of the MySQLClusters in this namespace that use the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
}

impl FailoverPolicySpec {
    /// Checks what the schema cannot: durations, unique pods in the
    /// promotion rules, and the shape of each hook. Messages start with the
    /// field path (`spec.hooks.preFailover[0]: ...`).
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = Problems::default();
        check_duration(&mut p, "spec.antiFlapPeriod", &self.anti_flap_period, true);
        check_duration(
            &mut p,
            "spec.detection.probeInterval",
            &self.detection.probe_interval,
            false,
        );
        if self.detection.failure_threshold < 1 {
            p.push("spec.detection.failureThreshold", "must be at least 1");
        }
        check_duration(
            &mut p,
            "spec.maxCandidateLag",
            &self.max_candidate_lag,
            true,
        );
        check_duration(
            &mut p,
            "spec.relayLogApplyTimeout",
            &self.relay_log_apply_timeout,
            false,
        );

        let mut seen = std::collections::BTreeMap::new();
        for (i, entry) in self.promotion_rules.iter().enumerate() {
            let path = format!("spec.promotionRules[{i}].pod");
            if entry.pod.is_empty() {
                p.push(&path, "must not be empty");
            } else if let Some(first) = seen.insert(entry.pod.as_str(), i) {
                p.push(
                    &path,
                    format!(
                        "duplicate pod {:?}, already in spec.promotionRules[{first}]",
                        entry.pod
                    ),
                );
            }
        }

        for event in HookEvent::ALL {
            let hooks = self.hooks.for_event(event);
            let list_path = format!("spec.hooks.{}", event.name());
            if hooks.len() > MAX_HOOKS_PER_EVENT {
                p.push(
                    &list_path,
                    format!("must have at most {MAX_HOOKS_PER_EVENT} hooks"),
                );
            }
            for (i, hook) in hooks.iter().enumerate() {
                hook.check(&mut p, &format!("{list_path}[{i}]"));
            }
        }
        p.into_result()
    }

    /// `antiFlapPeriod` as a duration.
    pub fn anti_flap_period(&self) -> Result<Duration, CrdError> {
        parse_duration(&self.anti_flap_period)
    }

    /// `detection.probeInterval` as a duration.
    pub fn probe_interval(&self) -> Result<Duration, CrdError> {
        parse_duration(&self.detection.probe_interval)
    }

    /// `maxCandidateLag` as a duration.
    pub fn max_candidate_lag(&self) -> Result<Duration, CrdError> {
        parse_duration(&self.max_candidate_lag)
    }

    /// `relayLogApplyTimeout` as a duration.
    pub fn relay_log_apply_timeout(&self) -> Result<Duration, CrdError> {
        parse_duration(&self.relay_log_apply_timeout)
    }

    /// The rule the policy gives a pod (neutral when it names none). A pod's
    /// annotation, when present, overrides this.
    pub fn promotion_rule_for(&self, pod: &str) -> PromotionRule {
        self.promotion_rules
            .iter()
            .find(|r| r.pod == pod)
            .map(|r| r.rule)
            .unwrap_or_default()
    }
}

impl Hook {
    fn check(&self, p: &mut Problems, path: &str) {
        match (&self.webhook, &self.job) {
            (Some(_), Some(_)) => p.push(path, "must set only one of webhook and job, not both"),
            (None, None) => p.push(path, "must set one of webhook and job"),
            (Some(webhook), None) => webhook.check(p, &format!("{path}.webhook")),
            (None, Some(job)) => job.check(p, &format!("{path}.job")),
        }
    }
}

impl WebhookHook {
    fn check(&self, p: &mut Problems, path: &str) {
        let rest = self
            .url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"));
        match rest {
            None => p.push(
                &format!("{path}.url"),
                format!("{:?} must start with http:// or https://", self.url),
            ),
            Some(rest) => {
                let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
                if host.is_empty() || self.url.contains(char::is_whitespace) {
                    p.push(
                        &format!("{path}.url"),
                        format!("{:?} is not a valid URL", self.url),
                    );
                }
            }
        }
        check_duration(p, &format!("{path}.timeout"), &self.timeout, false);
    }

    /// `timeout` as a duration.
    pub fn timeout(&self) -> Result<Duration, CrdError> {
        parse_duration(&self.timeout)
    }
}

impl JobHook {
    fn check(&self, p: &mut Problems, path: &str) {
        let containers = self
            .template
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|s| s.containers.len())
            .unwrap_or(0);
        if containers == 0 {
            p.push(
                &format!("{path}.template.spec.template.spec.containers"),
                "must have at least one container",
            );
        }
    }
}

/// Records a problem when `value` is not a duration, or is zero where zero
/// makes no sense.
fn check_duration(p: &mut Problems, path: &str, value: &str, zero_ok: bool) {
    match parse_duration(value) {
        Err(e) => p.push(path, e.to_string()),
        Ok(d) if d.is_zero() && !zero_ok => p.push(path, "must be greater than zero"),
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(v: serde_json::Value) -> FailoverPolicySpec {
        serde_json::from_value(v).unwrap()
    }

    fn job_hook(containers: serde_json::Value) -> serde_json::Value {
        json!({"job": {"template": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": containers}}}}}})
    }

    #[test]
    fn defaults_are_valid() {
        let p = FailoverPolicySpec::default();
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.anti_flap_period().unwrap(), Duration::from_secs(3600));
        assert_eq!(p.probe_interval().unwrap(), Duration::from_secs(1));
        assert_eq!(p.max_candidate_lag().unwrap(), Duration::from_secs(10));
        assert_eq!(
            p.relay_log_apply_timeout().unwrap(),
            Duration::from_secs(30)
        );
        assert!(p.auto_failover);
        assert!(p.hooks.is_empty());
    }

    #[test]
    fn rule_for_a_pod() {
        let p = policy(json!({"promotionRules": [
            {"pod": "db-0", "rule": "must_not"}, {"pod": "db-2", "rule": "prefer"}]}));
        assert_eq!(p.promotion_rule_for("db-0"), PromotionRule::MustNot);
        assert_eq!(p.promotion_rule_for("db-1"), PromotionRule::Neutral);
        assert_eq!(p.promotion_rule_for("db-2"), PromotionRule::Prefer);
    }

    #[test]
    fn invalid_policy_is_reported_with_paths() {
        let p = policy(json!({
            "antiFlapPeriod": "1d",
            "detection": {"probeInterval": "0s", "failureThreshold": 0},
            "maxCandidateLag": "",
            "relayLogApplyTimeout": "0ms",
            "promotionRules": [
                {"pod": "db-0", "rule": "prefer"},
                {"pod": "", "rule": "prefer"},
                {"pod": "db-0", "rule": "must_not"}
            ],
            "hooks": {
                "failureDetected": [{}],
                "preFailover": [{"webhook": {"url": "https://x/y"}, "job": job_hook(json!([{"name": "c", "image": "i"}]))["job"]}],
                "postFailover": [{"webhook": {"url": "hooks.example/y", "timeout": "soon"}}],
                "failedFailover": [job_hook(json!([]))],
                "postGracefulTakeover": [{"webhook": {"url": "http:///nohost"}}]
            }
        }));
        let errs = p.validate().unwrap_err();
        let starts: Vec<&str> = errs
            .iter()
            .map(|e| e.split(": ").next().unwrap_or_default())
            .collect();
        assert_eq!(
            starts,
            vec![
                "spec.antiFlapPeriod",
                "spec.detection.probeInterval",
                "spec.detection.failureThreshold",
                "spec.maxCandidateLag",
                "spec.relayLogApplyTimeout",
                "spec.promotionRules[1].pod",
                "spec.promotionRules[2].pod",
                "spec.hooks.failureDetected[0]",
                "spec.hooks.preFailover[0]",
                "spec.hooks.postFailover[0].webhook.url",
                "spec.hooks.postFailover[0].webhook.timeout",
                "spec.hooks.failedFailover[0].job.template.spec.template.spec.containers",
                "spec.hooks.postGracefulTakeover[0].webhook.url",
            ],
            "{errs:#?}"
        );
        assert!(errs[6].contains("duplicate pod \"db-0\", already in spec.promotionRules[0]"));
        assert!(errs[0].contains("invalid duration \"1d\""), "{}", errs[0]);
    }

    #[test]
    fn good_hooks_are_valid() {
        let p = policy(json!({"hooks": {
            "preFailover": [{"webhook": {"url": "https://hooks.example/orca", "timeout": "5s"}}],
            "postFailover": [job_hook(json!([{"name": "notify", "image": "busybox:1.37"}]))]
        }}));
        assert_eq!(p.validate(), Ok(()));
        assert!(!p.hooks.is_empty());
        assert_eq!(p.hooks.for_event(HookEvent::PreFailover).len(), 1);
        let webhook = p.hooks.pre_failover[0].webhook.as_ref().unwrap();
        assert_eq!(webhook.timeout().unwrap(), Duration::from_secs(5));
        let defaulted: WebhookHook = serde_json::from_value(json!({"url": "http://a"})).unwrap();
        assert_eq!(defaulted.timeout, "10s");
        assert!(HookEvent::PreFailover.may_veto());
        assert!(HookEvent::PreGracefulTakeover.may_veto());
        assert!(!HookEvent::PostFailover.may_veto());
    }

    #[test]
    fn too_many_hooks() {
        let hooks: Vec<_> = (0..=MAX_HOOKS_PER_EVENT)
            .map(|_| json!({"webhook": {"url": "http://a"}}))
            .collect();
        let p = policy(json!({"hooks": {"postFailover": hooks}}));
        assert_eq!(
            p.validate().unwrap_err(),
            vec!["spec.hooks.postFailover: must have at most 16 hooks"]
        );
    }
}

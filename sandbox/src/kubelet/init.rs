//! The rules of a pod's init containers, as a kubelet applies them (the
//! worker runs them with the app containers' machinery):
//!
//! - they run once the pod has its address and volumes, one at a time in
//!   their order, each to completion (exit 0) before the next starts; the
//!   app containers start once all have completed;
//! - a failed one runs again with the app containers' crash back-off under
//!   `restartPolicy` Always or OnFailure; under Never the pod fails;
//! - one that completed does not run again: not when an app container
//!   restarts, nor when the kubelet restarts on a pod whose status says it
//!   completed (a new pod, a new uid, runs them all again);
//! - while they run the pod is `Pending`, `Initialized` is False
//!   (`ContainersNotInitialized`), and a container not yet created waits
//!   with `PodInitializing`.

use k8s_openapi::api::core::v1::ContainerStatus;

/// Where one init container stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Exited 0: it does not run again.
    Completed,
    /// Failed and will not run again (`restartPolicy: Never`).
    Failed,
    /// Still to run, running, or waiting to run again.
    Pending,
}

/// Where the pod's initialisation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The init container at this position (of the init containers) runs
    /// or is to run next.
    Running(usize),
    /// Every init container completed: the app containers run.
    Done,
    /// An init container failed for good: the pod fails.
    Failed,
}

/// The stage of init containers standing as `standings`, in their order.
pub(crate) fn stage(standings: impl IntoIterator<Item = Standing>) -> Stage {
    for (i, s) in standings.into_iter().enumerate() {
        match s {
            Standing::Completed => {}
            Standing::Failed => return Stage::Failed,
            Standing::Pending => return Stage::Running(i),
        }
    }
    Stage::Done
}

/// Whether an init container that exited with `exit_code` runs again
/// under `restart_policy`: after a failure, unless the policy is Never.
pub(crate) fn runs_again(restart_policy: &str, exit_code: i32) -> bool {
    exit_code != 0 && restart_policy != "Never"
}

/// How an init container stands by a status the pod had before (a
/// kubelet restarted on it).
pub(crate) fn standing_before(status: &ContainerStatus, restart_policy: &str) -> Standing {
    let Some(t) = status.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
        return Standing::Pending;
    };
    if t.exit_code == 0 {
        Standing::Completed
    } else if runs_again(restart_policy, t.exit_code) {
        Standing::Pending
    } else {
        Standing::Failed
    }
}

/// The reason a container not yet created waits with: the kubelet's
/// default, `PodInitializing` in a pod with init containers.
pub(crate) fn waiting_reason(has_init_containers: bool) -> &'static str {
    if has_init_containers {
        "PodInitializing"
    } else {
        "ContainerCreating"
    }
}

/// The `Initialized` condition's message while `incomplete` (init
/// containers' names) have not completed.
pub(crate) fn incomplete_message(incomplete: &[String]) -> String {
    format!(
        "containers with incomplete status: [{}]",
        incomplete.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Standing::*;

    #[test]
    fn init_containers_run_in_order_each_to_completion() {
        assert_eq!(stage([]), Stage::Done);
        assert_eq!(stage([Pending, Pending]), Stage::Running(0));
        assert_eq!(stage([Completed, Pending]), Stage::Running(1));
        assert_eq!(stage([Completed, Completed]), Stage::Done);
        assert_eq!(stage([Completed, Failed, Pending]), Stage::Failed);
    }

    #[test]
    fn a_failure_runs_again_unless_the_policy_is_never() {
        assert!(runs_again("Always", 2));
        assert!(runs_again("OnFailure", 137));
        assert!(!runs_again("Never", 2));
        for policy in ["Always", "OnFailure", "Never"] {
            assert!(!runs_again(policy, 0), "{policy}");
        }
    }

    #[test]
    fn a_restarted_kubelet_keeps_what_completed() {
        let status = |state: serde_json::Value| -> ContainerStatus {
            serde_json::from_value(serde_json::json!({
                "name": "init", "image": "orca", "imageID": "", "ready": false,
                "restartCount": 1, "state": state,
            }))
            .unwrap()
        };
        let done = status(serde_json::json!({"terminated": {"exitCode": 0}}));
        let failed = status(serde_json::json!({"terminated": {"exitCode": 2}}));
        let running = status(serde_json::json!({"running": {}}));
        assert_eq!(standing_before(&done, "Always"), Completed);
        assert_eq!(standing_before(&failed, "Always"), Pending);
        assert_eq!(standing_before(&failed, "Never"), Failed);
        assert_eq!(standing_before(&running, "Never"), Pending);
    }

    #[test]
    fn conditions_say_what_is_incomplete() {
        assert_eq!(waiting_reason(true), "PodInitializing");
        assert_eq!(waiting_reason(false), "ContainerCreating");
        assert_eq!(
            incomplete_message(&["a".into(), "b".into()]),
            "containers with incomplete status: [a b]"
        );
    }
}

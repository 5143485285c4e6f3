//! The orca agent in every database pod (the operator started with an
//! agent image), in the sandbox: the token drawn into the credentials
//! Secret; the init container runs before mysqld and exits at once when
//! nothing is armed; the sidecar answers the cluster's token only.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use orca::agent::client::AgentClient;
use orca::k8s::objects;
use support::cluster::cluster_yaml;
use support::eventually;
use support::sandbox::Sandbox;

/// The image the sandbox runs the orca binary for.
const IMAGE: &str = "ghcr.io/orca-dev/orca:0.1.0";
const BOOT: Duration = Duration::from_secs(180);

fn agent_at(key: &orca::topology::InstanceKey) -> String {
    format!("{}:{}", key.host, orca::agent::PORT)
}

/// The status of container `ctr` in pod `pod`'s list.
fn named(
    list: Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>,
    ctr: &str,
    pod: &str,
) -> k8s_openapi::api::core::v1::ContainerStatus {
    list.unwrap_or_default()
        .into_iter()
        .find(|s| s.name == ctr)
        .unwrap_or_else(|| panic!("{pod}: no {ctr} status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_in_every_pod_and_answers_the_clusters_token_only() {
    let mut sb = Sandbox::cluster(&["--no-operator"]).await;
    sb.wait_crds_or_install().await;
    sb.start_operator_with("only", &[("ORCA_AGENT_IMAGE", IMAGE)]);
    sb.kubectl().apply(&cluster_yaml("db", 3, false));
    sb.wait_healthy("db", BOOT).await;

    // The token: drawn into the credentials Secret.
    let cluster = sb.mysql_cluster("db").await;
    let secrets: Api<Secret> = Api::namespaced(sb.client().await, "default");
    let secret = secrets
        .get(&cluster.credentials_secret_name())
        .await
        .expect("the credentials Secret");
    let token = objects::agent_token(&secret).expect("an agent token in the Secret");
    assert!(token.len() >= 32, "a short token: {} letters", token.len());
    let agent = AgentClient::new(token.clone()).expect("client");
    let stranger = AgentClient::new("not-the-token").expect("client");

    let pods: Api<Pod> = sb.pods().await;
    let names = ["db-0", "db-1", "db-2"];
    for name in names {
        let pod = pods.get(name).await.expect("pod");
        let status = pod.status.clone().expect("status");
        let init = named(
            status.init_container_statuses,
            objects::AGENT_INIT_CONTAINER,
            name,
        );
        let done = init.state.and_then(|s| s.terminated).expect("terminated");
        assert_eq!(
            (done.exit_code, done.reason.as_deref()),
            (0, Some("Completed")),
            "{name}: nothing armed, the init container completes at once"
        );
        let sidecar = named(status.container_statuses, objects::AGENT_CONTAINER, name);
        assert!(sidecar.ready, "{name}: the agent is not ready");
        let at = agent_at(&sb.pod_ip(name).await);
        let state = eventually(Duration::from_secs(20), "the agent answering", || async {
            agent.state(&at).await.ok()
        })
        .await;
        assert_eq!(state.mode, "serve", "{name}: {state:?}");
        assert!(
            state.armed.is_none() && state.provisioned.is_none(),
            "{state:?}"
        );
        let refused = stranger
            .state(&at)
            .await
            .expect_err("the agent answered a wrong token");
        assert!(refused.to_string().contains("403"), "{refused}");
    }

    sb.stop_operator();
}

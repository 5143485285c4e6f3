//! The operator against the sandbox API server, before any pod runs: a
//! MySQLCluster is turned into its objects, invalid specs are refused, and
//! deleting the cluster takes everything with it.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use orca::k8s::crd::cluster::MySQLCluster;
use orca::k8s::operator::{Context, run};
use support::eventually;
use support::sandbox::Sandbox;

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_becomes_its_objects_and_goes_with_them() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("orca=debug")
        .with_test_writer()
        .try_init();
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    sb.install_crds().await;
    let ctx = Context::new(c.clone(), "test-operator", None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let op = tokio::spawn(run(ctx, async move {
        let _ = stopped.await;
    }));
    sb.kubectl().ok(&["create", "namespace", "databases"]);
    sb.kubectl()
        .apply(&std::fs::read_to_string("examples/mysqlcluster.yaml").unwrap());
    let cluster_name = {
        let api: Api<MySQLCluster> = Api::namespaced(c.clone(), "databases");
        let list = api.list(&Default::default()).await.unwrap();
        list.items[0].name_any()
    };
    let ns = "databases";
    let sts: Api<StatefulSet> = Api::namespaced(c.clone(), ns);
    let s = eventually(Duration::from_secs(20), "the StatefulSet", || async {
        sts.get_opt(&cluster_name).await.unwrap()
    })
    .await;
    assert_eq!(s.owner_references()[0].kind, "MySQLCluster");
    let spec = s.spec.unwrap();
    let ctr = &spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(ctr.name, "mysqld");
    let svc: Api<Service> = Api::namespaced(c.clone(), ns);
    for name in [
        cluster_name.clone(),
        format!("{cluster_name}-primary"),
        format!("{cluster_name}-replicas"),
    ] {
        let s = eventually(Duration::from_secs(10), "a Service", || async {
            svc.get_opt(&name).await.unwrap()
        })
        .await;
        assert_eq!(s.owner_references().len(), 1, "{name}");
    }
    let primary = svc.get(&format!("{cluster_name}-primary")).await.unwrap();
    assert_eq!(
        primary
            .spec
            .unwrap()
            .selector
            .unwrap()
            .get("orca.dev/role")
            .map(String::as_str),
        Some("primary")
    );
    let cm: Api<ConfigMap> = Api::namespaced(c.clone(), ns);
    let cnf = cm
        .get(&format!("{cluster_name}-config"))
        .await
        .unwrap()
        .data
        .unwrap()["orca.cnf"]
        .clone();
    assert!(cnf.contains("read-only = ON"), "{cnf}");
    let secrets: Api<Secret> = Api::namespaced(c.clone(), ns);
    let cluster: MySQLCluster = Api::namespaced(c.clone(), ns)
        .get(&cluster_name)
        .await
        .unwrap();
    let secret = secrets
        .get(&cluster.credentials_secret_name())
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert!(data.contains_key("root-password"));
    assert_eq!(data["app-username"].0, b"app");
    assert_eq!(data["app-password"].0.len(), 24);
    assert!(
        cluster
            .finalizers()
            .contains(&"orca.dev/cleanup".to_string())
    );
    let pdb: Api<PodDisruptionBudget> = Api::namespaced(c.clone(), ns);
    assert!(pdb.get_opt(&cluster_name).await.unwrap().is_some());
    // Its failoverPolicyRef names a policy not created yet: nothing is
    // done until it exists (never the defaults in its place)...
    let api: Api<MySQLCluster> = Api::namespaced(c.clone(), ns);
    eventually(
        Duration::from_secs(10),
        "a Failed condition for the missing policy",
        || async {
            let c = api.get(&cluster_name).await.unwrap();
            c.status?
                .conditions
                .iter()
                .find(|c| {
                    c.type_ == "Failed"
                        && c.status == "True"
                        && c.reason == "PolicyUnreadable"
                        && c.message.contains("careful")
                })
                .map(|_| ())
        },
    )
    .await;
    sb.kubectl()
        .apply(&std::fs::read_to_string("examples/failoverpolicy.yaml").unwrap());
    // ...then, as no pods run here, the cluster waits for them and says so.
    eventually(
        Duration::from_secs(10),
        "a Reconciling condition",
        || async {
            let s = api.get(&cluster_name).await.unwrap().status?;
            s.conditions.iter().find(|c| {
                c.type_ == "Reconciling" && c.status == "True" && c.reason == "WaitingForPods"
            })?;
            // The policy reads: its condition is cleared.
            s.conditions
                .iter()
                .find(|c| {
                    c.type_ == "Failed" && c.status == "False" && c.reason == "PolicyReadable"
                })
                .map(|_| ())
        },
    )
    .await;
    // Deleting the cluster takes its objects with it.
    api.delete(&cluster_name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the cluster and its objects gone",
        || async {
            (api.get_opt(&cluster_name).await.unwrap().is_none()
                && sts.get_opt(&cluster_name).await.unwrap().is_none())
            .then_some(())
        },
    )
    .await;
    let _ = stop.send(());
    let _ = op.await;
}

/// A credentials Secret without the application account's keys (the
/// user's own, or one from before orca had the account) gets them; the
/// keys it has are kept.
#[tokio::test(flavor = "multi_thread")]
async fn the_application_keys_are_added_to_an_existing_secret() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    sb.install_crds().await;
    let ctx = Context::new(c.clone(), "test-operator", None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let op = tokio::spawn(run(ctx, async move {
        let _ = stopped.await;
    }));
    sb.kubectl().apply(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: mine\nstringData:\n  root-password: r00t\n  replication-password: repl\n  app-username: shop\n",
    );
    sb.kubectl().apply(
        "apiVersion: orca.dev/v1alpha1\nkind: MySQLCluster\nmetadata:\n  name: db\nspec:\n  image: mariadb:10.11\n  credentialsSecret: mine\n",
    );
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    let data = eventually(Duration::from_secs(20), "app-password added", || async {
        let s = secrets.get("mine").await.unwrap();
        s.data.filter(|d| d.contains_key("app-password"))
    })
    .await;
    assert_eq!(data["root-password"].0, b"r00t");
    assert_eq!(data["replication-password"].0, b"repl");
    assert_eq!(data["app-username"].0, b"shop", "a present key is kept");
    assert_eq!(data["app-password"].0.len(), 24);
    // orca reads only labelled Secrets: it labelled the one it was pointed at.
    let mine = secrets.get("mine").await.unwrap();
    assert_eq!(
        mine.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("orca.dev/cluster"))
            .map(String::as_str),
        Some("db")
    );
    let _ = stop.send(());
    let _ = op.await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_specs_are_refused_with_the_reason() {
    let sb = Sandbox::api_server();
    sb.install_crds().await;
    let o = sb.kubectl().run(
        &["apply", "-f", "-"],
        Some("apiVersion: orca.dev/v1alpha1\nkind: MySQLCluster\nmetadata:\n  name: bad\nspec:\n  image: mariadb:10.11\n  replicas: 0\n"),
    );
    assert!(!o.success());
    assert!(
        o.stderr.contains("The MySQLCluster \"bad\" is invalid: spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
        "{}",
        o.stderr
    );
    let o = sb.kubectl().run(
        &["apply", "-f", "-"],
        Some("apiVersion: orca.dev/v1alpha1\nkind: FailoverPolicy\nmetadata:\n  name: p\nspec:\n  promotionRules:\n  - pod: db-0\n    rule: sometimes\n"),
    );
    assert!(!o.success());
    assert!(
        o.stderr
            .contains("spec.promotionRules[0].rule: Unsupported value: \"sometimes\""),
        "{}",
        o.stderr
    );
}

/// A Job hook creates a Job from the policy's template with the payload in
/// its environment, and succeeds or vetoes as the Job completes or fails
/// (the test plays the Job controller, which the sandbox does not run).
#[tokio::test(flavor = "multi_thread")]
async fn job_hooks_follow_their_job() {
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::{ListParams, Patch, PatchParams};
    use orca::engine::hooks::HookPayload;
    use orca::k8s::crd::policy::FailoverPolicy;
    use orca::plan::HookEvent;
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    sb.install_crds().await;
    let policy: FailoverPolicy = serde_yaml_ng::from_str(
        "apiVersion: orca.dev/v1alpha1\nkind: FailoverPolicy\nmetadata:\n  name: p\n  namespace: default\nspec:\n  hooks:\n    preFailover:\n    - job:\n        template:\n          spec:\n            template:\n              spec:\n                containers:\n                - name: check\n                  image: busybox\n                  command: [sh, -c, 'test -n \"$ORCA_FAILED\"']\n",
    )
    .unwrap();
    let mut cluster: MySQLCluster =
        serde_yaml_ng::from_str("apiVersion: orca.dev/v1alpha1\nkind: MySQLCluster\nmetadata:\n  name: db\n  namespace: default\nspec:\n  image: mariadb:10.11\n").unwrap();
    cluster.metadata.uid = Some("u".into());
    let resolved = orca::k8s::policy::resolve(&cluster, Some(&policy), c.clone(), "default");
    let payload = HookPayload {
        event: HookEvent::PreFailover,
        cluster: "default/db".into(),
        failure_type: "DeadPrimary".into(),
        failed: Some("127.20.0.1:3306".parse().unwrap()),
        successor: Some("127.20.0.2:3306".parse().unwrap()),
        lost_replicas: vec![],
        lost_transactions: None,
        recovery_id: "r-1".into(),
        error: None,
    };
    let jobs: Api<Job> = Api::namespaced(c.clone(), "default");
    for (condition, vetoed) in [("Complete", false), ("Failed", true)] {
        let hooks = resolved.hooks.clone();
        let p = payload.clone();
        let run = tokio::spawn(async move { hooks.run(&p).await });
        let job = eventually(Duration::from_secs(10), "the hook's Job", || async {
            let list = jobs
                .list(&ListParams::default().labels("orca.dev/hook=preFailover"))
                .await
                .unwrap();
            list.items.into_iter().find(|j| {
                j.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_none()
            })
        })
        .await;
        let env = job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap();
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(get("ORCA_EVENT").as_deref(), Some("preFailover"));
        assert_eq!(get("ORCA_FAILED").as_deref(), Some("127.20.0.1:3306"));
        assert_eq!(get("ORCA_RECOVERY_ID").as_deref(), Some("r-1"));
        assert!(
            get("ORCA_PAYLOAD")
                .unwrap()
                .contains("\"failureType\":\"DeadPrimary\"")
        );
        assert_eq!(
            job.labels().get("orca.dev/cluster").map(String::as_str),
            Some("db")
        );
        jobs.patch_status(
            &job.name_any(),
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"conditions": [{"type": condition, "status": "True"}]}})),
        )
        .await
        .unwrap();
        let errors = run.await.unwrap();
        assert_eq!(!errors.is_empty(), vetoed, "{condition}: {errors:?}");
    }
}

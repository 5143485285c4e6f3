//! Fidelity of the sandbox API server for kube-rs: the calls orca's
//! operator makes (typed Api CRUD, every patch type, status and scale
//! subresources, finalizers, watchers, a Controller, Leases, Events,
//! discovery) behave as against a real API server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, CustomResource, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use support::sandbox::{Sandbox, client_for};
use support::widget::WIDGET_CRD;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.orca.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
struct WidgetSpec {
    replicas: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flavor: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<serde_json::Value>,
}

async fn install_widgets(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(WIDGET_CRD).expect("crd yaml");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create crd");
}

fn widget(name: &str, replicas: i64) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            replicas,
            flavor: None,
        },
    )
}

fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("configmap")
}

/// The ConfigMap of the API server's CA that every namespace has.
const ROOT_CA: &str = "kube-root-ca.crt";

/// The ConfigMaps a test made (without the namespace's root CA).
fn ours(items: &[ConfigMap]) -> Vec<&ConfigMap> {
    items.iter().filter(|i| i.name_any() != ROOT_CA).collect()
}

#[tokio::test]
async fn crud_conflicts_and_errors() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let created = cms
        .create(&PostParams::default(), &cm("a", json!({"k": "v"})))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv = created.resource_version().unwrap();

    let e = api_err(
        cms.create(&PostParams::default(), &cm("a", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"a\" already exists");

    let e = api_err(cms.get("missing").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert_eq!(e.message, "configmaps \"missing\" not found");

    // replace with the current resourceVersion, then again with the stale one
    let mut fresh = created.clone();
    fresh.data = Some([("k".to_string(), "w".to_string())].into());
    let replaced = cms
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version().unwrap(), rv);
    let e = api_err(
        cms.replace("a", &PostParams::default(), &fresh)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // generateName
    let mut g = cm("", json!({}));
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let made = cms.create(&PostParams::default(), &g).await.unwrap();
    assert!(made.name_any().starts_with("gen-") && made.name_any().len() == 9);

    // a namespace that does not exist
    let elsewhere: Api<ConfigMap> = Api::namespaced(c.clone(), "nowhere");
    let e = api_err(
        elsewhere
            .create(&PostParams::default(), &cm("x", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
    assert_eq!(e.message, "namespaces \"nowhere\" not found");

    // an invalid name
    let e = api_err(
        cms.create(&PostParams::default(), &cm("Bad_Name", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", e.message);

    let list = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(ours(&list.items).len(), 2);
    assert!(list.metadata.resource_version.is_some());
    sb.shutdown();
}

#[tokio::test]
async fn label_selectors_and_paging() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c);
    for (name, role, tier) in [
        ("p", "primary", "db"),
        ("r1", "replica", "db"),
        ("r2", "replica", "cache"),
        ("n", "", "db"),
    ] {
        let mut m = cm(name, json!({}));
        let mut labels = std::collections::BTreeMap::new();
        if !role.is_empty() {
            labels.insert("role".to_string(), role.to_string());
        }
        labels.insert("tier".to_string(), tier.to_string());
        m.metadata.labels = Some(labels);
        cms.create(&PostParams::default(), &m).await.unwrap();
    }
    let names = |sel: &'static str| {
        let cms = cms.clone();
        async move {
            let mut v: Vec<String> = cms
                .list(&ListParams::default().labels(sel))
                .await
                .unwrap()
                .items
                .iter()
                .map(|i| i.name_any())
                .filter(|n| n != ROOT_CA)
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(names("role=replica").await, ["r1", "r2"]);
    assert_eq!(names("role==primary").await, ["p"]);
    assert_eq!(names("role!=replica").await, ["n", "p"]);
    assert_eq!(names("tier in (cache)").await, ["r2"]);
    assert_eq!(names("tier notin (cache),role").await, ["p", "r1"]);
    assert_eq!(names("!role").await, ["n"]);
    assert_eq!(names("role,tier=db").await, ["p", "r1"]);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=r2"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let e = api_err(
        cms.list(&ListParams::default().fields("spec.nope=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);

    // paging with limit/continue (five: the four and the namespace's
    // kube-root-ca.crt)
    let first = cms.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(first.items.len(), 3);
    let token = first.metadata.continue_.clone().expect("continue token");
    assert_eq!(first.metadata.remaining_item_count, Some(2));
    let rest = cms
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.metadata.continue_.is_none());
    sb.shutdown();
}

#[tokio::test]
async fn patches_merge_json_strategic_and_apply() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    cms.create(
        &PostParams::default(),
        &cm("p", json!({"a": "1", "b": "2"})),
    )
    .await
    .unwrap();
    let pp = PatchParams::default();
    let out = cms
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        out.data.unwrap(),
        [("b".into(), "2".into()), ("c".into(), "3".into())].into()
    );
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/b", "value": "two"}
    ]))
    .unwrap();
    let out = cms.patch("p", &pp, &Patch::Json::<()>(jp)).await.unwrap();
    assert_eq!(out.data.as_ref().unwrap()["b"], "two");
    let failing: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/b", "value": "nope"}]))
            .unwrap();
    let e = api_err(
        cms.patch("p", &pp, &Patch::Json::<()>(failing))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 422);

    // strategic merge on a StatefulSet: containers merge by name
    let sts_api: Api<StatefulSet> = Api::default_namespaced(c.clone());
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                {"name": "mariadb", "image": "mariadb:11.4", "env": [{"name": "A", "value": "1"}]},
                {"name": "exporter", "image": "exporter:1"}]}}}
    }))
    .unwrap();
    sts_api.create(&PostParams::default(), &sts).await.unwrap();
    let out = sts_api
        .patch(
            "db",
            &pp,
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "mariadb", "env": [{"name": "B", "value": "2"}]}]}}}})),
        )
        .await
        .unwrap();
    let containers = &out
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers;
    assert_eq!(containers.len(), 2);
    let envs: Vec<String> = containers[0]
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(envs, ["A", "B"]);
    assert_eq!(out.metadata.generation, Some(2));

    // strategic merge is refused for custom resources, as a real server does
    install_widgets(&c).await;
    let widgets: Api<Widget> = Api::default_namespaced(c.clone());
    widgets
        .create(&PostParams::default(), &widget("w", 2))
        .await
        .unwrap();
    let e = api_err(
        widgets
            .patch(
                "w",
                &pp,
                &Patch::Strategic(json!({"spec": {"replicas": 3}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 415);

    // server-side apply: create, take ownership, conflict, force
    let ssa = PatchParams::apply("orca-test");
    let applied = cms
        .patch(
            "ssa",
            &ssa,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa"}, "data": {"x": "1", "y": "2"}})),
        )
        .await
        .unwrap();
    let mf = applied.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("orca-test"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let other = PatchParams::apply("someone-else");
    let e = api_err(
        cms.patch(
            "ssa",
            &other,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa"}, "data": {"x": "9"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"orca-test\" using v1: .data.x"
    );
    let forced = cms
        .patch(
            "ssa",
            &other.clone().force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa"}, "data": {"x": "9"}})),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["x"], "9");
    // the first manager drops y from its configuration: y goes
    let out = cms
        .patch(
            "ssa",
            &ssa,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ssa"}, "data": {}})),
        )
        .await
        .unwrap();
    assert_eq!(out.data.unwrap(), [("x".into(), "9".into())].into());
    sb.shutdown();
}

/// A v1 CRD whose schema is not structural is refused, its causes
/// naming the problems; a structural one is then accepted.
#[tokio::test]
async fn non_structural_crds_are_refused() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    let crd = |spec_schema: serde_json::Value| -> CustomResourceDefinition {
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "gadgets.test.orca.dev"},
            "spec": {
                "group": "test.orca.dev",
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "properties": {"spec": spec_schema}}}}]
            }
        }))
        .expect("crd")
    };
    let bad = crd(json!({"type": "object", "properties": {
        "size": {"description": "no type"},
        "replicas": {"type": "integer", "minimum": 1, "default": 0}}}));
    let e = api_err(crds.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    let s = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
    let causes: Vec<(String, String)> = e
        .details
        .expect("details")
        .causes
        .into_iter()
        .map(|c| (c.field, c.message))
        .collect();
    assert!(
        causes.contains(&(
            format!("{s}.properties[size].type"),
            "Required value: must not be empty for specified object fields".to_string()
        )),
        "{causes:#?}"
    );
    assert!(
        causes.contains(&(
            format!("{s}.properties[replicas].default"),
            "Invalid value: 0:  in body should be greater than or equal to 1".to_string()
        )),
        "{causes:#?}"
    );
    assert!(
        e.message.starts_with(
            "CustomResourceDefinition.apiextensions.k8s.io \"gadgets.test.orca.dev\" is invalid: ["
        ),
        "{}",
        e.message
    );
    let good = crd(json!({"type": "object", "properties": {"size": {"type": "string"}}}));
    crds.create(&PostParams::default(), &good)
        .await
        .expect("a structural CRD is accepted");
}

#[tokio::test]
async fn custom_resources_validation_defaults_generation_and_status() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    install_widgets(&c).await;
    let widgets: Api<Widget> = Api::default_namespaced(c.clone());
    let e = api_err(
        widgets
            .create(&PostParams::default(), &widget("x", 0))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        e.message,
        "Widget.test.orca.dev \"x\" is invalid: spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"
    );
    let details = e.details.unwrap();
    assert_eq!(details.kind, "Widget");
    assert_eq!(details.group, "test.orca.dev");
    assert_eq!(details.causes[0].field, "spec.replicas");
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");

    let w = widgets
        .create(&PostParams::default(), &widget("w", 2))
        .await
        .unwrap();
    assert_eq!(
        w.spec.flavor.as_deref(),
        Some("mariadb"),
        "schema default applied"
    );
    assert_eq!(w.metadata.generation, Some(1));
    let pp = PatchParams::default();

    // metadata changes do not move the generation; spec changes do
    let w = widgets
        .patch(
            "w",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let w = widgets
        .patch("w", &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));

    // status goes through the status subresource only
    let w = widgets
        .patch("w", &pp, &Patch::Merge(json!({"status": {"replicas": 7}})))
        .await
        .unwrap();
    assert!(w.status.is_none(), "the main resource ignores status");
    let w = widgets
        .patch_status(
            "w",
            &pp,
            &Patch::Merge(json!({"status": {"replicas": 3}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(w.status.unwrap().replicas, Some(3));
    assert_eq!(w.spec.replicas, 3, "the status subresource ignores spec");
    assert_eq!(w.metadata.generation, Some(2));

    // scale subresource of a custom resource
    let scale = widgets.get_scale("w").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    let scale = widgets
        .patch_scale("w", &pp, &Patch::Merge(json!({"spec": {"replicas": 5}})))
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(5));
    let w = widgets.get("w").await.unwrap();
    assert_eq!(w.spec.replicas, 5);
    assert_eq!(w.metadata.generation, Some(3));

    // discovery lists the custom resource with its subresources
    let discovery = kube::Discovery::new(c.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "test.orca.dev",
            "v1",
            "Widget",
        ))
        .expect("Widget discovered");
    assert_eq!(ar.plural, "widgets");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/status" || s.plural == "status")
    );
    sb.shutdown();
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let mut m = cm("held", json!({}));
    m.metadata.finalizers = Some(vec!["test.orca.dev/hold".into()]);
    cms.create(&PostParams::default(), &m).await.unwrap();
    let pending = cms.delete("held", &DeleteParams::default()).await.unwrap();
    let obj = pending
        .left()
        .expect("still there while a finalizer holds it");
    assert!(obj.metadata.deletion_timestamp.is_some());
    let e = api_err(
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["test.orca.dev/hold", "new"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422, "no new finalizers once deleting");
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_err(cms.get("held").await.unwrap_err()).code, 404);

    // without finalizers the delete answers a Status
    cms.create(&PostParams::default(), &cm("plain", json!({})))
        .await
        .unwrap();
    let gone = cms.delete("plain", &DeleteParams::default()).await.unwrap();
    assert!(gone.right().is_some());

    // owner references: dependents go with their owner
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({})))
        .await
        .unwrap();
    let mut dep = cm("dependent", json!({}));
    dep.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    cms.create(&PostParams::default(), &dep).await.unwrap();
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    let mut tries = 0;
    while cms.get_opt("dependent").await.unwrap().is_some() {
        tries += 1;
        assert!(tries < 50, "dependent not collected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // namespace deletion removes its contents
    let nss: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "scratch"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let scratch: Api<ConfigMap> = Api::namespaced(c.clone(), "scratch");
    scratch
        .create(&PostParams::default(), &cm("x", json!({})))
        .await
        .unwrap();
    nss.delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    let mut tries = 0;
    while nss.get_opt("scratch").await.unwrap().is_some() {
        tries += 1;
        assert!(tries < 50, "namespace not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sb.shutdown();
}

#[tokio::test]
async fn watcher_sees_create_update_delete() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    cms.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let mut stream = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut seen: Vec<String> = Vec::new();
    let writer = {
        let cms = cms.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cms.create(&PostParams::default(), &cm("w", json!({"v": "1"})))
                .await
                .unwrap();
            cms.patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"v": "2"}})),
            )
            .await
            .unwrap();
            cms.delete("w", &DeleteParams::default()).await.unwrap();
        }
    };
    let reader = async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            let tag = match &ev {
                watcher::Event::Init => "init".to_string(),
                watcher::Event::InitApply(o) => format!("init-apply {}", o.name_any()),
                watcher::Event::InitDone => "init-done".to_string(),
                watcher::Event::Apply(o) => format!(
                    "apply {} {}",
                    o.name_any(),
                    o.data
                        .as_ref()
                        .and_then(|d| d.get("v"))
                        .cloned()
                        .unwrap_or_default()
                ),
                watcher::Event::Delete(o) => format!("delete {}", o.name_any()),
            };
            if !tag.ends_with(ROOT_CA) {
                seen.push(tag);
            }
            if seen.last().is_some_and(|t| t == "delete w") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(writer, reader)
    })
    .await
    .expect("watch events in time");
    assert_eq!(
        seen,
        [
            "init",
            "init-apply before",
            "init-done",
            "apply w 1",
            "apply w 2",
            "delete w"
        ]
    );

    // a streaming list (sendInitialEvents) ends its initial events with a bookmark
    let mut streaming = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let first: Vec<String> = tokio::time::timeout(Duration::from_secs(10), async {
        let mut v = Vec::new();
        while let Some(ev) = streaming.try_next().await.unwrap() {
            match ev {
                watcher::Event::InitApply(o) if o.name_any() != ROOT_CA => v.push(o.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        v
    })
    .await
    .expect("streaming list");
    assert_eq!(first, ["before"]);
    sb.shutdown();
}

#[tokio::test]
async fn too_old_resource_version_is_gone_and_watcher_relists() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let first = cms
        .create(&PostParams::default(), &cm("one", json!({})))
        .await
        .unwrap();
    let old_rv = first.resource_version().unwrap();
    cms.create(&PostParams::default(), &cm("two", json!({})))
        .await
        .unwrap();
    sb.server().handle().compact();

    // a raw watch from a compacted resourceVersion: an ERROR event, 410 Expired
    let mut raw = cms
        .watch(&WatchParams::default(), &old_rv)
        .await
        .unwrap()
        .boxed();
    match raw.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // the watcher lists again after a 410: the resourceVersion it watches
    // from (its list's, or its last event's once a 1 s watch ends) has
    // meanwhile been compacted away
    let cfg = watcher::Config::default()
        .labels("t=relist")
        .timeout(1)
        .disable_bookmarks();
    let mut stream = watcher(cms.clone(), cfg).boxed();
    let mut inits = 0;
    let mut saw_gone = false;
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stream.next().await {
                Some(Ok(watcher::Event::InitDone)) => {
                    inits += 1;
                    if inits == 1 {
                        // changes the watcher does not see, then a compaction
                        for i in 0..3 {
                            cms.create(
                                &PostParams::default(),
                                &cm(&format!("noise-{i}"), json!({})),
                            )
                            .await
                            .unwrap();
                        }
                        sb.server().handle().compact();
                    } else {
                        break;
                    }
                }
                Some(Err(watcher::Error::WatchError(e))) if e.code == 410 => saw_gone = true,
                Some(_) => {}
                None => break,
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the watcher did not list again");
    assert!(saw_gone, "the watcher saw no 410");
    assert_eq!(inits, 2);
    sb.shutdown();
}

#[tokio::test]
async fn controller_reconciles_and_writes_status() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    install_widgets(&c).await;
    let widgets: Api<Widget> = Api::default_namespaced(c.clone());

    struct Ctx {
        client: Client,
    }
    async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, kube::Error> {
        let api: Api<Widget> =
            Api::namespaced(ctx.client.clone(), &w.namespace().unwrap_or_default());
        let status = json!({"status": {
            "observedGeneration": w.metadata.generation,
            "replicas": w.spec.replicas,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}],
        }});
        api.patch_status(
            &w.name_any(),
            &PatchParams::apply("widget-controller").force(),
            &Patch::Apply(json!({
                "apiVersion": "test.orca.dev/v1", "kind": "Widget", "status": status["status"]
            })),
        )
        .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<Ctx>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Ctx { client: c.clone() }))
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    widgets
        .create(&PostParams::default(), &widget("ctl", 2))
        .await
        .unwrap();
    let wait_for = |generation: i64| {
        let widgets = widgets.clone();
        async move {
            for _ in 0..100 {
                let w = widgets.get("ctl").await.unwrap();
                if w.status.as_ref().and_then(|s| s.observed_generation) == Some(generation) {
                    return w;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("generation {generation} not reconciled");
        }
    };
    let w = wait_for(1).await;
    assert_eq!(w.status.as_ref().unwrap().replicas, Some(2));
    widgets
        .patch(
            "ctl",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let w = wait_for(2).await;
    assert_eq!(w.status.unwrap().replicas, Some(4));
    task.abort();
    sb.shutdown();
}

#[tokio::test]
async fn leases_and_events() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "orca-leader"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut take = created.clone();
    take.spec.as_mut().unwrap().holder_identity = Some("b".into());
    take.spec.as_mut().unwrap().lease_transitions = Some(1);
    let taken = leases
        .replace("orca-leader", &PostParams::default(), &take)
        .await
        .unwrap();
    assert_eq!(taken.spec.as_ref().unwrap().lease_transitions, Some(1));
    // a second contender with the stale object loses
    let mut stale = created.clone();
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let e = api_err(
        leases
            .replace("orca-leader", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);

    // events.k8s.io events are core events too
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let target = cms
        .create(&PostParams::default(), &cm("subject", json!({})))
        .await
        .unwrap();
    let recorder = Recorder::new(
        c.clone(),
        Reporter {
            controller: "orca-test".into(),
            instance: Some("orca-test-0".into()),
        },
    );
    recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "Tested".into(),
                note: Some("hello from kube-rs".into()),
                action: "Test".into(),
                secondary: None,
            },
            &target.object_ref(&()),
        )
        .await
        .unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(c.clone());
    let events = core.list(&ListParams::default()).await.unwrap();
    let ev = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("Tested"))
        .expect("core event");
    assert_eq!(ev.message.as_deref(), Some("hello from kube-rs"));
    assert_eq!(ev.involved_object.name.as_deref(), Some("subject"));
    assert_eq!(ev.reporting_component.as_deref(), Some("orca-test"));
    let by_object = core
        .list(&ListParams::default().fields("involvedObject.name=subject"))
        .await
        .unwrap();
    assert_eq!(by_object.items.len(), 1);
    sb.shutdown();
}

#[tokio::test]
async fn snapshot_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("state.json");
    let addr = "127.0.0.1:0".parse().unwrap();
    let server = orca_sandbox::apiserver::ApiServer::start(addr, Some(snap.clone())).unwrap();
    let kc = dir.path().join("kubeconfig");
    orca_sandbox::apiserver::write_kubeconfig(&kc, &server.url()).unwrap();
    let sb_client = client_for(&kc).await;
    install_widgets(&sb_client).await;
    let widgets: Api<Widget> = Api::default_namespaced(sb_client.clone());
    widgets
        .create(&PostParams::default(), &widget("kept", 2))
        .await
        .unwrap();
    let rv = widgets
        .get("kept")
        .await
        .unwrap()
        .resource_version()
        .unwrap();
    server.shutdown().unwrap();

    let server = orca_sandbox::apiserver::ApiServer::start(addr, Some(snap.clone())).unwrap();
    orca_sandbox::apiserver::write_kubeconfig(&kc, &server.url()).unwrap();
    let c2 = client_for(&kc).await;
    let widgets: Api<Widget> = Api::default_namespaced(c2.clone());
    let w = widgets.get("kept").await.unwrap();
    assert_eq!(w.resource_version().unwrap(), rv);
    // resourceVersions keep growing after a restart
    let w2 = widgets
        .create(&PostParams::default(), &widget("new", 1))
        .await
        .unwrap();
    assert!(w2.resource_version().unwrap().parse::<u64>().unwrap() > rv.parse::<u64>().unwrap());
    server.shutdown().unwrap();
}

#[test]
fn resource_kinds_match_k8s_openapi() {
    // the built-in kinds served are the ones k8s-openapi types address
    assert_eq!(ConfigMap::api_version(&()), "v1");
    assert_eq!(StatefulSet::plural(&()), "statefulsets");
    assert_eq!(Lease::group(&()), "coordination.k8s.io");
}

#[tokio::test]
async fn metadata_only_reads_and_watches() {
    let sb = Sandbox::api_server();
    let c = sb.client().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let mut m = cm("meta", json!({"big": "payload"}));
    m.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    cms.create(&PostParams::default(), &m).await.unwrap();
    let pom = cms.get_metadata("meta").await.unwrap();
    assert_eq!(pom.metadata.name.as_deref(), Some("meta"));
    assert_eq!(pom.metadata.labels.unwrap()["a"], "b");
    let list = cms.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items
            .iter()
            .filter(|i| i.name_any() != ROOT_CA)
            .count(),
        1
    );
    let meta_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::default_namespaced(c.clone());
    let mut stream = watcher(meta_api, watcher::Config::default()).boxed();
    let names = tokio::time::timeout(Duration::from_secs(10), async {
        let mut v = Vec::new();
        while let Some(ev) = stream.try_next().await.unwrap() {
            match ev {
                watcher::Event::InitApply(o) if o.name_any() != ROOT_CA => v.push(o.name_any()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        v
    })
    .await
    .expect("metadata watcher");
    assert_eq!(names, ["meta"]);
    sb.shutdown();
}

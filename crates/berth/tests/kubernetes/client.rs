//! kube-rs, the Rust client library, against `berth server` with the admin kubeconfig:
//! typed create/get/list/replace/patch/delete, the status and scale subresources,
//! defaults and validation, watches, dry runs, finalizers and cascading deletes.

use std::collections::BTreeMap;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::server::Server;

/// A kube-rs client from the server's admin kubeconfig.
pub(crate) async fn client(server: &Server) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The API's refusal of `result`: its HTTP code and message.
fn refusal<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected the API to refuse, got {other:?}"),
    }
}

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(map(labels)),
            ..Default::default()
        },
        data: Some(map(data)),
        ..Default::default()
    }
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "webapp:1"}]},
            },
        },
    }))
    .unwrap()
}

async fn config_maps(api: &Api<ConfigMap>) {
    let post = PostParams::default();
    let made = api
        .create(&post, &config_map("one", &[("tier", "web")], &[("a", "1")]))
        .await
        .unwrap();
    assert!(made.uid().is_some() && made.resource_version().is_some());
    api.create(&post, &config_map("two", &[("tier", "db")], &[]))
        .await
        .unwrap();
    let (code, message) = refusal(api.create(&post, &config_map("one", &[], &[])).await);
    assert_eq!(
        (code, message.as_str()),
        (409, "configmaps \"one\" already exists")
    );

    let web = api
        .list(&ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    let names: Vec<String> = web.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["one"]);
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.metadata.continue_.is_some_and(|c| !c.is_empty()));

    // An update from a stale copy is refused; one from the current copy lands.
    let mut current = api.get("one").await.unwrap();
    current.data = Some(BTreeMap::from([("a".into(), "2".into())]));
    api.replace("one", &post, &current).await.unwrap();
    let (code, _) = refusal(api.replace("one", &post, &made).await);
    assert_eq!(code, 409);

    let merge = Patch::Merge(json!({"data": {"b": "3"}}));
    api.patch("one", &PatchParams::default(), &merge)
        .await
        .unwrap();
    let strategic = Patch::Strategic(json!({"data": {"a": null}}));
    let patched = api
        .patch("one", &PatchParams::default(), &strategic)
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap(),
        BTreeMap::from([("b".to_string(), "3".to_string())])
    );

    // A dry run is answered like the real thing and changes nothing.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, &config_map("dry", &[], &[]))
        .await
        .unwrap();
    assert!(api.get_opt("dry").await.unwrap().is_none());

    let deleted = api.delete("two", &DeleteParams::default()).await.unwrap();
    assert!(deleted.is_right(), "a plain delete answers with a Status");
    assert!(api.get_opt("two").await.unwrap().is_none());
}

/// A finalizer holds a deleted object until whoever owns it lets go.
async fn finalizers(api: &Api<ConfigMap>) {
    let mut held = config_map("held", &[], &[]);
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &held).await.unwrap();
    let deleted = api.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = deleted.left().expect("the object stays, marked");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    api.patch("held", &PatchParams::default(), &release)
        .await
        .unwrap();
    assert!(api.get_opt("held").await.unwrap().is_none());
}

async fn pods(api: &Api<Pod>) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "webapp:1"}]},
    }))
    .unwrap();
    let made = api.create(&PostParams::default(), &pod).await.unwrap();
    let spec = made.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(
        spec.containers[0].image_pull_policy.as_deref(),
        Some("IfNotPresent")
    );
    assert_eq!(made.status.unwrap().phase.as_deref(), Some("Pending"));

    let imageless: Pod = serde_json::from_value(json!({
        "metadata": {"name": "broken"}, "spec": {"containers": [{"name": "c"}]},
    }))
    .unwrap();
    let (code, message) = refusal(api.create(&PostParams::default(), &imageless).await);
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "Pod \"broken\" is invalid: spec.containers[0].image: Required value"
    );

    // Only /status changes the status, and it changes nothing else.
    let running = Patch::Merge(json!({"status": {"phase": "Running"}, "spec": {"nodeName": "x"}}));
    let after = api
        .patch_status("web", &PatchParams::default(), &running)
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(after.spec.unwrap().node_name, None);
    let ignored = Patch::Merge(json!({"status": {"phase": "Failed"}}));
    let after = api
        .patch("web", &PatchParams::default(), &ignored)
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Running"));

    // The scheduler's binding: once, and the pod is marked scheduled.
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "web", "annotations": {"example.com/placed-by": "test"}},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
    });
    let post = PostParams::default();
    let misnamed = json!({"metadata": {"name": "other"}, "target": {"name": "node-1"}});
    let refused = api
        .create_subresource::<_, serde_json::Value>("binding", "web", &post, &misnamed)
        .await;
    assert_eq!(
        refusal(refused),
        (
            400,
            "name in URL does not match name in Binding object".into()
        )
    );
    let bound: serde_json::Value = api
        .create_subresource("binding", "web", &post, &binding)
        .await
        .unwrap();
    assert_eq!(bound["status"], "Success");
    let pod = api.get("web").await.unwrap();
    let annotations = pod.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations["example.com/placed-by"], "test");
    assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node-1"));
    let conditions = pod.status.unwrap().conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
    );
    let again = api
        .create_subresource::<_, serde_json::Value>("binding", "web", &post, &binding)
        .await;
    assert_eq!(refusal(again).0, 409);
}

async fn deployments(api: &Api<Deployment>) {
    let made = api
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    assert_eq!(made.metadata.generation, Some(1));
    let spec = made.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.unwrap().type_.as_deref(),
        Some("RollingUpdate")
    );

    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let to_three = Patch::Merge(json!({"spec": {"replicas": 3}}));
    api.patch_scale("web", &PatchParams::default(), &to_three)
        .await
        .unwrap();
    let scaled = api.get("web").await.unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));
    assert_eq!(scaled.metadata.generation, Some(2));

    // Server-side apply makes the object, then merges changes by field ownership.
    let apply = PatchParams::apply("berth-test");
    let mut declared = deployment("applied");
    api.patch("applied", &apply, &Patch::Apply(&declared))
        .await
        .unwrap();
    declared.spec.as_mut().unwrap().replicas = Some(4);
    let applied = api
        .patch("applied", &apply, &Patch::Apply(&declared))
        .await
        .unwrap();
    assert_eq!(applied.spec.unwrap().replicas, Some(4));
    // The appliers' entries; the deployment controller may have written its revision
    // annotation meanwhile, under kube-controller-manager's name.
    let (appliers, updaters): (Vec<_>, Vec<_>) = applied
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .partition(|m| m.operation.as_deref() == Some("Apply"));
    let appliers: Vec<_> = appliers.into_iter().filter_map(|m| m.manager).collect();
    assert_eq!(appliers, ["berth-test"]);
    for updater in updaters {
        assert_eq!(updater.manager.as_deref(), Some("kube-controller-manager"));
    }
    let rival = PatchParams::apply("rival");
    declared.spec.as_mut().unwrap().replicas = Some(2);
    let (code, message) = refusal(api.patch("applied", &rival, &Patch::Apply(&declared)).await);
    assert_eq!(code, 409, "{message}");
    api.patch("applied", &rival.force(), &Patch::Apply(&declared))
        .await
        .unwrap();

    let mut unselected = deployment("stray");
    unselected
        .spec
        .as_mut()
        .unwrap()
        .selector
        .match_labels
        .replace(BTreeMap::from([("app".into(), "other".into())]));
    let (code, message) = refusal(api.create(&PostParams::default(), &unselected).await);
    assert_eq!(code, 422);
    assert!(
        message.starts_with("Deployment.apps \"stray\" is invalid: spec.template.metadata.labels"),
        "{message}"
    );
}

/// Deleting an owner deletes what it owns, unless the dependents are to be orphaned:
/// the garbage collector's work, which follows the DELETE.
/// (The pods name the ReplicaSet as an owner but not as their controller, so that the
/// ReplicaSet controller leaves them alone.)
async fn cascades(client: &Client) {
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "cascade");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "cascade");
    for (set, policy) in [
        ("first", DeleteParams::foreground()),
        ("gone", DeleteParams::background()),
        ("kept", DeleteParams::orphan()),
    ] {
        let owner: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": set},
            "spec": {"selector": {"matchLabels": {"set": set}}, "template": {
                "metadata": {"labels": {"set": set}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        }))
        .unwrap();
        let owner = sets.create(&PostParams::default(), &owner).await.unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("{set}-pod"), "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": set,
                "uid": owner.uid().unwrap(), "controller": false, "blockOwnerDeletion": true}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let deleted = sets.delete(set, &policy).await.unwrap();
        // Foreground and Orphan leave the owner being deleted, with the finalizer that
        // asks the garbage collector for them; Background removes it at once.
        let finalizers = deleted.left().map(|owner| owner.finalizers().to_vec());
        let expected = match set {
            "first" => Some(vec!["foregroundDeletion".to_string()]),
            "kept" => Some(vec!["orphan".to_string()]),
            _ => None,
        };
        assert_eq!(finalizers, expected, "{set}");
    }
    // What the garbage collector watches: the objects' metadata alone.
    let metadata = pods.list_metadata(&ListParams::default()).await.unwrap();
    assert!(
        metadata
            .items
            .iter()
            .all(|p| p.types.as_ref().unwrap().kind == "PartialObjectMetadata")
    );
    assert!(!metadata.items.is_empty());
    // The garbage collector does the rest, after the DELETE has answered.
    settled(&pods, "first-pod", |pod: Option<&Pod>| pod.is_none()).await;
    settled(&sets, "first", |set: Option<&ReplicaSet>| set.is_none()).await;
    settled(&pods, "gone-pod", |pod: Option<&Pod>| pod.is_none()).await;
    let orphaned = |pod: Option<&Pod>| pod.is_some_and(|p| p.owner_references().is_empty());
    settled(&pods, "kept-pod", orphaned).await;
    settled(&sets, "kept", |set: Option<&ReplicaSet>| set.is_none()).await;
}

/// Waits up to 30 s for the object `name` to satisfy `condition`.
async fn settled<K>(api: &Api<K>, name: &str, condition: impl kube::runtime::wait::Condition<K>)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let wait = kube::runtime::wait::await_condition(api.clone(), name, condition);
    tokio::time::timeout(std::time::Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("{name} not settled within 30 s"))
        .unwrap();
}

/// What kube-runtime's watcher gives before it says its initial state is complete.
async fn initial_events(
    api: &Api<ConfigMap>,
    config: kube::runtime::watcher::Config,
) -> Vec<kube::runtime::watcher::Event<ConfigMap>> {
    let events = kube::runtime::watcher(api.clone(), config)
        .take_while(|e| {
            let done = matches!(e, Ok(kube::runtime::watcher::Event::InitDone));
            async move { !done }
        })
        .try_collect::<Vec<_>>();
    tokio::time::timeout(std::time::Duration::from_secs(10), events)
        .await
        .expect("the watcher's initial state within 10 s")
        .unwrap()
}

/// A watch from a list's resourceVersion sees what happens after it, in order.
async fn watches(api: &Api<ConfigMap>) {
    let listed = api.list(&ListParams::default()).await.unwrap();
    let version = listed.metadata.resource_version.unwrap();
    let stream = api.watch(&WatchParams::default(), &version).await.unwrap();
    let mut stream = Box::pin(stream);
    api.create(&PostParams::default(), &config_map("watched", &[], &[]))
        .await
        .unwrap();
    api.delete("watched", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), stream.try_next())
            .await
            .expect("a watch event within 10 s")
            .unwrap()
            .expect("the watch goes on");
        match event {
            WatchEvent::Added(cm) => seen.push(format!("added {}", cm.name_any())),
            WatchEvent::Deleted(cm) => seen.push(format!("deleted {}", cm.name_any())),
            WatchEvent::Bookmark(_) | WatchEvent::Modified(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["added watched", "deleted watched"]);

    // kube-runtime's watcher lists, then follows.
    let events = initial_events(api, kube::runtime::watcher::Config::default()).await;
    let initial = events
        .iter()
        .filter(|e| matches!(e, kube::runtime::watcher::Event::InitApply(_)))
        .count();
    assert_eq!(initial, listed.items.len());

    // Streaming lists: the initial objects as events, ended by a bookmark.
    let streaming = kube::runtime::watcher::Config::default().streaming_lists();
    let events = initial_events(api, streaming).await;
    assert_eq!(
        events.len(),
        1 + listed.items.len(),
        "Init, then each object"
    );
}

/// A watch from a revision the store has compacted away ends with 410 Expired, which
/// tells clients to list again.
fn compacted_watches_expire(server: &Server) {
    let first = server.kubectl_ok(&[
        "create",
        "configmap",
        "early",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={first}&timeoutSeconds=1"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        server.kubectl_ok(&["annotate", "--overwrite", "configmap", "early", "tick=now"]);
        let token = server.admin_token();
        let header = format!("Authorization: Bearer {token}");
        let answer = server.curl(&[&path, "-H", &header]);
        let text = String::from_utf8_lossy(&answer.stdout);
        if text.contains(r#""type":"ERROR""#) {
            let line: serde_json::Value =
                serde_json::from_str(text.lines().last().unwrap()).unwrap();
            assert_eq!(line["object"]["code"], 410, "{text}");
            assert_eq!(line["object"]["reason"], "Expired", "{text}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revision was not compacted within 30 s: {text}"
        );
    }
}

#[test]
fn compacted_watches_expire_on_sqlite() {
    compacted_watches_expire(&Server::start_with(
        "compact-sqlite",
        false,
        &["--compaction-interval", "1s"],
    ));
}

#[test]
fn compacted_watches_expire_on_etcd() {
    compacted_watches_expire(&Server::start_with(
        "compact-etcd",
        true,
        &["--compaction-interval", "1s"],
    ));
}

fn client_suite(server: &Server) {
    server.kubectl_ok(&["create", "namespace", "client"]);
    server.kubectl_ok(&["create", "namespace", "cascade"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = client(server).await;
        let config_maps_api: Api<ConfigMap> = Api::namespaced(client.clone(), "client");
        config_maps(&config_maps_api).await;
        finalizers(&config_maps_api).await;
        watches(&config_maps_api).await;
        pods(&Api::namespaced(client.clone(), "client")).await;
        deployments(&Api::namespaced(client.clone(), "client")).await;
        cascades(&client).await;
    });
}

#[test]
fn kube_rs_drives_the_server_on_sqlite() {
    client_suite(&Server::start("kube-sqlite", false));
}

#[test]
fn kube_rs_drives_the_server_on_etcd() {
    client_suite(&Server::start("kube-etcd", true));
}

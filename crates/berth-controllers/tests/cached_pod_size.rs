//! What a cached pod costs in memory, counted by the allocator: the controller manager
//! keeps one per pod of the cluster, and at 150,000 pods that cost is most of the
//! server's memory (decision 0025).

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use berth_controllers::cached_pod::CachedPod;
use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The system allocator, counting the bytes it holds.
struct Counting;

static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: allocated above with this layout.
        unsafe { System.dealloc(pointer, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// A running pod as the API server sends it: what a ReplicaSet's template, admission
/// and a kubelet make of one container.
fn running_pod(i: usize) -> String {
    let condition = |kind: &str| {
        json!({"type": kind, "status": "True", "lastProbeTime": null,
               "lastTransitionTime": "2026-12-05T10:00:01Z"})
    };
    let conditions = ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map(condition);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("web-{i:06}"), "namespace": "default",
            "uid": format!("0b5c6a1e-1111-2222-3333-{i:012}"), "resourceVersion": "123456",
            "creationTimestamp": "2026-12-05T10:00:00Z", "labels": {"app": "web", "shard": "3"},
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                "apiVersion": "v1", "time": "2026-12-05T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}],
        },
        "spec": {
            "containers": [{
                "name": "app", "image": "webapp:1",
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent",
                "volumeMounts": [{"name": "kube-api-access-abcde", "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
            }],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "nodeName": "sim-0042",
            "securityContext": {}, "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
            ],
            "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            ], "defaultMode": 420}}],
        },
        "status": {
            "phase": "Running", "podIP": "10.0.42.7", "podIPs": [{"ip": "10.0.42.7"}],
            "hostIP": "192.168.0.42", "startTime": "2026-12-05T10:00:01Z", "qosClass": "Burstable",
            "conditions": conditions,
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "image": "webapp:1", "imageID": "", "containerID": "berth://0123", "started": true,
                "state": {"running": {"startedAt": "2026-12-05T10:00:01Z"}}}],
        },
    })
    .to_string()
}

/// The bytes held per pod when `count` pods are read as `K`, each behind an Arc as the
/// controllers' caches hold them.
fn held_per_pod<K: DeserializeOwned>(texts: &[String]) -> isize {
    let before = HELD.load(Ordering::Relaxed);
    let pods: Vec<Arc<K>> = texts
        .iter()
        .map(|text| Arc::new(serde_json::from_str(text).unwrap()))
        .collect();
    let held = HELD.load(Ordering::Relaxed) - before;
    drop(pods);
    held / texts.len() as isize
}

#[test]
fn a_cached_pod_is_a_fraction_of_a_typed_one() {
    let texts: Vec<String> = (0..1000).map(running_pod).collect();
    let cached = held_per_pod::<CachedPod>(&texts);
    let typed = held_per_pod::<Pod>(&texts);
    assert!(
        cached <= 1750 && cached * 10 < typed,
        "a cached pod holds {cached} bytes, a typed one {typed}"
    );
}

/// An `Arc<CachedPod>` is one allocation per pod, rounded up to one of jemalloc's size
/// classes; 640 bytes is the class it fits (the next is 768, 19 MB more at 150,000 pods).
#[test]
fn a_cached_pod_fits_its_allocator_class() {
    let with_counts = size_of::<CachedPod>() + 2 * size_of::<usize>();
    assert!(with_counts <= 640, "Arc<CachedPod> is {with_counts} bytes");
}

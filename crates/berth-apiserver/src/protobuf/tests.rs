//! Bodies encoded with k8s-pb's prost types (what kubectl's Go types write) read back
//! through the descriptors.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{LabelSelector, MicroTime, ObjectMeta, Time};
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;

use super::*;

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    [MAGIC, &unknown.encode_to_vec()].concat()
}

const DEPLOYMENT: Kind = Kind::new("apps", "v1", "Deployment");
const SERVICE: Kind = Kind::new("", "v1", "Service");

fn decoded(kind: Kind, message: &impl Message) -> Result<Value, Status> {
    decode(
        &envelope(&kind.api_version(), kind.name, message.encode_to_vec()),
        kind,
    )
}

fn refusal(kind: Kind, body: &[u8]) -> (u16, String) {
    let status = decode(body, kind).unwrap_err();
    (status.code().as_u16(), status.message().to_string())
}

/// Metadata as a Go client writes it: every non-pointer field, empty or not.
fn metadata(name: &str) -> Option<ObjectMeta> {
    Some(ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(Time::default()),
        labels: [("app".to_string(), name.to_string())].into(),
        ..Default::default()
    })
}

#[test]
fn a_deployment_reads_as_kubectl_would_send_it_in_json() {
    let container = core::Container {
        name: Some("web".into()),
        image: Some("busybox".into()),
        image_pull_policy: Some(String::new()),
        resources: Some(core::ResourceRequirements {
            limits: [(
                "cpu".to_string(),
                Quantity {
                    string: Some("500m".into()),
                },
            )]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let deployment = apps::Deployment {
        metadata: metadata("web"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(2),
            selector: Some(LabelSelector {
                match_labels: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            }),
            template: Some(core::PodTemplateSpec {
                metadata: metadata("web"),
                spec: Some(core::PodSpec {
                    containers: vec![container],
                    restart_policy: Some(String::new()),
                    ..Default::default()
                }),
            }),
            strategy: Some(apps::DeploymentStrategy::default()),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    };
    let meta = json!({"name": "web", "labels": {"app": "web"}});
    assert_eq!(
        decoded(DEPLOYMENT, &deployment).unwrap(),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": meta,
                    "spec": {"containers": [{
                        "name": "web",
                        "image": "busybox",
                        "resources": {"limits": {"cpu": "500m"}},
                    }]},
                },
                "strategy": {},
            },
            "status": {},
        })
    );
}

#[test]
fn int_or_string_is_a_number_or_a_string() {
    let port = |target: IntOrString| core::ServicePort {
        port: Some(80),
        target_port: Some(target),
        ..Default::default()
    };
    let service = core::Service {
        metadata: metadata("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                port(IntOrString {
                    r#type: Some(0),
                    int_val: Some(8080),
                    str_val: Some(String::new()),
                }),
                port(IntOrString {
                    r#type: Some(1),
                    int_val: Some(0),
                    str_val: Some("http".into()),
                }),
                port(IntOrString::default()),
            ],
            ..Default::default()
        }),
        status: None,
    };
    let object = decoded(SERVICE, &service).unwrap();
    let targets: Vec<&Value> = (0..3)
        .map(|i| &object["spec"]["ports"][i]["targetPort"])
        .collect();
    assert_eq!(targets, [&json!(8080), &json!("http"), &json!(0)]);

    let mut wrong = service.clone();
    wrong.spec.as_mut().unwrap().ports[1].target_port = Some(IntOrString {
        r#type: Some(7),
        ..Default::default()
    });
    let (code, message) = refusal(SERVICE, &envelope("v1", "Service", wrong.encode_to_vec()));
    assert_eq!(code, 400);
    assert!(
        message.contains(
            "spec.ports[1].targetPort: an IntOrString's type is 0 (int) or 1 (string), not 7"
        ),
        "{message}"
    );
}

#[test]
fn times_are_rfc3339_and_zero_times_are_left_out() {
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: Some(ObjectMeta {
            name: Some("node-a".into()),
            creation_timestamp: Some(Time {
                seconds: Some(1_700_000_000),
                nanos: Some(123),
            }),
            deletion_timestamp: Some(Time::default()),
            ..Default::default()
        }),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            renew_time: Some(MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_000),
            }),
            ..Default::default()
        }),
    };
    let kind = Kind::new("coordination.k8s.io", "v1", "Lease");
    let object = decoded(kind, &lease).unwrap();
    assert_eq!(
        object["metadata"],
        json!({"name": "node-a", "creationTimestamp": "2023-11-14T22:13:20Z"})
    );
    assert_eq!(object["spec"]["renewTime"], "2023-11-14T22:13:20.123456Z");

    let mut early = lease.clone();
    early.spec.as_mut().unwrap().renew_time = Some(MicroTime {
        seconds: Some(-1),
        nanos: Some(0),
    });
    let (code, message) = refusal(
        kind,
        &envelope("coordination.k8s.io/v1", "Lease", early.encode_to_vec()),
    );
    assert_eq!(code, 400);
    assert!(message.contains("spec.renewTime: -1 seconds"), "{message}");
}

#[test]
fn bytes_are_base64_and_quantities_strings() {
    let secret = core::Secret {
        metadata: metadata("s"),
        data: [
            ("a".to_string(), b"b".to_vec()),
            ("empty".to_string(), Vec::new()),
        ]
        .into(),
        r#type: Some("Opaque".into()),
        ..Default::default()
    };
    let object = decoded(Kind::new("", "v1", "Secret"), &secret).unwrap();
    assert_eq!(object["data"], json!({"a": "Yg==", "empty": ""}));
    assert_eq!(object["type"], "Opaque");

    let claim = core::PersistentVolumeClaim {
        metadata: metadata("c"),
        spec: Some(core::PersistentVolumeClaimSpec {
            resources: Some(core::VolumeResourceRequirements {
                requests: [
                    (
                        "storage".to_string(),
                        Quantity {
                            string: Some("1Gi".into()),
                        },
                    ),
                    ("none".to_string(), Quantity { string: None }),
                ]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    let object = decoded(Kind::new("", "v1", "PersistentVolumeClaim"), &claim).unwrap();
    assert_eq!(
        object["spec"]["resources"]["requests"],
        json!({"storage": "1Gi", "none": "0"})
    );
}

#[test]
fn raw_extensions_carry_json() {
    let revision = |raw: &[u8]| apps::ControllerRevision {
        metadata: metadata("r"),
        data: Some(RawExtension {
            raw: Some(raw.to_vec()),
        }),
        revision: Some(3),
    };
    let kind = Kind::new("apps", "v1", "ControllerRevision");
    let object = decoded(kind, &revision(br#"{"spec":{"x":1}}"#)).unwrap();
    assert_eq!(object["data"], json!({"spec": {"x": 1}}));
    assert_eq!(object["revision"], 3);
    let (code, message) = refusal(
        kind,
        &envelope(
            "apps/v1",
            "ControllerRevision",
            revision(b"\x01").encode_to_vec(),
        ),
    );
    assert_eq!(code, 400);
    assert!(
        message.contains("data: the embedded object is not JSON"),
        "{message}"
    );
}

#[test]
fn bad_bodies_are_refused_naming_the_problem() {
    let deployment = apps::Deployment {
        metadata: metadata("web"),
        ..Default::default()
    }
    .encode_to_vec();
    let cases: [(&[u8], &str); 5] = [
        (b"{}", "does not start with Kubernetes' magic bytes"),
        (b"k8s\0\xff\xff", "the protobuf envelope is malformed"),
        (
            &envelope("v1", "Service", deployment.clone()),
            "the kind in the data (Service) does not match",
        ),
        (
            &envelope("apps/v1beta1", "Deployment", deployment.clone()),
            "the apiVersion in the data (apps/v1beta1)",
        ),
        (
            &envelope(
                "apps/v1",
                "Deployment",
                deployment[..deployment.len() - 1].to_vec(),
            ),
            "the Deployment in the protobuf body is malformed",
        ),
    ];
    for (body, problem) in cases {
        let (code, message) = refusal(DEPLOYMENT, body);
        assert_eq!(code, 400, "{message}");
        assert!(
            message.contains(problem),
            "{message} does not say {problem}"
        );
    }
}

#[test]
fn kinds_without_a_message_are_unsupported_media() {
    let widget = Kind::new("example.com", "v1", "Widget");
    let (code, message) = refusal(widget, &envelope("example.com/v1", "Widget", Vec::new()));
    assert_eq!(code, 415);
    assert!(
        message.contains("Widget is not served in application/vnd.kubernetes.protobuf"),
        "{message}"
    );
}

#[test]
fn every_served_kind_and_the_extra_ones_have_a_message() {
    let kinds = crate::resources::BUILT_IN.iter().map(|r| r.protobuf_kind());
    let extra = [
        SCALE,
        SELF_SUBJECT_ACCESS_REVIEW,
        SELF_SUBJECT_RULES_REVIEW,
        SUBJECT_ACCESS_REVIEW,
        SELF_SUBJECT_REVIEW,
        TOKEN_REVIEW,
        EVICTION,
    ];
    for kind in kinds.chain(extra) {
        assert!(
            DESCRIPTORS
                .get_message_by_name(&kind.message_name())
                .is_some(),
            "{kind:?}"
        );
    }
}

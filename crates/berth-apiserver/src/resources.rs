//! The served resources as values: each built-in kind's plural, group, versions, scope,
//! schema and the hooks that shape it (admission, stored and served forms, scale), the
//! table of them all (`BUILT_IN`), to which the registry (crate::registry) adds the
//! custom resources. The verbs on them are crate::handlers'.

use std::sync::{Arc, LazyLock};

use axum::http::StatusCode;
use serde_json::{Value, json};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::networking::v1 as networking;
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1 as storage;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionVersion,
    CustomResourceSubresourceScale, JSONSchemaProps,
};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;

use crate::kinds::{self, Admitted, FieldValidation, Schema};
use crate::status::Status;

/// A resource the server serves: one of Kubernetes' own kinds, or a version of a
/// CustomResourceDefinition's — a runtime value either way, looked up in the
/// [`crate::registry::Registry`].
#[derive(Debug)]
pub(crate) struct Resource {
    /// Its API group: empty for the core group.
    pub(crate) group: String,
    /// Its version: `v1`, `v2`.
    pub(crate) version: String,
    /// The URL name: `configmaps`.
    pub(crate) plural: String,
    /// `configmap`.
    pub(crate) singular: String,
    /// `ConfigMap`.
    pub(crate) kind: String,
    /// Whether its objects live in namespaces.
    pub(crate) namespaced: bool,
    /// kubectl's short names: `cm`.
    pub(crate) short_names: Vec<String>,
    /// Whether only its `/status` subresource changes its status.
    pub(crate) has_status: bool,
    /// Which names its objects may have.
    pub(crate) name_rule: kinds::NameRule,
    /// Its categories: `all` for the workloads `kubectl get all` lists.
    pub(crate) categories: Vec<String>,
    /// Where its objects are stored: `/registry/configmaps/`.
    pub(crate) directory: String,
    /// What its objects are read through.
    pub(crate) definition: Definition,
}

/// What a resource's objects are read, checked and printed through.
#[derive(Debug)]
pub(crate) enum Definition {
    /// One of Kubernetes' kinds, through its k8s-openapi type.
    BuiltIn {
        admit: kinds::Admit,
        /// Adds the kind's OpenAPI schema (and those it refers to) to a generator; the
        /// schema's name: `io.k8s.api.apps.v1.Deployment`.
        schema: fn(&mut schemars::SchemaGenerator) -> String,
        /// How its objects are turned into and out of the shape they are stored in,
        /// when that is another version's: events.k8s.io Events are kept as core ones.
        reshape: Option<Reshape>,
        /// What its requests do beyond every kind's.
        hooks: kinds::Hooks,
    },
    /// A version of a CustomResourceDefinition, through its structural schema.
    Custom(Arc<CustomVersion>),
}

/// A built-in kind's way into and out of another version's stored shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reshape {
    /// A stored object in the kind's shape.
    pub(crate) present: fn(Value) -> Value,
    /// An object of the kind in the stored shape.
    pub(crate) store: fn(Value) -> Value,
}

impl Resource {
    /// `v1` or `apps/v1`, as apiVersion fields say it.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store prefix of its objects in `namespace` (none: a cluster-scoped kind's).
    pub(crate) fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(namespace) => format!("{}{namespace}/", self.directory),
            None => self.directory.clone(),
        }
    }

    /// `Deployment.apps`, as kube-apiserver's messages name a kind.
    pub(crate) fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Which message a protobuf body for this resource holds.
    pub(crate) fn protobuf_kind(&self) -> crate::protobuf::Kind<'_> {
        crate::protobuf::Kind::new(&self.group, &self.version, &self.kind)
    }

    /// `object` read through the kind's schema: typed, defaulted and checked — a custom
    /// object's transition rules against `old`, what an update changes.
    pub(crate) fn admit(
        &self,
        object: Value,
        (validation, old): (FieldValidation, Option<&Value>),
    ) -> Result<Admitted, Status> {
        match &self.definition {
            Definition::BuiltIn { admit, .. } => admit(&self.qualified_kind(), object, validation),
            Definition::Custom(version) => version.admit(self, object, (validation, old)),
        }
    }

    /// Where its objects keep what a `/scale` subresource shows, if it has one.
    pub(crate) fn scale(&self) -> Option<ScalePaths<'_>> {
        match &self.definition {
            Definition::BuiltIn { .. } => SCALABLE
                .iter()
                .find(|(plural, _)| *plural == self.plural)
                .map(|(_, labels)| ScalePaths {
                    spec_replicas: ".spec.replicas",
                    status_replicas: ".status.replicas",
                    selector: ScaleSelector::Labels(labels),
                }),
            Definition::Custom(version) => version.scale.as_ref().map(|scale| ScalePaths {
                spec_replicas: &scale.spec_replicas_path,
                status_replicas: &scale.status_replicas_path,
                selector: ScaleSelector::Text(scale.label_selector_path.as_deref()),
            }),
        }
    }

    /// Whether clients see its objects exactly as stored, so lists and watches can send
    /// the stored JSON as it is.
    pub(crate) fn shown_as_stored(&self) -> bool {
        matches!(self.definition, Definition::BuiltIn { reshape: None, .. })
    }

    /// A stored object as this resource's clients see it: a custom object in the
    /// version they asked for, whichever it was written in — with `conversion: None`
    /// only its apiVersion differs — and a reshaped built-in one in its own shape.
    pub(crate) fn present(&self, mut object: Value) -> Value {
        match &self.definition {
            Definition::BuiltIn { reshape: None, .. } => object,
            Definition::BuiltIn {
                reshape: Some(reshape),
                ..
            } => (reshape.present)(object),
            Definition::Custom(_) => {
                object["apiVersion"] = json!(self.api_version());
                object
            }
        }
    }

    /// An object as written to this resource, encoded in the shape it is stored in.
    pub(crate) fn encode(&self, object: &Value) -> Vec<u8> {
        let encoded = match &self.definition {
            Definition::BuiltIn {
                reshape: Some(reshape),
                ..
            } => serde_json::to_vec(&(reshape.store)(object.clone())),
            _ => serde_json::to_vec(object),
        };
        encoded.unwrap_or_default()
    }

    /// What its requests do beyond every kind's: nothing, for a custom resource.
    pub(crate) fn hooks(&self) -> kinds::Hooks {
        match &self.definition {
            Definition::BuiltIn { hooks, .. } => *hooks,
            Definition::Custom(_) => kinds::Hooks::None,
        }
    }

    /// The version of a CustomResourceDefinition this resource is, if it is one.
    pub(crate) fn custom(&self) -> Option<&CustomVersion> {
        match &self.definition {
            Definition::Custom(version) => Some(version),
            Definition::BuiltIn { .. } => None,
        }
    }
}

/// The built-in resources with a `/scale` subresource, and where their selector's
/// labels are.
const SCALABLE: [(&str, &str); 4] = [
    ("deployments", ".spec.selector.matchLabels"),
    ("replicasets", ".spec.selector.matchLabels"),
    ("statefulsets", ".spec.selector.matchLabels"),
    ("replicationcontrollers", ".spec.selector"),
];

/// Where an object keeps what its `/scale` subresource shows, as simple JSON paths
/// (`.spec.replicas`).
pub(crate) struct ScalePaths<'a> {
    pub(crate) spec_replicas: &'a str,
    pub(crate) status_replicas: &'a str,
    pub(crate) selector: ScaleSelector<'a>,
}

/// Where a scalable object keeps the selector its `/scale` shows.
pub(crate) enum ScaleSelector<'a> {
    /// A text field holding it (`.status.selector`): a custom resource's, when its
    /// definition names one.
    Text(Option<&'a str>),
    /// A map of labels: a built-in kind's.
    Labels(&'a str),
}

macro_rules! resource {
    ($type:ty, $singular:expr, $namespaced:expr, [$($short:expr),*]) => {
        resource!($type, $singular, $namespaced, [$($short),*], None)
    };
    ($type:ty, $singular:expr, $namespaced:expr, [$($short:expr),*], $reshape:expr) => {
        Resource {
            group: <$type as k8s_openapi::Resource>::GROUP.to_string(),
            version: <$type as k8s_openapi::Resource>::VERSION.to_string(),
            plural: <$type as k8s_openapi::Resource>::URL_PATH_SEGMENT.to_string(),
            singular: $singular.to_string(),
            kind: <$type as k8s_openapi::Resource>::KIND.to_string(),
            namespaced: $namespaced,
            short_names: vec![$($short.to_string()),*],
            has_status: <$type as Schema>::HAS_STATUS,
            name_rule: <$type as Schema>::NAME_RULE,
            categories: <$type as Schema>::CATEGORIES.iter().map(|c| c.to_string()).collect(),
            directory: format!("/registry/{}/", <$type as k8s_openapi::Resource>::URL_PATH_SEGMENT),
            definition: Definition::BuiltIn {
                admit: kinds::admit::<$type>,
                schema: kinds::schema_of::<$type>,
                reshape: $reshape,
                hooks: <$type as Schema>::HOOKS,
            },
        }
    };
}

/// Kubernetes' kinds the server serves, each read through its k8s-openapi type
/// (crate::kinds); CustomResourceDefinitions add theirs in the registry.
pub(crate) static BUILT_IN: LazyLock<Vec<Arc<Resource>>> = LazyLock::new(|| {
    [
        resource!(core::Namespace, "namespace", false, ["ns"]),
        resource!(core::ConfigMap, "configmap", true, ["cm"]),
        resource!(core::Secret, "secret", true, []),
        resource!(core::Pod, "pod", true, ["po"]),
        resource!(core::Service, "service", true, ["svc"]),
        resource!(core::Endpoints, "endpoints", true, ["ep"]),
        resource!(core::Node, "node", false, ["no"]),
        resource!(core::Event, "event", true, ["ev"]),
        resource!(
            k8s_openapi::api::events::v1::Event,
            "event",
            true,
            ["ev"],
            Some(Reshape {
                present: crate::events::from_core,
                store: crate::events::to_core,
            })
        ),
        resource!(core::ServiceAccount, "serviceaccount", true, ["sa"]),
        resource!(core::PersistentVolume, "persistentvolume", false, ["pv"]),
        resource!(core::ResourceQuota, "resourcequota", true, ["quota"]),
        resource!(core::LimitRange, "limitrange", true, ["limits"]),
        resource!(
            core::PersistentVolumeClaim,
            "persistentvolumeclaim",
            true,
            ["pvc"]
        ),
        resource!(
            core::ReplicationController,
            "replicationcontroller",
            true,
            ["rc"]
        ),
        resource!(apps::Deployment, "deployment", true, ["deploy"]),
        resource!(apps::ReplicaSet, "replicaset", true, ["rs"]),
        resource!(apps::DaemonSet, "daemonset", true, ["ds"]),
        resource!(apps::StatefulSet, "statefulset", true, ["sts"]),
        resource!(apps::ControllerRevision, "controllerrevision", true, []),
        resource!(batch::Job, "job", true, []),
        resource!(batch::CronJob, "cronjob", true, ["cj"]),
        resource!(
            HorizontalPodAutoscaler,
            "horizontalpodautoscaler",
            true,
            ["hpa"]
        ),
        resource!(Lease, "lease", true, []),
        resource!(EndpointSlice, "endpointslice", true, []),
        resource!(PriorityClass, "priorityclass", false, ["pc"]),
        resource!(storage::StorageClass, "storageclass", false, ["sc"]),
        resource!(core::PodTemplate, "podtemplate", true, []),
        resource!(networking::Ingress, "ingress", true, ["ing"]),
        resource!(networking::IngressClass, "ingressclass", false, []),
        resource!(networking::NetworkPolicy, "networkpolicy", true, ["netpol"]),
        resource!(RuntimeClass, "runtimeclass", false, []),
        resource!(PodDisruptionBudget, "poddisruptionbudget", true, ["pdb"]),
        resource!(storage::CSIDriver, "csidriver", false, []),
        resource!(storage::VolumeAttachment, "volumeattachment", false, []),
        resource!(rbac::ClusterRole, "clusterrole", false, []),
        resource!(rbac::ClusterRoleBinding, "clusterrolebinding", false, []),
        resource!(rbac::Role, "role", true, []),
        resource!(rbac::RoleBinding, "rolebinding", true, []),
        resource!(
            MutatingWebhookConfiguration,
            "mutatingwebhookconfiguration",
            false,
            []
        ),
        resource!(
            ValidatingWebhookConfiguration,
            "validatingwebhookconfiguration",
            false,
            []
        ),
        resource!(
            ValidatingAdmissionPolicy,
            "validatingadmissionpolicy",
            false,
            []
        ),
        resource!(
            ValidatingAdmissionPolicyBinding,
            "validatingadmissionpolicybinding",
            false,
            []
        ),
        resource!(
            CertificateSigningRequest,
            "certificatesigningrequest",
            false,
            ["csr"]
        ),
        resource!(APIService, "apiservice", false, []),
        resource!(FlowSchema, "flowschema", false, []),
        resource!(
            PriorityLevelConfiguration,
            "prioritylevelconfiguration",
            false,
            []
        ),
        resource!(
            CustomResourceDefinition,
            "customresourcedefinition",
            false,
            ["crd", "crds"]
        ),
    ]
    .into_iter()
    .map(Arc::new)
    .collect()
});

/// The built-in resource served under `plural`, in whichever group (their plurals do
/// not repeat).
pub(crate) fn resource(plural: &str) -> Result<Arc<Resource>, Status> {
    BUILT_IN
        .iter()
        .find(|r| r.plural == plural)
        .cloned()
        .ok_or_else(not_served)
}

/// The 404 of a path that names nothing the server serves.
pub(crate) fn not_served() -> Status {
    Status::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// A served version of a definition: what its objects are checked and printed with.
#[derive(Debug)]
pub(crate) struct CustomVersion {
    /// Its `openAPIV3Schema`.
    schema: Option<JSONSchemaProps>,
    /// Its `additionalPrinterColumns`.
    pub(crate) columns: Vec<CustomResourceColumnDefinition>,
    /// Its scale subresource's paths, if it has one.
    pub(crate) scale: Option<CustomResourceSubresourceScale>,
}

impl CustomVersion {
    /// What `version` of a definition checks and prints its objects with.
    pub(crate) fn of(version: &CustomResourceDefinitionVersion) -> Self {
        Self {
            schema: version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.clone()),
            columns: version
                .additional_printer_columns
                .clone()
                .unwrap_or_default(),
            scale: version.subresources.as_ref().and_then(|s| s.scale.clone()),
        }
    }

    /// Its schema as OpenAPI documents carry it (any object, when it has none).
    pub(crate) fn schema_json(&self) -> Value {
        self.schema
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            )
    }

    /// `object` pruned, defaulted and validated by the version's schema.
    pub(crate) fn admit(
        &self,
        resource: &Resource,
        mut object: Value,
        (validation, old): (FieldValidation, Option<&Value>),
    ) -> Result<Admitted, Status> {
        let findings = match &self.schema {
            Some(schema) => berth_schema::apply(schema, &mut object, old),
            None => berth_schema::Findings::default(),
        };
        let mut admitted = kinds::judge(
            &resource.qualified_kind(),
            object,
            (findings.unknown, findings.errors),
            validation,
        )?;
        admitted.warnings.extend(findings.warnings);
        Ok(admitted)
    }
}

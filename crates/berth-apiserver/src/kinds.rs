//! The served kinds' schemas: every object a client writes is read into its k8s-openapi
//! type — so a wrong type is refused naming the field, and unknown fields are dropped,
//! warned about or refused as the request's `fieldValidation` asks — then given
//! Kubernetes' defaults and checked as kube-apiserver checks it, errors naming the field.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Endpoints, Event, Namespace, Node, PersistentVolume,
    PersistentVolumeClaim, Pod, PodSpec, PodTemplate, PodTemplateSpec, ReplicationController,
    Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass, VolumeAttachment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::status::Status;

/// What to do with fields the kind does not have: the `fieldValidation` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in `Warning` headers: the server's default.
    Warn,
    /// Refuse the request: kubectl's default.
    Strict,
}

impl FieldValidation {
    /// The request's choice; Warn when it made none.
    pub(crate) fn from_query(value: Option<&str>) -> Result<Self, Status> {
        match value.unwrap_or("Warn") {
            "Ignore" => Ok(Self::Ignore),
            "" | "Warn" => Ok(Self::Warn),
            "Strict" => Ok(Self::Strict),
            other => Err(Status::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", not {other:?}"
            ))),
        }
    }
}

/// An object as its schema reads it, with the warnings for the client.
pub(crate) struct Admitted {
    pub(crate) object: Value,
    pub(crate) warnings: Vec<String>,
}

/// Reads `object` of `kind` through its schema: typed, defaulted and checked.
pub(crate) type Admit = fn(&str, Value, FieldValidation) -> Result<Admitted, Status>;

/// Which names a kind's objects may have, as kube-apiserver's validation names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS subdomain (RFC 1123): most kinds.
    Subdomain,
    /// A DNS label: namespaces, which become parts of DNS names.
    Label,
    /// Any path segment (no `/` or `%`, not `.` or `..`): RBAC's roles and bindings,
    /// whose names are `system:`-prefixed.
    PathSegment,
}

/// What a kind's requests do beyond the path every kind's take (read through its
/// schema, admission, webhooks, the store). Named with the kind, in its [`Schema`], and
/// carried out by the layers that serve requests (`writes.rs`, `handlers.rs`,
/// `discovery.rs`), which ask for it instead of comparing resource names — a custom
/// resource may be called `pods` too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hooks {
    /// Nothing beyond the common path: most kinds, and every custom one.
    None,
    /// Namespaces: deleting one deletes what is in it; admission selects one by its own
    /// labels.
    Namespaces,
    /// Nodes: a new one keeps the status it is created with, as agents register.
    Nodes,
    /// Pods: ServiceAccount credentials, priority, LimitRange defaults and PodSecurity
    /// admission when created; quota counts them; `/binding`, `/eviction` and `/log`.
    Pods,
    /// PersistentVolumeClaims: the default StorageClass when created; quota counts
    /// them.
    Claims,
    /// Secrets: a legacy ServiceAccount token filled in when created.
    Secrets,
    /// ServiceAccounts: `/token`.
    ServiceAccounts,
    /// Services: cluster IPs and node ports claimed by writes, given back by deletion.
    Services,
    /// CustomResourceDefinitions: established by writes, rules the server cannot
    /// enforce warned of; their objects deleted with them.
    Definitions,
    /// CertificateSigningRequests: the requester recorded when created; `/approval`.
    SigningRequests,
    /// Roles and ClusterRoles: nobody writes rules they do not hold themselves.
    Roles,
    /// RoleBindings and ClusterRoleBindings: nobody binds a role whose rules they do
    /// not hold; the roleRef never changes.
    Bindings,
}

/// What the server knows of a kind beyond its fields: defaults and checks.
pub(crate) trait Schema: DeserializeOwned + Serialize {
    /// What its requests do beyond every kind's.
    const HOOKS: Hooks = Hooks::None;

    /// Whether the kind has a status that only its `/status` subresource changes.
    const HAS_STATUS: bool = false;

    /// Which names its objects may have.
    const NAME_RULE: NameRule = NameRule::Subdomain;

    /// The groups of resources kubectl asks for by one name (`kubectl get all`).
    const CATEGORIES: &'static [&'static str] = &[];

    /// Kubernetes' defaults for fields left out.
    fn default_fields(&mut self) {}

    /// What is wrong with the object, each naming its field; empty when valid.
    fn problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The kind's [`Admit`] for the resource table.
pub(crate) fn admit<K: Schema>(
    qualified_kind: &str,
    object: Value,
    validation: FieldValidation,
) -> Result<Admitted, Status> {
    let mut typed: K = serde_path_to_error::deserialize(&object).map_err(|e| {
        let kind = qualified_kind.split('.').next().unwrap_or_default();
        Status::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {}: {}",
            object["apiVersion"].as_str().unwrap_or_default(),
            e.path(),
            e.inner()
        ))
    })?;
    let read = serde_json::to_value(&typed).unwrap_or_default();
    let mut unknown = Vec::new();
    unknown_fields(&object, &read, "", &mut unknown);
    typed.default_fields();
    let problems = typed.problems();
    let admitted = serde_json::to_value(&typed).unwrap_or_default();
    judge(qualified_kind, admitted, (unknown, problems), validation)
}

/// The verdict on an object read through its schema, given the fields the schema does
/// not have and what is wrong with the rest: refused in kube-apiserver's words, or
/// admitted with a warning per unknown field when the request asked for warnings.
pub(crate) fn judge(
    qualified_kind: &str,
    object: Value,
    (unknown, problems): (Vec<String>, Vec<String>),
    validation: FieldValidation,
) -> Result<Admitted, Status> {
    let unknown: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if validation == FieldValidation::Strict && !unknown.is_empty() {
        let kind = qualified_kind.split('.').next().unwrap_or_default();
        let version = object["apiVersion"].as_str().unwrap_or_default();
        let version = version.rsplit('/').next().unwrap_or_default();
        return Err(Status::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            unknown.join(", ")
        )));
    }
    if !problems.is_empty() {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        return Err(Status::invalid_fields(qualified_kind, name, &problems));
    }
    let warnings = match validation {
        FieldValidation::Warn => unknown,
        _ => Vec::new(),
    };
    Ok(Admitted { object, warnings })
}

/// Adds `K`'s schema to `generator`; its name among the generator's definitions.
pub(crate) fn schema_of<K: schemars::JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
) -> String {
    generator.subschema_for::<K>();
    K::schema_name().into_owned()
}

/// The fields of `given` that reading it as its type lost: those the kind does not have.
fn unknown_fields(given: &Value, read: &Value, path: &str, found: &mut Vec<String>) {
    match (given, read) {
        (Value::Object(given), Value::Object(read)) => {
            for (key, value) in given {
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match read.get(key) {
                    Some(kept) => unknown_fields(value, kept, &here, found),
                    None if value.is_null() => {}
                    None => found.push(here),
                }
            }
        }
        (Value::Array(given), Value::Array(read)) => {
            for (index, (value, kept)) in given.iter().zip(read).enumerate() {
                unknown_fields(value, kept, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

fn set_default<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

/// `field` is missing, in kube-apiserver's words.
pub(crate) fn required(field: &str) -> String {
    format!("{field}: Required value")
}

/// `field` holds `value`, not one of `supported`, in kube-apiserver's words.
pub(crate) fn unsupported(field: &str, value: &str, supported: &[&str]) -> String {
    let supported: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{field}: Unsupported value: \"{value}\": supported values: {}",
        supported.join(", ")
    )
}

/// A DaemonSet's or StatefulSet's `spec.updateStrategy.type` that is neither kind.
fn update_strategy_problem(kind: Option<&str>) -> Option<String> {
    let kind = kind.unwrap_or_default();
    (!["RollingUpdate", "OnDelete"].contains(&kind)).then(|| {
        unsupported(
            "spec.updateStrategy.type",
            kind,
            &["OnDelete", "RollingUpdate"],
        )
    })
}

fn at_least_zero(field: &str, value: Option<i32>) -> Option<String> {
    value
        .filter(|v| *v < 0)
        .map(|v| format!("{field}: Invalid value: {v}: must be greater than or equal to 0"))
}

fn default_container(container: &mut Container) {
    let latest = container.image.as_deref().is_some_and(|image| {
        let tag = image.rsplit('/').next().unwrap_or(image);
        !tag.contains(':') && !image.contains('@') || tag.ends_with(":latest")
    });
    set_default(
        &mut container.image_pull_policy,
        if latest { "Always" } else { "IfNotPresent" }.to_string(),
    );
    set_default(
        &mut container.termination_message_path,
        "/dev/termination-log".to_string(),
    );
    set_default(
        &mut container.termination_message_policy,
        "File".to_string(),
    );
    set_default(&mut container.resources, Default::default());
    for port in container.ports.iter_mut().flatten() {
        set_default(&mut port.protocol, "TCP".to_string());
    }
}

fn default_pod_spec(spec: &mut PodSpec) {
    set_default(&mut spec.restart_policy, "Always".to_string());
    set_default(&mut spec.dns_policy, "ClusterFirst".to_string());
    set_default(&mut spec.scheduler_name, "default-scheduler".to_string());
    set_default(&mut spec.termination_grace_period_seconds, 30);
    set_default(&mut spec.security_context, Default::default());
    set_default(&mut spec.enable_service_links, true);
    spec.containers.iter_mut().for_each(default_container);
    spec.init_containers
        .iter_mut()
        .flatten()
        .for_each(default_container);
}

fn pod_spec_problems(spec: &PodSpec, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if spec.containers.is_empty() {
        problems.push(required(&format!("{at}.containers")));
    }
    for (i, container) in spec.containers.iter().enumerate() {
        if container.name.is_empty() {
            problems.push(required(&format!("{at}.containers[{i}].name")));
        }
        if container.image.as_deref().unwrap_or_default().is_empty() {
            problems.push(required(&format!("{at}.containers[{i}].image")));
        }
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if !["Always", "OnFailure", "Never"].contains(&policy) {
        problems.push(unsupported(
            &format!("{at}.restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    problems
}

/// A workload's selector must be given and must select its own template's pods.
fn workload_problems(
    replicas: Option<i32>,
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
) -> Vec<String> {
    let mut problems: Vec<String> = at_least_zero("spec.replicas", replicas)
        .into_iter()
        .collect();
    let labels = template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    match selector {
        None => problems.push(required("spec.selector")),
        Some(s) if s.match_labels.is_none() && s.match_expressions.is_none() => {
            problems.push(
                "spec.selector: Invalid value: \"null\": empty selector is invalid for deployment"
                    .into(),
            );
        }
        Some(s) if !selects(s, &labels) => problems.push(format!(
            "spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
            go_map(&labels)
        )),
        Some(_) => {}
    }
    match template.and_then(|t| t.spec.as_ref()) {
        Some(spec) => problems.extend(pod_spec_problems(spec, "spec.template.spec")),
        None => problems.push(required("spec.template.spec.containers")),
    }
    problems
}

/// Whether `selector`'s matchLabels hold for `labels` (expressions are the
/// controllers' to evaluate).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// A label map as Go prints it in kube-apiserver's messages.
fn go_map(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", pairs.join(", "))
}

fn default_template(template: &mut PodTemplateSpec) {
    if let Some(spec) = template.spec.as_mut() {
        default_pod_spec(spec);
    }
}

impl Schema for Namespace {
    const HAS_STATUS: bool = true;
    const HOOKS: Hooks = Hooks::Namespaces;
    const NAME_RULE: NameRule = NameRule::Label;
    /// Every namespace carries its name as a label, as kube-apiserver sets it, so
    /// selectors (network policies, admission bindings) can pick namespaces by name.
    fn default_fields(&mut self) {
        if let Some(name) = self.metadata.name.clone() {
            let labels = self.metadata.labels.get_or_insert_default();
            labels.insert("kubernetes.io/metadata.name".into(), name);
        }
        self.spec.get_or_insert_default().finalizers = Some(vec!["kubernetes".into()]);
        set_default(
            &mut self.status.get_or_insert_default().phase,
            "Active".into(),
        );
    }

    fn problems(&self) -> Vec<String> {
        crate::podsecurity::label_problems(self.metadata.labels.as_ref())
    }
}

impl Schema for ConfigMap {}

impl Schema for Secret {
    const HOOKS: Hooks = Hooks::Secrets;
    /// `stringData` is written into `data`, as kube-apiserver does.
    fn default_fields(&mut self) {
        if self.type_.as_deref().is_none_or(str::is_empty) {
            self.type_ = Some("Opaque".into());
        }
        if let Some(strings) = self.string_data.take() {
            let data = self.data.get_or_insert_default();
            for (key, value) in strings {
                data.insert(key, k8s_openapi::ByteString(value.into_bytes()));
            }
        }
    }
}

impl Schema for Pod {
    const HAS_STATUS: bool = true;
    const HOOKS: Hooks = Hooks::Pods;
    const CATEGORIES: &'static [&'static str] = &["all"];
    fn default_fields(&mut self) {
        default_pod_spec(self.spec.get_or_insert_default());
        let status = self.status.get_or_insert_default();
        set_default(&mut status.phase, "Pending".into());
        set_default(&mut status.qos_class, qos_class(self.spec.as_ref()).into());
    }
    fn problems(&self) -> Vec<String> {
        pod_spec_problems(self.spec.as_ref().unwrap_or(&PodSpec::default()), "spec")
    }
}

/// The pod's quality-of-service class from its containers' requests and limits.
fn qos_class(spec: Option<&PodSpec>) -> &'static str {
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let resources = containers.iter().filter_map(|c| c.resources.as_ref());
    let (mut any, mut guaranteed) = (false, !containers.is_empty());
    for r in resources {
        let requests = r.requests.clone().unwrap_or_default();
        let limits = r.limits.clone().unwrap_or_default();
        any |= !requests.is_empty() || !limits.is_empty();
        guaranteed &= ["cpu", "memory"].iter().all(|k| {
            limits.contains_key(*k) && requests.get(*k).is_none_or(|q| Some(q) == limits.get(*k))
        });
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

impl Schema for Service {
    const HAS_STATUS: bool = true;
    const HOOKS: Hooks = Hooks::Services;
    const CATEGORIES: &'static [&'static str] = &["all"];
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.type_, "ClusterIP".into());
        set_default(&mut spec.session_affinity, "None".into());
        let kind = spec.type_.clone().unwrap_or_default();
        if kind != "ExternalName" {
            set_default(&mut spec.internal_traffic_policy, "Cluster".into());
        }
        if kind == "NodePort" || kind == "LoadBalancer" {
            set_default(&mut spec.external_traffic_policy, "Cluster".into());
        }
        if kind == "LoadBalancer" {
            set_default(&mut spec.allocate_load_balancer_node_ports, true);
        }
        for port in spec.ports.iter_mut().flatten() {
            set_default(&mut port.protocol, "TCP".into());
            // Zero and "" are unset, as kube-apiserver reads them: a Go client's
            // protobuf always carries the field.
            let unset = [IntOrString::Int(0), IntOrString::String(String::new())];
            if port.target_port.as_ref().is_none_or(|t| unset.contains(t)) {
                port.target_port = Some(IntOrString::Int(port.port));
            }
        }
    }
    fn problems(&self) -> Vec<String> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut problems: Vec<String> = spec
            .ports
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, p)| !(1..=65535).contains(&p.port))
            .map(|(i, p)| {
                format!(
                    "spec.ports[{i}].port: Invalid value: {}: must be between 1 and 65535, inclusive",
                    p.port
                )
            })
            .collect();
        const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
        match spec.type_.as_deref().unwrap_or_default() {
            "ExternalName" if spec.external_name.as_deref().unwrap_or_default().is_empty() => {
                problems.push("spec.externalName: Required value".into());
            }
            kind if !TYPES.contains(&kind) => {
                problems.push(unsupported("spec.type", kind, &TYPES));
            }
            _ => {}
        }
        problems
    }
}

impl Schema for Endpoints {}
impl Schema for Event {}
impl Schema for ServiceAccount {
    const HOOKS: Hooks = Hooks::ServiceAccounts;
}
impl Schema for Lease {}
impl Schema for EndpointSlice {}
impl Schema for ControllerRevision {}

impl Schema for Node {
    const HAS_STATUS: bool = true;
    const HOOKS: Hooks = Hooks::Nodes;
}

impl Schema for PersistentVolume {
    const HAS_STATUS: bool = true;
}

impl Schema for PersistentVolumeClaim {
    const HAS_STATUS: bool = true;
    const HOOKS: Hooks = Hooks::Claims;
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.volume_mode, "Filesystem".into());
    }
}

impl Schema for StorageClass {
    fn default_fields(&mut self) {
        set_default(&mut self.reclaim_policy, "Delete".into());
        set_default(&mut self.volume_binding_mode, "Immediate".into());
    }
}

impl Schema for PodTemplate {
    fn default_fields(&mut self) {
        if let Some(template) = self.template.as_mut() {
            default_template(template);
        }
    }
}

/// API priority and fairness objects are accepted and stored, as charts ship them;
/// Berth's server does not queue requests by them.
impl Schema for FlowSchema {
    const HAS_STATUS: bool = true;
}

impl Schema for PriorityLevelConfiguration {
    const HAS_STATUS: bool = true;
}

impl Schema for RuntimeClass {
    fn problems(&self) -> Vec<String> {
        match self.handler.as_str() {
            "" => vec![required("handler")],
            _ => Vec::new(),
        }
    }
}

impl Schema for CSIDriver {
    /// storage.k8s.io's defaults for a driver that says nothing.
    fn default_fields(&mut self) {
        let spec = &mut self.spec;
        set_default(&mut spec.attach_required, true);
        set_default(&mut spec.pod_info_on_mount, false);
        set_default(&mut spec.requires_republish, false);
        set_default(&mut spec.storage_capacity, false);
        set_default(&mut spec.fs_group_policy, "ReadWriteOnceWithFSType".into());
        set_default(&mut spec.volume_lifecycle_modes, vec!["Persistent".into()]);
    }
}

impl Schema for VolumeAttachment {
    const HAS_STATUS: bool = true;

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.spec.attacher.is_empty() {
            problems.push(required("spec.attacher"));
        }
        if self.spec.node_name.is_empty() {
            problems.push(required("spec.nodeName"));
        }
        problems
    }
}

impl Schema for Deployment {
    const HAS_STATUS: bool = true;
    const CATEGORIES: &'static [&'static str] = &["all"];
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.replicas, 1);
        set_default(&mut spec.revision_history_limit, 10);
        set_default(&mut spec.progress_deadline_seconds, 600);
        let strategy = spec.strategy.get_or_insert_default();
        set_default(&mut strategy.type_, "RollingUpdate".into());
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let rolling = strategy.rolling_update.get_or_insert_default();
            set_default(&mut rolling.max_surge, IntOrString::String("25%".into()));
            set_default(
                &mut rolling.max_unavailable,
                IntOrString::String("25%".into()),
            );
        }
        default_template(&mut spec.template);
    }
    fn problems(&self) -> Vec<String> {
        let spec = self.spec.as_ref();
        workload_problems(
            spec.and_then(|s| s.replicas),
            spec.map(|s| &s.selector),
            spec.map(|s| &s.template),
        )
    }
}

impl Schema for ReplicaSet {
    const HAS_STATUS: bool = true;
    const CATEGORIES: &'static [&'static str] = &["all"];
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.replicas, 1);
        if let Some(template) = spec.template.as_mut() {
            default_template(template);
        }
    }
    fn problems(&self) -> Vec<String> {
        let spec = self.spec.as_ref();
        workload_problems(
            spec.and_then(|s| s.replicas),
            spec.map(|s| &s.selector),
            spec.and_then(|s| s.template.as_ref()),
        )
    }
}

impl Schema for ReplicationController {
    const HAS_STATUS: bool = true;
    const CATEGORIES: &'static [&'static str] = &["all"];
    /// The selector and the controller's own labels default to its template's labels,
    /// as kube-apiserver defaults them.
    fn default_fields(&mut self) {
        let template_labels = self
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .filter(|l| !l.is_empty());
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.replicas, 1);
        if let Some(template) = spec.template.as_mut() {
            default_template(template);
        }
        if let Some(labels) = template_labels {
            if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                spec.selector = Some(labels.clone());
            }
            if self.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                self.metadata.labels = Some(labels);
            }
        }
    }
    fn problems(&self) -> Vec<String> {
        let spec = self.spec.as_ref();
        let selector = spec
            .and_then(|s| s.selector.clone())
            .filter(|s| !s.is_empty())
            .map(|labels| LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            });
        workload_problems(
            spec.and_then(|s| s.replicas),
            selector.as_ref(),
            spec.and_then(|s| s.template.as_ref()),
        )
    }
}

impl Schema for DaemonSet {
    const HAS_STATUS: bool = true;
    const CATEGORIES: &'static [&'static str] = &["all"];
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.revision_history_limit, 10);
        let strategy = spec.update_strategy.get_or_insert_default();
        set_default(&mut strategy.type_, "RollingUpdate".into());
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let rolling = strategy.rolling_update.get_or_insert_default();
            set_default(&mut rolling.max_unavailable, IntOrString::Int(1));
            set_default(&mut rolling.max_surge, IntOrString::Int(0));
        }
        default_template(&mut spec.template);
    }
    fn problems(&self) -> Vec<String> {
        let spec = self.spec.as_ref();
        let mut problems =
            workload_problems(None, spec.map(|s| &s.selector), spec.map(|s| &s.template));
        let strategy = spec.and_then(|s| s.update_strategy.as_ref());
        problems.extend(update_strategy_problem(
            strategy.and_then(|s| s.type_.as_deref()),
        ));
        problems
    }
}

impl Schema for StatefulSet {
    const HAS_STATUS: bool = true;
    const CATEGORIES: &'static [&'static str] = &["all"];
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.replicas, 1);
        set_default(&mut spec.revision_history_limit, 10);
        set_default(&mut spec.pod_management_policy, "OrderedReady".into());
        let strategy = spec.update_strategy.get_or_insert_default();
        set_default(&mut strategy.type_, "RollingUpdate".into());
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            set_default(
                &mut strategy.rolling_update.get_or_insert_default().partition,
                0,
            );
        }
        let retention = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_default();
        set_default(&mut retention.when_deleted, "Retain".into());
        set_default(&mut retention.when_scaled, "Retain".into());
        for claim in spec.volume_claim_templates.iter_mut().flatten() {
            let claim_spec = claim.spec.get_or_insert_default();
            set_default(&mut claim_spec.volume_mode, "Filesystem".into());
        }
        default_template(&mut spec.template);
    }
    fn problems(&self) -> Vec<String> {
        let spec = self.spec.as_ref();
        let mut problems = workload_problems(
            spec.and_then(|s| s.replicas),
            spec.map(|s| &s.selector),
            spec.map(|s| &s.template),
        );
        let policy = spec
            .and_then(|s| s.pod_management_policy.as_deref())
            .unwrap_or_default();
        if !["OrderedReady", "Parallel"].contains(&policy) {
            problems.push(unsupported(
                "spec.podManagementPolicy",
                policy,
                &["OrderedReady", "Parallel"],
            ));
        }
        let strategy = spec.and_then(|s| s.update_strategy.as_ref());
        problems.extend(update_strategy_problem(
            strategy.and_then(|s| s.type_.as_deref()),
        ));
        for (i, claim) in spec
            .and_then(|s| s.volume_claim_templates.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            if claim
                .metadata
                .name
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                problems.push(required(&format!(
                    "spec.volumeClaimTemplates[{i}].metadata.name"
                )));
            }
        }
        problems
    }
}

/// The label of a Job's pods that its generated selector selects by.
const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

impl Schema for Job {
    const HAS_STATUS: bool = true;
    const CATEGORIES: &'static [&'static str] = &["all"];
    /// Besides the plain defaults, as kube-apiserver's Job strategy: unless the Job
    /// asks for a manual selector, one selecting its own uid, and the labels that
    /// match it (and name the Job) on its template — and on the Job, if it has none.
    fn default_fields(&mut self) {
        let uid = self.metadata.uid.clone().unwrap_or_default();
        let name = self.metadata.name.clone().unwrap_or_default();
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.backoff_limit, 6);
        set_default(&mut spec.completions, 1);
        set_default(&mut spec.parallelism, 1);
        set_default(&mut spec.completion_mode, "NonIndexed".into());
        set_default(&mut spec.suspend, false);
        if spec.pod_failure_policy.is_none() {
            set_default(
                &mut spec.pod_replacement_policy,
                "TerminatingOrFailed".into(),
            );
        }
        if !spec.manual_selector.unwrap_or(false) && !uid.is_empty() {
            let labels = spec
                .template
                .metadata
                .get_or_insert_default()
                .labels
                .get_or_insert_default();
            for (key, value) in [
                (JOB_UID_LABEL, &uid),
                ("controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &name),
                ("job-name", &name),
            ] {
                labels.insert(key.into(), value.clone());
            }
            if spec.selector.is_none() {
                spec.selector = Some(LabelSelector {
                    match_labels: Some([(JOB_UID_LABEL.into(), uid)].into()),
                    ..LabelSelector::default()
                });
            }
        }
        default_template(&mut spec.template);
        if self.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            self.metadata.labels = spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone());
        }
    }
    fn problems(&self) -> Vec<String> {
        let Some(spec) = self.spec.as_ref() else {
            return vec![required("spec.template.spec.containers")];
        };
        let mut problems: Vec<String> = [
            ("spec.completions", spec.completions),
            ("spec.parallelism", spec.parallelism),
            ("spec.backoffLimit", spec.backoff_limit),
        ]
        .into_iter()
        .filter_map(|(field, value)| at_least_zero(field, value))
        .collect();
        // Defaulting gave the Job its selector unless it asked to choose one itself.
        problems.extend(workload_problems(
            None,
            spec.selector.as_ref(),
            Some(&spec.template),
        ));
        let policy = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or_default();
        if !["OnFailure", "Never"].contains(&policy) {
            problems.push(unsupported(
                "spec.template.spec.restartPolicy",
                policy,
                &["OnFailure", "Never"],
            ));
        }
        if spec.completion_mode.as_deref() == Some("Indexed") {
            problems.push(unsupported(
                "spec.completionMode",
                "Indexed",
                &["NonIndexed"],
            ));
        }
        problems
    }
}

impl Schema for CronJob {
    const HAS_STATUS: bool = true;
    const CATEGORIES: &'static [&'static str] = &["all"];
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        set_default(&mut spec.concurrency_policy, "Allow".into());
        set_default(&mut spec.suspend, false);
        set_default(&mut spec.successful_jobs_history_limit, 3);
        set_default(&mut spec.failed_jobs_history_limit, 1);
        if let Some(template) = spec.job_template.spec.as_mut().map(|s| &mut s.template) {
            default_template(template);
        }
    }
    fn problems(&self) -> Vec<String> {
        let mut problems = match self.spec.as_ref().map(|s| s.schedule.as_str()) {
            Some(schedule) if !schedule.is_empty() => Vec::new(),
            _ => vec![required("spec.schedule")],
        };
        let policy = self
            .spec
            .as_ref()
            .and_then(|s| s.concurrency_policy.as_deref())
            .unwrap_or_default();
        if !["Allow", "Forbid", "Replace"].contains(&policy) {
            problems.push(unsupported(
                "spec.concurrencyPolicy",
                policy,
                &["Allow", "Forbid", "Replace"],
            ));
        }
        problems
    }
}

impl Schema for HorizontalPodAutoscaler {
    const HAS_STATUS: bool = true;
    const CATEGORIES: &'static [&'static str] = &["all"];
    fn default_fields(&mut self) {
        set_default(&mut self.spec.get_or_insert_default().min_replicas, 1);
    }
    fn problems(&self) -> Vec<String> {
        let Some(spec) = self.spec.as_ref() else {
            return vec![required("spec")];
        };
        let mut problems = Vec::new();
        if spec.max_replicas < 1 {
            problems.push(format!(
                "spec.maxReplicas: Invalid value: {}: must be greater than or equal to 1",
                spec.max_replicas
            ));
        }
        if spec.min_replicas.is_some_and(|min| min > spec.max_replicas) {
            problems.push(format!(
                "spec.maxReplicas: Invalid value: {}: must be greater than or equal to `minReplicas`",
                spec.max_replicas
            ));
        }
        problems
    }
}

/// The highest priority a class made by users may give; higher ones are the system's
/// (`system-cluster-critical`, `system-node-critical`).
pub(crate) const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;

impl Schema for PriorityClass {
    fn default_fields(&mut self) {
        set_default(
            &mut self.preemption_policy,
            "PreemptLowerPriority".to_string(),
        );
    }
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if crate::priorities::is_system_class(name, self.value) {
            return problems;
        }
        if self.value > HIGHEST_USER_PRIORITY {
            problems.push(format!(
                "value: Forbidden: maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
            ));
        }
        if name.starts_with("system-") {
            problems.push(format!(
                "metadata.name: Invalid value: {name:?}: name prefix 'system-' is reserved"
            ));
        }
        if let Some(policy) = self.preemption_policy.as_deref() {
            problems.extend(
                (!matches!(policy, "PreemptLowerPriority" | "Never")).then(|| {
                    unsupported(
                        "preemptionPolicy",
                        policy,
                        &["Never", "PreemptLowerPriority"],
                    )
                }),
            );
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admit_as<K: Schema>(object: Value, validation: FieldValidation) -> Result<Value, String> {
        admit::<K>("Kind", object, validation)
            .map(|a| a.object)
            .map_err(|s| s.message().to_string())
    }

    #[test]
    fn pods_get_kubernetes_defaults() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"},
                                    {"name": "d", "image": "busybox:1.36"}]}});
        let pod = admit_as::<Pod>(pod, FieldValidation::Strict).unwrap();
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["schedulerName"], "default-scheduler");
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            pod["spec"]["containers"][1]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["status"]["phase"], "Pending");
        assert_eq!(pod["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn problems_name_their_fields() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        assert_eq!(
            admit_as::<Pod>(pod, FieldValidation::Warn).unwrap_err(),
            "Kind \"p\" is invalid: spec.containers[0].image: Required value"
        );
        let typo = json!({"metadata": {"name": "p"}, "spec": {"containers": "c"}});
        let message = admit_as::<Pod>(typo, FieldValidation::Warn).unwrap_err();
        assert!(
            message.contains("spec.containers: invalid type"),
            "{message}"
        );
        let deployment = json!({"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let message = admit_as::<Deployment>(deployment, FieldValidation::Warn).unwrap_err();
        assert!(
            message.contains("`selector` does not match template `labels`"),
            "{message}"
        );
    }

    #[test]
    fn unknown_fields_are_dropped_warned_or_refused() {
        let cm = json!({"metadata": {"name": "c", "colour": "red"}, "data": {"a": "b"}, "dat": 1});
        let message = admit_as::<ConfigMap>(cm.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(
            message,
            "Kind in version \"v1\" cannot be handled as a Kind: strict decoding error: unknown field \"dat\", unknown field \"metadata.colour\""
        );
        let admitted = admit::<ConfigMap>("ConfigMap", cm, FieldValidation::Warn).unwrap();
        assert_eq!(admitted.warnings.len(), 2);
        assert!(admitted.object.get("dat").is_none());
        assert_eq!(admitted.object["data"]["a"], "b");
    }

    #[test]
    fn jobs_select_their_own_uid() {
        let job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
        let job = admit_as::<Job>(job, FieldValidation::Strict).unwrap();
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        assert_eq!(job["metadata"]["labels"], *labels);
        assert_eq!(job["spec"]["backoffLimit"], 6);
        let always = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        assert_eq!(
            admit_as::<Job>(always, FieldValidation::Strict).unwrap_err(),
            "Kind \"pi\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn secrets_take_string_data_into_data() {
        let secret = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}});
        let secret = admit_as::<Secret>(secret, FieldValidation::Strict).unwrap();
        assert_eq!(secret["data"]["k"], "dg==");
        assert_eq!(secret["type"], "Opaque");
        assert!(secret.get("stringData").is_none());
    }
}

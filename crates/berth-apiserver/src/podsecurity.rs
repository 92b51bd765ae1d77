//! PodSecurity admission, as kube-apiserver's: a namespace's
//! `pod-security.kubernetes.io/enforce` label refuses pods that break its level,
//! `…/warn` warns about them, `…/audit` notes them in the audit log, and workloads whose pod templates would be refused or
//! warned about get the warning when written. The levels' checks are crate
//! berth-podsecurity's; a namespace without labels is privileged, as by default.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use berth_podsecurity::Level;
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use crate::Shared;
use crate::status::Status;

/// The labels' prefix.
const LABEL: &str = "pod-security.kubernetes.io/";

/// The modes a namespace's labels set a level for.
const MODES: [&str; 3] = ["enforce", "audit", "warn"];

/// A namespace's level for one mode, and the version its label names.
struct Mode {
    level: Level,
    version: String,
}

impl Mode {
    /// `"restricted:latest"`, as messages name a policy.
    fn policy(&self) -> String {
        format!("{}:{}", self.level.name(), self.version)
    }
}

/// The level namespace labels set for `mode`; privileged when unset.
fn mode(labels: &NamespaceLabels, mode: &str) -> Mode {
    let label = |key: String| labels.as_ref().and_then(|n| n.summary.label(&key));
    let level = label(format!("{LABEL}{mode}"))
        .and_then(Level::parse)
        .unwrap_or(Level::Privileged);
    let version = label(format!("{LABEL}{mode}-version")).unwrap_or("latest");
    Mode {
        level,
        version: version.to_string(),
    }
}

/// A namespace as the watch cache holds it, for its labels (kept apart from its JSON in
/// the cache, so read without parsing it).
type NamespaceLabels = Option<std::sync::Arc<crate::cache::Entry>>;

fn labels_of(shared: &Shared, namespace: &str) -> NamespaceLabels {
    shared
        .cache
        .get(&format!("/registry/namespaces/{namespace}"))
}

/// What `spec` (with the pod's `metadata`) breaks of `mode`'s level.
fn violations(mode: &Mode, metadata: &Value, spec: &Value) -> Vec<String> {
    // The default level: nothing to read the pod for.
    if mode.level == Level::Privileged {
        return Vec::new();
    }
    let Ok(spec) = serde_json::from_value::<PodSpec>(spec.clone()) else {
        return Vec::new();
    };
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(metadata["annotations"].clone()).unwrap_or_default();
    berth_podsecurity::violations(mode.level, &annotations, &spec)
}

/// Refuses a new pod that breaks its namespace's enforced level, and warns about one
/// that breaks its warned level.
pub(crate) fn admit_pod(
    shared: &Shared,
    namespace: &str,
    pod: &Value,
    warnings: &mut Vec<String>,
) -> Result<(), Status> {
    let labels = labels_of(shared, namespace);
    let enforce = mode(&labels, "enforce");
    let broken = violations(&enforce, &pod["metadata"], &pod["spec"]);
    if !broken.is_empty() {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        return Err(Status::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "pods \"{name}\" is forbidden: violates PodSecurity \"{}\": {}",
                enforce.policy(),
                broken.join(", ")
            ),
        ));
    }
    warn(
        &mode(&labels, "warn"),
        (&pod["metadata"], &pod["spec"]),
        warnings,
    );
    let audited = mode(&labels, "audit");
    let broken = violations(&audited, &pod["metadata"], &pod["spec"]);
    if !broken.is_empty() {
        let violations = format!(
            "would violate PodSecurity \"{}\": {}",
            audited.policy(),
            broken.join(", ")
        );
        crate::audit::annotate(AUDIT_VIOLATIONS, violations);
    }
    Ok(())
}

/// The audit annotation of a pod that breaks its namespace's audited level.
const AUDIT_VIOLATIONS: &str = "pod-security.kubernetes.io/audit-violations";

/// Warns about a workload whose pod template would be refused or warned about in its
/// namespace.
pub(crate) fn check_template(
    shared: &Shared,
    (plural, namespace): (&str, &str),
    object: &Value,
    warnings: &mut Vec<String>,
) {
    let template = match plural {
        "deployments"
        | "replicasets"
        | "statefulsets"
        | "daemonsets"
        | "jobs"
        | "replicationcontrollers" => &object["spec"]["template"],
        "cronjobs" => &object["spec"]["jobTemplate"]["spec"]["template"],
        "podtemplates" => &object["template"],
        _ => return,
    };
    if template.is_null() {
        return;
    }
    let labels = labels_of(shared, namespace);
    let (enforce, warned) = (mode(&labels, "enforce"), mode(&labels, "warn"));
    // The stricter of the two: kube-apiserver warns for either.
    let strictest = if violations(&enforce, &template["metadata"], &template["spec"]).is_empty() {
        warned
    } else {
        enforce
    };
    warn(
        &strictest,
        (&template["metadata"], &template["spec"]),
        warnings,
    );
}

fn warn(mode: &Mode, (metadata, spec): (&Value, &Value), warnings: &mut Vec<String>) {
    let broken = violations(mode, metadata, spec);
    if !broken.is_empty() {
        warnings.push(format!(
            "would violate PodSecurity \"{}\": {}",
            mode.policy(),
            broken.join(", ")
        ));
    }
}

/// What is wrong with a namespace's PodSecurity labels: a level or version that is
/// not one.
pub(crate) fn label_problems(labels: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let Some(labels) = labels else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for mode in MODES {
        let key = format!("{LABEL}{mode}");
        if let Some(level) = labels.get(&key)
            && Level::parse(level).is_none()
        {
            problems.push(format!(
                "metadata.labels[{key}]: Invalid value: {level:?}: must be one of privileged, baseline, restricted"
            ));
        }
        let key = format!("{key}-version");
        if let Some(version) = labels.get(&key)
            && !valid_version(version)
        {
            problems.push(format!(
                "metadata.labels[{key}]: Invalid value: {version:?}: must be \"latest\" or of the form \"v1.x\""
            ));
        }
    }
    problems
}

fn valid_version(version: &str) -> bool {
    version == "latest"
        || version
            .strip_prefix("v1.")
            .is_some_and(|minor| !minor.is_empty() && minor.chars().all(|c| c.is_ascii_digit()))
}

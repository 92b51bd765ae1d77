//! CustomResourceDefinitions, the kind itself: checked, defaulted and given the status
//! kube-apiserver's apiextensions controllers give it (names accepted, established).
//! The resources its served versions add are the registry's (`registry.rs`), their
//! objects read through the version's structural schema (crate `berth-schema`) and
//! printed with its `additionalPrinterColumns` (`resources.rs`' `CustomVersion`).
//!
//! Custom objects are stored under `/registry/<group>/<plural>/`, as kube-apiserver
//! stores them, and go with their definition.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use serde_json::{Value, json};

use crate::Shared;
use crate::kinds::{Hooks, Schema};
use crate::status::Status;

impl Schema for CustomResourceDefinition {
    const HAS_STATUS: bool = true;
    const HOOKS: Hooks = Hooks::Definitions;

    fn default_fields(&mut self) {
        let names = &mut self.spec.names;
        if names.singular.as_deref().is_none_or(str::is_empty) {
            names.singular = Some(names.kind.to_lowercase());
        }
        if names.list_kind.as_deref().is_none_or(str::is_empty) {
            names.list_kind = Some(format!("{}List", names.kind));
        }
        if self.spec.conversion.is_none() {
            self.spec.conversion = serde_json::from_value(json!({"strategy": "None"})).ok();
        }
    }

    fn problems(&self) -> Vec<String> {
        let spec = &self.spec;
        let mut problems = Vec::new();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name != format!("{}.{}", spec.names.plural, spec.group) {
            problems.push(format!(
                "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
            ));
        }
        if !spec.group.contains('.') {
            problems.push(format!(
                "spec.group: Invalid value: {:?}: should be a domain with at least one dot",
                spec.group
            ));
        }
        if !matches!(spec.scope.as_str(), "Cluster" | "Namespaced") {
            problems.push(format!(
                "spec.scope: Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                spec.scope
            ));
        }
        for (field, value) in [("plural", &spec.names.plural), ("kind", &spec.names.kind)] {
            if value.is_empty() {
                problems.push(format!("spec.names.{field}: Required value"));
            }
        }
        if spec.names.plural != spec.names.plural.to_lowercase() {
            problems.push(format!(
                "spec.names.plural: Invalid value: {:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
                spec.names.plural
            ));
        }
        let strategy = spec.conversion.as_ref().map(|c| c.strategy.as_str());
        if let Some(strategy) = strategy.filter(|s| *s != "None") {
            problems.push(format!(
                "spec.conversion.strategy: Unsupported value: {strategy:?}: supported values: \"None\" (conversion webhooks are not supported by this server)"
            ));
        }
        problems.extend(version_problems(&spec.versions));
        problems
    }
}

fn version_problems(versions: &[CustomResourceDefinitionVersion]) -> Vec<String> {
    let mut problems = Vec::new();
    if versions.is_empty() {
        return vec!["spec.versions: Invalid value: null: must have exactly one version marked as storage version".into()];
    }
    if versions.iter().filter(|v| v.storage).count() != 1 {
        problems.push(
            "spec.versions: Invalid value: \"\": must have exactly one version marked as storage version"
                .to_string(),
        );
    }
    if !versions.iter().any(|v| v.served) {
        problems.push(
            "spec.versions: Invalid value: \"\": must have at least one version marked as served"
                .to_string(),
        );
    }
    for (index, version) in versions.iter().enumerate() {
        let root = version
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let at = format!("spec.versions[{index}].schema.openAPIV3Schema");
        match root {
            None => problems.push(format!("{at}: Required value: schemas are required")),
            Some(root) if root.type_.as_deref() != Some("object") => problems.push(format!(
                "{at}.type: Invalid value: {:?}: must be object at the root",
                root.type_.clone().unwrap_or_default()
            )),
            Some(_) => {}
        }
    }
    problems
}

/// A definition about to be stored, created or replaced whole: established, and the
/// client warned of what its schemas ask that this server cannot do.
pub(crate) fn written(definition: &mut Value, warnings: &mut Vec<String>) {
    establish(definition);
    warnings.extend(unenforced(definition));
}

/// The warnings a definition (as stored) gets for what its schemas ask that this
/// server cannot do: CEL rules (`x-kubernetes-validations`) that do not parse here are
/// kept but not evaluated, and the client is told which.
fn unenforced(definition: &Value) -> Vec<String> {
    let Ok(definition) = serde_json::from_value::<CustomResourceDefinition>(definition.clone())
    else {
        return Vec::new();
    };
    definition
        .spec
        .versions
        .iter()
        .enumerate()
        .filter_map(|(index, version)| {
            let schema = version.schema.as_ref()?.open_api_v3_schema.as_ref()?;
            let path = format!("spec.versions[{index}].schema.openAPIV3Schema");
            Some(berth_schema::unrunnable_rules(schema, &path))
        })
        .flatten()
        .collect()
}

/// Gives a definition (as it is about to be stored) the status kube-apiserver's
/// controllers give one whose names nothing else uses: its names accepted, itself
/// established, its storage version recorded.
fn establish(object: &mut Value) {
    let names = object["spec"]["names"].clone();
    let storage = object["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut stored: Vec<Value> = object["status"]["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !stored.iter().any(|v| *v == storage.as_str()) {
        stored.push(json!(storage));
    }
    let now = crate::objects::rfc3339(std::time::SystemTime::now());
    let condition = |kind: &str, reason: &str, message: &str| {
        let kept = object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind && c["status"] == "True")
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(&now)
            .to_string();
        json!({"type": kind, "status": "True", "reason": reason, "message": message,
               "lastTransitionTime": kept})
    };
    let conditions = json!([
        condition("NamesAccepted", "NoConflicts", "no conflicts found"),
        condition(
            "Established",
            "InitialNamesAccepted",
            "the initial names have been accepted"
        ),
    ]);
    object["status"] = json!({
        "acceptedNames": names,
        "conditions": conditions,
        "storedVersions": stored,
    });
}

/// Deletes every object of the definition `name` (about to be deleted), as
/// kube-apiserver's finalizer does before the definition goes.
pub(crate) async fn delete_objects(shared: &Shared, name: &str) -> Result<(), Status> {
    let Some(definition) = shared
        .cache
        .typed::<CustomResourceDefinition>(&format!("/registry/customresourcedefinitions/{name}"))
    else {
        return Ok(());
    };
    let directory = crate::registry::directory_of(&definition);
    let listed = shared
        .store
        .list(&directory, "", 0, 0)
        .await
        .map_err(|e| Status::from_store(e, &definition.spec.names.plural, ""))?;
    for kv in listed.items {
        match shared.store.delete(&kv.key, 0).await {
            Ok(_) | Err(berth_store::Error::NotFound(_)) => {}
            Err(e) => {
                return Err(Status::from_store(
                    e,
                    &definition.spec.names.plural,
                    &kv.key,
                ));
            }
        }
    }
    Ok(())
}

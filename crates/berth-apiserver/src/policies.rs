//! ValidatingAdmissionPolicies, as kube-apiserver's admission plugin: a policy's CEL
//! validations judge each write its bindings (and its own match constraints) select,
//! with the binding's parameters; a failure denies the write, warns, or is noted in the
//! audit log, as the binding's `validationActions` say. The CEL variables every
//! admission expression sees are `admission.rs`'.
//!
//! The expressions run through berth-cel, which lacks Kubernetes' CEL libraries (the
//! `authorizer`, `quantity`, `isURL`…): an expression that calls one fails to run, and
//! the policy's `failurePolicy` decides, as for any expression that fails.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use berth_cel::Expression;
use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, NamedRuleWithOperations, RuleWithOperations, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding, Validation,
};
use serde_json::{Value, json};

use crate::Shared;
use crate::admission::{
    Bindings, Scope, Write, condition_problems, conditions_met, expression_problems, in_scope,
};
use crate::kinds::Schema;
use crate::status::Status;

/// Judges `write` by every policy a binding applies to it: the first denial refuses it;
/// warnings and audit annotations are added as the bindings ask.
pub(crate) fn validate(
    shared: &Shared,
    write: &Write<'_>,
    (object, old): (Option<&Value>, Option<&Value>),
    warnings: &mut Vec<String>,
) -> Result<(), Status> {
    let mut bindings = shared.cache.typed_list::<ValidatingAdmissionPolicyBinding>(
        "/registry/validatingadmissionpolicybindings/",
    );
    if bindings.is_empty() {
        return Ok(());
    }
    bindings.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let policies: BTreeMap<String, ValidatingAdmissionPolicy> = shared
        .cache
        .typed_list::<ValidatingAdmissionPolicy>("/registry/validatingadmissionpolicies/")
        .into_iter()
        .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
        .collect();
    let object = object.unwrap_or(&Value::Null);
    for binding in &bindings {
        let spec = binding.spec.clone().unwrap_or_default();
        let Some(policy) = spec.policy_name.as_ref().and_then(|n| policies.get(n)) else {
            continue;
        };
        let policy_spec = policy.spec.clone().unwrap_or_default();
        let selected = |resources: &Option<MatchResources>| {
            resources
                .as_ref()
                .is_none_or(|r| matched(shared, r, write, (object, old)))
        };
        if policy_spec.match_constraints.is_none()
            || !selected(&policy_spec.match_constraints)
            || !selected(&spec.match_resources)
        {
            continue;
        }
        let names = Names {
            policy: policy.metadata.name.as_deref().unwrap_or_default(),
            binding: binding.metadata.name.as_deref().unwrap_or_default(),
        };
        let failures = judge(shared, (&policy_spec, &spec), write, (object, old))?;
        for failure in failures {
            act(
                &names,
                spec.validation_actions.as_deref(),
                failure,
                write,
                warnings,
            )?;
        }
    }
    Ok(())
}

/// A policy and the binding that applies it, by name.
struct Names<'a> {
    policy: &'a str,
    binding: &'a str,
}

/// A validation that failed: what to say, and with which reason.
struct Failure {
    message: String,
    reason: Option<String>,
}

/// The validations of `policy` that fail for `write`, once per parameter object.
fn judge(
    shared: &Shared,
    (policy, binding): (
        &k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicySpec,
        &k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBindingSpec,
    ),
    write: &Write<'_>,
    (object, old): (&Value, Option<&Value>),
) -> Result<Vec<Failure>, Status> {
    let ignore_errors = policy.failure_policy.as_deref() == Some("Ignore");
    let params = match params_of(shared, policy, binding, write) {
        Ok(params) => params,
        Err(message) => {
            return Ok(vec![Failure {
                message,
                reason: None,
            }]);
        }
    };
    let mut failures = Vec::new();
    for params in params {
        let mut bindings = Bindings::new(shared, write, (object, old));
        bindings.params = params;
        let conditions = policy.match_conditions.as_deref().unwrap_or_default();
        match conditions_met(conditions, &bindings) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) if ignore_errors => continue,
            Err(message) => {
                failures.push(Failure {
                    message,
                    reason: None,
                });
                continue;
            }
        }
        for variable in policy.variables.iter().flatten() {
            let value = Expression::parse(&variable.expression)
                .and_then(|e| e.evaluate_json(&bindings.list()))
                .unwrap_or(Value::Null);
            bindings.variables[&variable.name] = value;
        }
        for validation in policy.validations.iter().flatten() {
            if let Some(failure) = check(validation, &bindings, ignore_errors) {
                failures.push(failure);
            }
        }
    }
    Ok(failures)
}

/// The failure of one validation, if it fails.
fn check(validation: &Validation, bindings: &Bindings, ignore_errors: bool) -> Option<Failure> {
    let source = &validation.expression;
    let outcome = Expression::parse(source).and_then(|e| e.holds(&bindings.list()));
    let message = match outcome {
        Ok(true) => return None,
        Err(_) if ignore_errors => return None,
        Err(error) => format!("expression '{source}' resulted in error: {error}"),
        Ok(false) => validation
            .message_expression
            .as_deref()
            .and_then(|m| Expression::parse(m).ok()?.text(&bindings.list()))
            .or_else(|| validation.message.clone().filter(|m| !m.is_empty()))
            .unwrap_or_else(|| format!("failed expression: {source}")),
    };
    Some(Failure {
        message,
        reason: validation.reason.clone(),
    })
}

/// Does what the binding's actions say with a failure: deny, warn, or audit.
fn act(
    names: &Names<'_>,
    actions: Option<&[String]>,
    failure: Failure,
    write: &Write<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), Status> {
    let (policy, binding) = (names.policy, names.binding);
    for action in actions.unwrap_or_default() {
        match action.as_str() {
            "Deny" => return Err(denial(names, &failure, write)),
            "Warn" => warnings.push(format!(
                "Validation failed for ValidatingAdmissionPolicy '{policy}' with binding '{binding}': {}",
                failure.message
            )),
            "Audit" => crate::audit::annotate(
                "validation.policy.admission.k8s.io/validation_failure",
                json!([{
                    "message": failure.message,
                    "policy": policy,
                    "binding": binding,
                    "validationActions": actions,
                }])
                .to_string(),
            ),
            _ => {}
        }
    }
    Ok(())
}

/// kube-apiserver's refusal: forbidden in its message, the validation's reason (Invalid
/// unless it names another) in its code.
fn denial(names: &Names<'_>, failure: &Failure, write: &Write<'_>) -> Status {
    let message = format!(
        "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}",
        names.policy, names.binding, failure.message
    );
    let resource = write.resource;
    let qualified = match resource.group.as_str() {
        "" => resource.plural.clone(),
        group => format!("{}.{group}", resource.plural),
    };
    let (code, reason) = match failure.reason.as_deref() {
        Some("Forbidden") => (StatusCode::FORBIDDEN, "Forbidden"),
        Some("Unauthorized") => (StatusCode::UNAUTHORIZED, "Unauthorized"),
        Some("RequestEntityTooLarge") => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
    };
    Status::new(
        code,
        reason,
        format!("{qualified} \"{}\" is forbidden: {message}", write.name),
    )
    .with_details(json!({
        "name": write.name,
        "group": resource.group,
        "kind": resource.plural,
        "causes": [{"message": message}],
    }))
}

/// The parameter objects a binding gives its policy: one null when the policy takes
/// none; the message of the denial when they are missing and the binding says deny.
fn params_of(
    shared: &Shared,
    policy: &k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicySpec,
    binding: &k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBindingSpec,
    write: &Write<'_>,
) -> Result<Vec<Value>, String> {
    let Some(kind) = &policy.param_kind else {
        return Ok(vec![Value::Null]);
    };
    let Some(reference) = &binding.param_ref else {
        return Err(
            "failed to configure binding: paramRef is required when the policy has a paramKind"
                .into(),
        );
    };
    let table = shared.registry.table(&shared.cache);
    let Some(resource) = table.iter().find(|r| {
        Some(r.api_version().as_str()) == kind.api_version.as_deref()
            && Some(r.kind.as_str()) == kind.kind.as_deref()
    }) else {
        return Err(format!(
            "failed to configure policy: failed to find resource referenced by paramKind: '{}, Kind={}'",
            kind.api_version.as_deref().unwrap_or_default(),
            kind.kind.as_deref().unwrap_or_default()
        ));
    };
    let namespace = reference.namespace.as_deref().or(write.namespace);
    let prefix = resource.prefix(namespace.filter(|_| resource.namespaced));
    let found: Vec<Value> = match (&reference.name, &reference.selector) {
        (Some(name), _) => shared
            .cache
            .typed::<Value>(&format!("{prefix}{name}"))
            .into_iter()
            .collect(),
        (None, selector) => shared
            .cache
            .typed_list::<Value>(&prefix)
            .into_iter()
            .filter(|object| {
                let labels = serde_json::from_value(object["metadata"]["labels"].clone()).ok();
                selector
                    .as_ref()
                    .is_none_or(|s| berth_labels::selects(s, &labels))
            })
            .collect(),
    };
    if !found.is_empty() || reference.parameter_not_found_action.as_deref() == Some("Allow") {
        return Ok(found);
    }
    Err("failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction".into())
}

/// Whether `write` is among the resources `resources` names and not among those it
/// excludes.
fn matched(
    shared: &Shared,
    resources: &MatchResources,
    write: &Write<'_>,
    (object, old): (&Value, Option<&Value>),
) -> bool {
    let rules = |named: &Option<Vec<NamedRuleWithOperations>>| -> Vec<RuleWithOperations> {
        named
            .iter()
            .flatten()
            .filter(|rule| {
                let names = rule.resource_names.as_deref().unwrap_or_default();
                names.is_empty() || names.iter().any(|n| n == write.name)
            })
            .map(|rule| RuleWithOperations {
                api_groups: rule.api_groups.clone(),
                api_versions: rule.api_versions.clone(),
                operations: rule.operations.clone(),
                resources: rule.resources.clone(),
                scope: rule.scope.clone(),
            })
            .collect()
    };
    let mut included = rules(&resources.resource_rules);
    if resources
        .resource_rules
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        // A binding that names no resources narrows its policy's by selectors alone.
        let every = || Some(vec!["*".to_string()]);
        included.push(RuleWithOperations {
            api_groups: every(),
            api_versions: every(),
            operations: every(),
            resources: Some(vec!["*".into(), "*/*".into()]),
            scope: None,
        });
    }
    let scope = Scope {
        rules: &included,
        namespace_selector: resources.namespace_selector.as_ref(),
        object_selector: resources.object_selector.as_ref(),
    };
    if !in_scope(shared, &scope, write, (object, old)) {
        return false;
    }
    let excluded = rules(&resources.exclude_resource_rules);
    let exclusions = Scope {
        rules: &excluded,
        namespace_selector: None,
        object_selector: None,
    };
    excluded.is_empty() || !in_scope(shared, &exclusions, write, (object, old))
}

/// Kubernetes' defaults for what a policy's match constraints leave out.
fn default_match(resources: &mut MatchResources) {
    resources
        .match_policy
        .get_or_insert_with(|| "Equivalent".into());
    resources
        .namespace_selector
        .get_or_insert_with(Default::default);
    resources
        .object_selector
        .get_or_insert_with(Default::default);
    for rule in resources.resource_rules.iter_mut().flatten() {
        rule.scope.get_or_insert_with(|| "*".into());
    }
}

impl Schema for ValidatingAdmissionPolicy {
    const HAS_STATUS: bool = true;

    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        spec.failure_policy.get_or_insert_with(|| "Fail".into());
        if let Some(resources) = spec.match_constraints.as_mut() {
            default_match(resources);
        }
    }

    fn problems(&self) -> Vec<String> {
        let Some(spec) = &self.spec else {
            return vec![crate::kinds::required("spec")];
        };
        let mut problems = Vec::new();
        if spec.match_constraints.is_none() {
            problems.push(crate::kinds::required("spec.matchConstraints"));
        }
        let validations = spec.validations.as_deref().unwrap_or_default();
        let audits = spec.audit_annotations.as_deref().unwrap_or_default();
        if validations.is_empty() && audits.is_empty() {
            problems.push(
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item"
                    .into(),
            );
        }
        if let Some(policy) = spec.failure_policy.as_deref()
            && !matches!(policy, "Fail" | "Ignore")
        {
            problems.push(format!(
                "spec.failurePolicy: Unsupported value: {policy:?}: supported values: \"Fail\", \"Ignore\""
            ));
        }
        let expressions = validations.iter().map(|v| v.expression.as_str());
        problems.extend(expression_problems(expressions, "spec.validations"));
        let variables = spec
            .variables
            .iter()
            .flatten()
            .map(|v| v.expression.as_str());
        problems.extend(expression_problems(variables, "spec.variables"));
        problems.extend(condition_problems(
            spec.match_conditions.as_deref().unwrap_or_default(),
            "spec.matchConditions",
        ));
        problems
    }
}

impl Schema for ValidatingAdmissionPolicyBinding {
    fn default_fields(&mut self) {
        let spec = self.spec.get_or_insert_default();
        if let Some(resources) = spec.match_resources.as_mut() {
            default_match(resources);
        }
    }

    fn problems(&self) -> Vec<String> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut problems = Vec::new();
        if spec.policy_name.as_deref().is_none_or(str::is_empty) {
            problems.push(crate::kinds::required("spec.policyName"));
        }
        let actions = spec.validation_actions.unwrap_or_default();
        if actions.is_empty() {
            problems.push(crate::kinds::required("spec.validationActions"));
        }
        for (index, action) in actions.iter().enumerate() {
            if !matches!(action.as_str(), "Deny" | "Warn" | "Audit") {
                problems.push(format!(
                    "spec.validationActions[{index}]: Unsupported value: {action:?}: supported values: \"Audit\", \"Deny\", \"Warn\""
                ));
            }
        }
        if actions.iter().any(|a| a == "Deny") && actions.iter().any(|a| a == "Warn") {
            problems.push(
                "spec.validationActions: Invalid value: [\"Deny\",\"Warn\"]: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"
                    .into(),
            );
        }
        problems
    }
}

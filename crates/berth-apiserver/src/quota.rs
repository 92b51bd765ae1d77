//! ResourceQuota and LimitRange admission, as kube-apiserver's ResourceQuota and
//! LimitRanger plugins: a pod being created gets its namespace's default requests and
//! limits and is held to its minimums and maximums; then every object a quota counts is
//! charged against its namespace's quotas — the charge written into the quota's
//! `status.used` in the same compare-and-swap that checks it, so concurrent creates
//! cannot both take the last unit — and refused in kube-apiserver's words when over.
//! The quota controller (berth-controllers' `quota.rs`) totals what exists, giving back
//! what deleted objects used. What a quota counts is berth-quota's.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, PersistentVolumeClaim, Pod, ResourceQuota,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::{Value, json};

use crate::Shared;
use crate::kinds::{Hooks, Schema};
use crate::resources::Resource;
use crate::status::Status;

impl Schema for ResourceQuota {
    const HAS_STATUS: bool = true;

    fn problems(&self) -> Vec<String> {
        let spec = self.spec.clone().unwrap_or_default();
        let mut problems = Vec::new();
        if spec.scopes.as_ref().is_some_and(|s| !s.is_empty()) || spec.scope_selector.is_some() {
            problems.push(
                "spec.scopes: Unsupported value: quota scopes are not supported by Berth yet"
                    .to_string(),
            );
        }
        for name in spec.hard.unwrap_or_default().keys() {
            if !berth_quota::supported(name) {
                problems.push(format!(
                    "spec.hard[{name}]: Unsupported value: {name:?}: Berth's quotas limit pods, services, configmaps, secrets, persistentvolumeclaims (also as count/<resource>), cpu, memory, requests.cpu, requests.memory, limits.cpu, limits.memory and requests.storage"
                ));
            }
        }
        problems
    }
}

impl Schema for LimitRange {
    /// As Kubernetes defaults a limit range: a default limit from the maximum, a default
    /// request from the default limit.
    fn default_fields(&mut self) {
        for item in self
            .spec
            .as_mut()
            .map(|s| s.limits.iter_mut())
            .into_iter()
            .flatten()
        {
            if item.default.is_none() {
                item.default.clone_from(&item.max);
            }
            if item.default_request.is_none() {
                item.default_request.clone_from(&item.default);
            }
        }
    }

    fn problems(&self) -> Vec<String> {
        let limits = self
            .spec
            .as_ref()
            .map(|s| s.limits.as_slice())
            .unwrap_or_default();
        let mut problems = Vec::new();
        for (i, item) in limits.iter().enumerate() {
            if item.type_ != "Container" {
                problems.push(format!(
                    "spec.limits[{i}].type: Unsupported value: {:?}: Berth's limit ranges support \"Container\" only",
                    item.type_
                ));
            }
            if item.max_limit_request_ratio.is_some() {
                problems.push(format!(
                    "spec.limits[{i}].maxLimitRequestRatio: Unsupported value: not supported by Berth yet"
                ));
            }
        }
        problems
    }
}

/// The namespace's Container limit ranges, from the watch cache.
fn container_ranges(shared: &Shared, namespace: &str) -> Vec<LimitRangeItem> {
    shared
        .cache
        .typed_list::<LimitRange>(&format!("/registry/limitranges/{namespace}/"))
        .into_iter()
        .flat_map(|range| range.spec.map(|s| s.limits).unwrap_or_default())
        .filter(|item| item.type_ == "Container")
        .collect()
}

/// LimitRanger for a pod being created: each container gets the default requests and
/// limits it lacks, then must stay within the minimums and maximums.
pub(crate) fn limit(shared: &Shared, namespace: &str, pod: &mut Value) -> Result<(), Status> {
    let ranges = container_ranges(shared, namespace);
    if ranges.is_empty() {
        return Ok(());
    }
    let mut typed: Pod = serde_json::from_value(pod.clone())
        .map_err(|e| Status::bad_request(format!("the pod: {e}")))?;
    let name = typed.metadata.name.clone().unwrap_or_default();
    let mut problems = Vec::new();
    if let Some(spec) = typed.spec.as_mut() {
        let containers = spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut());
        for container in containers {
            let resources = container.resources.get_or_insert_default();
            for range in &ranges {
                fill(&mut resources.limits, range.default.as_ref());
                fill(&mut resources.requests, range.default_request.as_ref());
                problems.extend(bounds(range, &resources.requests, &resources.limits));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Status::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("pods \"{name}\" is forbidden: {}", problems.join(", ")),
        ));
    }
    *pod = serde_json::to_value(&typed).unwrap_or_default();
    Ok(())
}

type Amounts = Option<BTreeMap<String, Quantity>>;

/// Sets in `into` what `defaults` has and it lacks.
fn fill(into: &mut Amounts, defaults: Option<&BTreeMap<String, Quantity>>) {
    for (name, quantity) in defaults.into_iter().flatten() {
        into.get_or_insert_default()
            .entry(name.clone())
            .or_insert_with(|| quantity.clone());
    }
}

/// How a container's requests and limits break the range's minimums and maximums, in
/// LimitRanger's words.
fn bounds(range: &LimitRangeItem, requests: &Amounts, limits: &Amounts) -> Vec<String> {
    let maximums = Bound {
        of: range.max.as_ref(),
        given: limits,
        words: ("maximum", "limit"),
        broken: |value, bound| value > bound,
    };
    let minimums = Bound {
        of: range.min.as_ref(),
        given: requests,
        words: ("minimum", "request"),
        broken: |value, bound| value < bound,
    };
    maximums
        .problems()
        .into_iter()
        .chain(minimums.problems())
        .collect()
}

/// One side of a limit range: its amounts, the container's amounts held to them, and
/// how LimitRanger words a breach.
struct Bound<'a> {
    of: Option<&'a BTreeMap<String, Quantity>>,
    given: &'a Amounts,
    /// `("maximum", "limit")` or `("minimum", "request")`.
    words: (&'static str, &'static str),
    /// Whether the container's amount breaks the bound.
    broken: fn(i128, i128) -> bool,
}

impl Bound<'_> {
    fn problems(&self) -> Vec<String> {
        let (side, amount) = self.words;
        let mut problems = Vec::new();
        for (name, bound) in self.of.into_iter().flatten() {
            let limit = berth_quantity::milli(&bound.0).unwrap_or(0);
            match self.given.as_ref().and_then(|m| m.get(name)) {
                None => problems.push(format!(
                    "{side} {name} usage per Container is {}.  No {amount} is specified",
                    bound.0
                )),
                Some(given)
                    if (self.broken)(berth_quantity::milli(&given.0).unwrap_or(0), limit) =>
                {
                    problems.push(format!(
                        "{side} {name} usage per Container is {}, but {amount} is {}",
                        bound.0, given.0
                    ));
                }
                Some(_) => {}
            }
        }
        problems
    }
}

/// Charges `object`, being created as `resource` in `namespace`, to every quota there
/// that counts it; refused when that would take a quota over its hard limit.
pub(crate) async fn charge(
    shared: &Shared,
    resource: &Resource,
    namespace: &str,
    object: &Value,
) -> Result<(), Status> {
    let quotas: Vec<ResourceQuota> = shared
        .cache
        .typed_list(&format!("/registry/resourcequotas/{namespace}/"));
    if quotas.is_empty() {
        return Ok(());
    }
    let pod: Option<Pod> = (resource.hooks() == Hooks::Pods)
        .then(|| serde_json::from_value(object.clone()).ok())
        .flatten();
    let claim: Option<PersistentVolumeClaim> = (resource.hooks() == Hooks::Claims)
        .then(|| serde_json::from_value(object.clone()).ok())
        .flatten();
    let counted = match (&pod, &claim) {
        (Some(pod), _) => berth_quota::Object::Pod(pod),
        (_, Some(claim)) => berth_quota::Object::Claim(claim),
        _ if let Some(plural) = berth_quota::COUNTED.iter().find(|p| **p == resource.plural) => {
            berth_quota::Object::Other(plural)
        }
        _ => return Ok(()),
    };
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let refused = |why: String| {
        Status::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", resource.plural),
        )
    };
    for quota in quotas {
        let quota_name = quota.metadata.name.clone().unwrap_or_default();
        let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
        if let Some(pod) = &pod {
            let missing: Vec<String> = hard
                .keys()
                .filter(|r| berth_quota::COMPUTE.contains(&r.as_str()))
                .filter_map(|r| {
                    let containers = berth_quota::undeclared(pod, r);
                    (!containers.is_empty()).then(|| format!("{r} for: {}", containers.join(",")))
                })
                .collect();
            if !missing.is_empty() {
                return Err(refused(format!(
                    "failed quota: {quota_name}: must specify {}",
                    missing.join("; ")
                )));
            }
        }
        let wanted: BTreeMap<String, i128> = hard
            .keys()
            .map(|r| (r.clone(), berth_quota::usage(counted, r)))
            .filter(|(_, amount)| *amount > 0)
            .collect();
        if !wanted.is_empty() {
            spend(shared, (namespace, &quota_name), &wanted, &refused).await?;
        }
    }
    Ok(())
}

/// Adds `wanted` to the quota's `status.used` unless that goes over `status.hard`, in
/// which case the answer is `refused` with why.
async fn spend(
    shared: &Shared,
    (namespace, quota_name): (&str, &str),
    wanted: &BTreeMap<String, i128>,
    refused: &(dyn Fn(String) -> Status + Sync),
) -> Result<(), Status> {
    let key = format!("/registry/resourcequotas/{namespace}/{quota_name}");
    let amount = |status: &Value, field: &str, name: &str| {
        status[field][name].as_str().and_then(berth_quantity::milli)
    };
    let edit = |quota: &mut Value| {
        let status = &mut quota["status"];
        let mut over = Vec::new();
        for (name, more) in wanted {
            let Some(hard) = amount(status, "hard", name) else {
                return Err(refused(format!(
                    "status unknown for quota: {quota_name}, resource: {name}"
                )));
            };
            let used = amount(status, "used", name).unwrap_or(0);
            if used + more > hard {
                over.push((name, *more, used, hard));
            }
            status["used"][name] = json!(berth_quota::format(name, used + more));
        }
        if !over.is_empty() {
            let list = |pick: fn(&(&String, i128, i128, i128)) -> i128| {
                let pairs: Vec<String> = over
                    .iter()
                    .map(|o| format!("{}={}", o.0, berth_quota::format(o.0, pick(o))))
                    .collect();
                pairs.join(",")
            };
            return Err(refused(format!(
                "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                list(|o| o.1),
                list(|o| o.2),
                list(|o| o.3)
            )));
        }
        Ok(true)
    };
    crate::stored::edit(shared.store.as_ref(), ("resourcequotas", &key), edit).await
}

//! ClusterRoles with an `aggregationRule` get the rules of every ClusterRole their
//! selectors match, as kube-controller-manager's clusterrole-aggregation controller
//! keeps them: `admin`, `edit` and `view` grow with the `aggregate-to-*` roles that
//! add-ons install, and shrink when those are deleted.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::{Action, Controller, Informers};

/// Runs the controller until the client's watches end: called for each ClusterRole, and
/// for every aggregating one when any ClusterRole changes (its labels may have come into
/// or gone out of a selector, its rules changed).
pub async fn run(client: Client, informers: Informers) {
    let controller = Controller::<ClusterRole>::new(&informers).await;
    let roles = controller.cache().clone();
    let all = roles.clone();
    let controller = controller
        .watches::<ClusterRole>(move |_| all.keys(|role| role.aggregation_rule.is_some()))
        .await;
    let api: Api<ClusterRole> = Api::all(client);
    controller
        .run(|role| {
            let (api, roles) = (&api, &roles);
            async move {
                if role.aggregation_rule.is_some() {
                    let mut all = roles.state();
                    all.sort_by_key(|role| role.name_any());
                    let wanted = aggregated_rules(&role, &all);
                    if role.rules.as_deref().unwrap_or_default() != wanted.as_slice() {
                        write_rules(api, &role.name_any(), &wanted).await?;
                    }
                }
                Ok(Action::AwaitChange)
            }
        })
        .await;
}

/// The rules of every other role `role`'s selectors match, in the roles' name order,
/// each once.
fn aggregated_rules(role: &ClusterRole, all: &[std::sync::Arc<ClusterRole>]) -> Vec<PolicyRule> {
    let selectors = role
        .aggregation_rule
        .as_ref()
        .and_then(|rule| rule.cluster_role_selectors.as_deref())
        .unwrap_or_default();
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in selectors {
        let matched = all
            .iter()
            .filter(|other| other.name_any() != role.name_any())
            .filter(|other| crate::labels::selects(selector, &other.metadata.labels));
        for rule in matched.flat_map(|other| other.rules.iter().flatten()) {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    rules
}

/// Writes `rules` into the role.
async fn write_rules(
    api: &Api<ClusterRole>,
    name: &str,
    rules: &[PolicyRule],
) -> Result<(), kube::Error> {
    let patch = json!({"rules": rules});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

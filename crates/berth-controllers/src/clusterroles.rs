//! ClusterRoles with an `aggregationRule` get the rules of every ClusterRole their
//! selectors match, as kube-controller-manager's clusterrole-aggregation controller
//! keeps them: `admin`, `edit` and `view` grow with the `aggregate-to-*` roles that
//! add-ons install, and shrink when those are deleted.

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use berth_runner::Informers;

use crate::watched::Watched;

/// How soon a failed write is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// How often everything is looked over when nothing changed.
const RECHECK: Duration = Duration::from_secs(60);

/// Runs until the client's watches end.
pub async fn run(client: Client, informers: Informers) {
    let mut watched = Watched::new(&informers);
    let roles = watched.cache::<ClusterRole>().await;
    let api: Api<ClusterRole> = Api::all(client);
    loop {
        let mut all = roles.state();
        all.sort_by_key(|role| role.name_any());
        let mut retry = false;
        for role in all.iter().filter(|r| r.aggregation_rule.is_some()) {
            let wanted = aggregated_rules(role, &all);
            if role.rules.as_deref().unwrap_or_default() != wanted.as_slice() {
                retry |= !write_rules(&api, &role.name_any(), &wanted).await;
            }
        }
        let wait = if retry { RETRY } else { RECHECK };
        if !watched.next_change(wait).await {
            return;
        }
    }
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

/// Writes `rules` into the role; false when it could not.
async fn write_rules(api: &Api<ClusterRole>, name: &str, rules: &[PolicyRule]) -> bool {
    let patch = json!({"rules": rules});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(%error, role = name, "could not aggregate the ClusterRole's rules");
            false
        }
    }
}

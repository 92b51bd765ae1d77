//! The kinds the server serves, as runtime values: Kubernetes' own, then the versions
//! CustomResourceDefinitions add. Every handler finds its resource here; the table is
//! rebuilt from the watch cache's definitions when one of them changes, so a definition
//! is served as soon as the server has it.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion,
};

use crate::Shared;
use crate::cache::{Cache, Memo};
use crate::kinds::NameRule;
use crate::resources::{BUILT_IN, CustomVersion, Definition, Resource, not_served};
use crate::status::Status;

/// Where the cache keeps CustomResourceDefinitions.
const DEFINITIONS: &str = "/registry/customresourcedefinitions/";

/// The served resources, in discovery order.
pub(crate) type Table = Arc<[Arc<Resource>]>;

/// The table of served resources, kept until a definition changes.
pub(crate) struct Registry {
    table: Memo<(), Table>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            table: Memo::new(&[DEFINITIONS]),
        }
    }
}

impl Registry {
    /// Every resource served now.
    pub(crate) fn table(&self, cache: &Cache) -> Table {
        self.table.get_or(cache, (), || {
            let definitions = cache.typed_list::<CustomResourceDefinition>(DEFINITIONS);
            BUILT_IN
                .iter()
                .cloned()
                .chain(definitions.iter().flat_map(resources_of).map(Arc::new))
                .collect()
        })
    }

    /// The resource `plural` of `group`/`version`. One not served yet is looked for
    /// again once the cache has caught up with the store, so a definition created a
    /// moment ago is found.
    pub(crate) async fn find(
        &self,
        shared: &Shared,
        (group, version, plural): (&str, &str, &str),
    ) -> Result<Arc<Resource>, Status> {
        let lookup = || {
            self.table(&shared.cache)
                .iter()
                .find(|r| r.group == group && r.version == version && r.plural == plural)
                .cloned()
        };
        if let Some(found) = lookup() {
            return Ok(found);
        }
        let latest = shared
            .store
            .revision()
            .await
            .map_err(|e| Status::from_store(e, plural, ""))?;
        if shared.cache.caught_up(latest).await {
            return lookup().ok_or_else(not_served);
        }
        Err(not_served())
    }
}

/// The group versions of `table` besides the core `v1`, in discovery order, each group
/// with its versions.
pub(crate) fn group_versions(table: &[Arc<Resource>]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for resource in table.iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == resource.group) {
            Some((_, versions)) if !versions.contains(&resource.version) => {
                versions.push(resource.version.clone());
            }
            Some(_) => {}
            None => groups.push((resource.group.clone(), vec![resource.version.clone()])),
        }
    }
    groups
}

/// Each group version of `table` besides the core `v1`, as (group, version).
pub(crate) fn each_group_version(table: &[Arc<Resource>]) -> Vec<(String, String)> {
    group_versions(table)
        .into_iter()
        .flat_map(|(group, versions)| versions.into_iter().map(move |v| (group.clone(), v)))
        .collect()
}

/// The resources `definition` serves: one per served version, the preferred first.
fn resources_of(definition: &CustomResourceDefinition) -> Vec<Resource> {
    let spec = &definition.spec;
    let names = &spec.names;
    let mut versions: Vec<&CustomResourceDefinitionVersion> =
        spec.versions.iter().filter(|v| v.served).collect();
    versions.sort_by_key(|v| std::cmp::Reverse(priority(&v.name)));
    versions
        .into_iter()
        .map(|version| Resource {
            group: spec.group.clone(),
            version: version.name.clone(),
            plural: names.plural.clone(),
            singular: names
                .singular
                .clone()
                .unwrap_or_else(|| names.kind.to_lowercase()),
            kind: names.kind.clone(),
            namespaced: spec.scope == "Namespaced",
            short_names: names.short_names.clone().unwrap_or_default(),
            has_status: version
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some()),
            name_rule: NameRule::Subdomain,
            categories: names.categories.clone().unwrap_or_default(),
            directory: directory_of(definition),
            definition: Definition::Custom(Arc::new(CustomVersion::of(version))),
        })
        .collect()
}

/// Where a definition's objects are stored: `/registry/<group>/<plural>/`.
pub(crate) fn directory_of(definition: &CustomResourceDefinition) -> String {
    format!(
        "/registry/{}/{}/",
        definition.spec.group, definition.spec.names.plural
    )
}

/// How Kubernetes ranks version names: GA over beta over alpha, higher numbers first,
/// names of no such shape last.
fn priority(name: &str) -> (u8, u32, u32) {
    let Some(rest) = name.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let Ok(major) = rest[..digits].parse::<u32>() else {
        return (0, 0, 0);
    };
    let (stage, minor) = match &rest[digits..] {
        "" => (3, 0),
        suffix => match (suffix.strip_prefix("beta"), suffix.strip_prefix("alpha")) {
            (Some(n), _) => (2, n.parse().unwrap_or(0)),
            (_, Some(n)) => (1, n.parse().unwrap_or(0)),
            _ => return (0, 0, 0),
        },
    };
    (stage, major, minor)
}

#[cfg(test)]
mod tests {
    use super::priority;

    #[test]
    fn versions_rank_as_kubernetes_ranks_them() {
        let mut names = ["v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1", "v10"];
        names.sort_by_key(|n| std::cmp::Reverse(priority(n)));
        assert_eq!(
            names,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}

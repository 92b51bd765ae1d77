//! The kinds the server serves, as runtime values: Kubernetes' own, then the versions
//! CustomResourceDefinitions add. Every handler finds its resource here; the table is
//! rebuilt from the watch cache's definitions when one of them changes, so a definition
//! is served as soon as the server has it.

use std::sync::Arc;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::Shared;
use crate::cache::{Cache, Memo};
use crate::resources::{BUILT_IN, Resource, not_served};
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
                .chain(
                    definitions
                        .iter()
                        .flat_map(crate::custom::resources_of)
                        .map(Arc::new),
                )
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

//! Where objects are kept: a resource's place (its store prefix, in a namespace or
//! not), the object stored at a name, and everything stored in a namespace. Objects are
//! kept as JSON under `/registry/<plural>/[<namespace>/]<name>`, as kube-apiserver keeps
//! them in etcd; their resourceVersion is the store revision of their last change.

use std::sync::Arc;

use serde_json::Value;

use crate::Shared;
use crate::objects;
use crate::resources::Resource;
use crate::status::Status;

/// Where a request points: a resource, and for namespaced ones a namespace.
pub(crate) struct Place {
    pub(crate) resource: Arc<Resource>,
    pub(crate) namespace: Option<String>,
}

impl Place {
    /// The store prefix of the objects in this place.
    pub(crate) fn prefix(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{}{namespace}/", self.resource.directory),
            None => self.resource.directory.clone(),
        }
    }
}

/// The object at `name`: its store key, its stored form, and as clients see it.
pub(crate) async fn current(
    shared: &Shared,
    place: &Place,
    name: &str,
) -> Result<(String, berth_store::KeyValue, Value), Status> {
    let key = format!("{}{name}", place.prefix());
    let not_found = || Status::not_found(&place.resource.plural, name);
    let stored = shared
        .store
        .get(&key)
        .await
        .map_err(|e| Status::from_store(e, &place.resource.plural, name))?
        .ok_or_else(not_found)?;
    let object = objects::from_stored(&stored).ok_or_else(not_found)?;
    Ok((key, stored, object))
}

/// Every object in `namespace`, of every namespaced resource, as stored.
pub(crate) async fn in_namespace(
    shared: &Shared,
    namespace: &str,
) -> Result<Vec<(Arc<Resource>, berth_store::KeyValue)>, Status> {
    let mut found = Vec::new();
    let table = shared.registry.table(&shared.cache);
    // A definition serves each version as a resource of its own, all stored together.
    let mut directories: Vec<&str> = Vec::new();
    for resource in table.iter().filter(|r| r.namespaced) {
        if directories.contains(&resource.directory.as_str()) {
            continue;
        }
        directories.push(&resource.directory);
        let prefix = format!("{}{namespace}/", resource.directory);
        let listed = shared
            .store
            .list(&prefix, "", 0, 0)
            .await
            .map_err(|e| Status::from_store(e, &resource.plural, ""))?;
        found.extend(
            listed
                .items
                .into_iter()
                .map(|kv| (Arc::clone(resource), kv)),
        );
    }
    Ok(found)
}

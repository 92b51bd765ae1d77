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
        self.resource.prefix(self.namespace.as_deref())
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
        let prefix = resource.prefix(Some(namespace));
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

/// A 404 unless `namespace` exists, a 403 while it is being deleted: objects are only
/// made in namespaces that live (kube-apiserver's NamespaceLifecycle). As there, the
/// namespace is looked up in the watch cache — a store read for every create was a
/// tenth of the server's time under pod creates — and in the store only when the cache
/// has not seen it yet (made a moment ago).
pub(crate) async fn require_namespace(shared: &Shared, namespace: &str) -> Result<(), Status> {
    let key = format!("/registry/namespaces/{namespace}");
    let terminating = match shared.cache.get(&key) {
        Some(entry) => entry
            .typed::<Terminating>()
            .is_some_and(|n| n.is_terminating()),
        None => match shared.store.get(&key).await {
            Ok(Some(kv)) => {
                serde_json::from_slice::<Terminating>(&kv.value).is_ok_and(|n| n.is_terminating())
            }
            Ok(None) => return Err(Status::not_found("namespaces", namespace)),
            Err(e) => return Err(Status::from_store(e, "namespaces", namespace)),
        },
    };
    if terminating {
        return Err(Status::new(
            axum::http::StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        ));
    }
    Ok(())
}

/// The one part of an object a create reads of its namespace.
#[derive(serde::Deserialize)]
struct Terminating {
    #[serde(default)]
    metadata: TerminatingMetadata,
}

#[derive(serde::Deserialize, Default)]
struct TerminatingMetadata {
    #[serde(default, rename = "deletionTimestamp")]
    deletion_timestamp: Option<serde::de::IgnoredAny>,
}

impl Terminating {
    fn is_terminating(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
}

/// Creates one of the server's own objects of `plural` (in `namespace`, for a
/// namespaced kind), read through its kind's schema as a client's would be; one of its
/// name there already is no error.
pub(crate) async fn create_own(
    store: &dyn berth_store::Store,
    plural: &str,
    namespace: Option<&str>,
    object: Value,
) -> Result<(), Status> {
    let (key, object) = crate::prepare::own(plural, namespace, object)?;
    let name = objects::name_of(&object).to_string();
    match store.create(&key, encoded(&object)?).await {
        Ok(_) | Err(berth_store::Error::Exists(_)) => Ok(()),
        Err(e) => Err(Status::from_store(e, plural, &name)),
    }
}

/// The server's own change to the object of `plural` stored at `key`: `edit` changes it
/// in place (false leaves it as it is, an error refuses), and it is written only if
/// nobody wrote it meanwhile — read again and edited anew when somebody did. A quota's
/// charge, an APIService's availability and a signed certificate are written so.
pub(crate) async fn edit(
    store: &dyn berth_store::Store,
    (plural, key): (&str, &str),
    mut edit: impl FnMut(&mut Value) -> Result<bool, Status>,
) -> Result<(), Status> {
    let name = key.rsplit('/').next().unwrap_or_default();
    let gone = || Status::not_found(plural, name);
    loop {
        let stored = store
            .get(key)
            .await
            .map_err(|e| Status::from_store(e, plural, name))?
            .ok_or_else(gone)?;
        let mut object: Value = serde_json::from_slice(&stored.value).map_err(|_| gone())?;
        if !edit(&mut object)? {
            return Ok(());
        }
        match store
            .update(key, encoded(&object)?, stored.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(berth_store::Error::Conflict { .. }) => {}
            Err(e) => return Err(Status::from_store(e, plural, name)),
        }
    }
}

/// An object as the store keeps it.
fn encoded(object: &Value) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(object).map_err(|e| {
        Status::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )
    })
}

//! The objects every cluster has, made at the server's first start: its namespaces, the
//! system PriorityClasses, the default StorageClass and IngressClass, and the default
//! RBAC policy.

use serde_json::json;

use crate::objects::SYSTEM_NAMESPACES;
use crate::status::Status;

/// Makes the objects every cluster has, once.
pub(crate) async fn ensure(store: &dyn berth_store::Store) -> crate::Result<()> {
    let namespaces = SYSTEM_NAMESPACES
        .iter()
        .map(|name| ("namespaces", json!({"metadata": {"name": name}})));
    let classes = crate::priorities::system_classes().map(|class| ("priorityclasses", class));
    let storage = [
        ("storageclasses", crate::storage::default_class()),
        ("ingressclasses", crate::networking::default_ingress_class()),
    ];
    let policy = crate::rbac::bootstrap_policy();
    for (plural, object) in namespaces.chain(classes).chain(storage).chain(policy) {
        // The objects are the server's own: one it cannot make is a bug to stop at.
        let refused = |status: Status| {
            crate::Error::Setup(format!("a default object of {plural}: {status:?}"))
        };
        crate::stored::create_own(store, plural, None, object)
            .await
            .map_err(refused)?;
    }
    Ok(())
}

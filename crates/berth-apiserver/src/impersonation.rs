//! Impersonation, as kube-apiserver's: a request with `Impersonate-User` (and
//! `Impersonate-Group`s) acts as that user when its sender may `impersonate` them —
//! `users`, `groups` and `serviceaccounts` in the core group, checked by the same
//! authorization as everything else. `kubectl --as` and `--as-group` send these, so
//! admins check what a role grants (`kubectl auth can-i … --as=…`) and act for others.
//! Extra fields and uids (`Impersonate-Extra-*`, `Impersonate-Uid`) are refused by name:
//! nothing here would read them.

use axum::http::HeaderMap;

use crate::Shared;
use crate::identity::{Access, Identity};
use crate::status::Status;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";

/// The identity `identity` asks to act as, if its request impersonates someone and it
/// may; a 403 in kube-apiserver's words when it may not.
pub(crate) fn impersonated(
    shared: &Shared,
    identity: &Identity,
    headers: &HeaderMap,
) -> Result<Option<Identity>, Status> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    };
    let unsupported = headers.keys().find(|name| {
        let name = name.as_str();
        name == "impersonate-uid" || name.starts_with("impersonate-extra-")
    });
    if let Some(name) = unsupported {
        return Err(Status::bad_request(format!(
            "impersonation header {name} is not supported by this server"
        )));
    }
    let (users, groups) = (values(USER), values(GROUP));
    let Some(user) = users.first() else {
        if groups.is_empty() {
            return Ok(None);
        }
        return Err(Status::bad_request(
            "requested [{Group}] without impersonating a user",
        ));
    };
    let account = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    let target = match account {
        Some((namespace, name)) => Access {
            verb: "impersonate",
            group: "",
            plural: "serviceaccounts",
            subresource: None,
            namespace: Some(namespace),
            name: Some(name),
        },
        None => Access {
            verb: "impersonate",
            group: "",
            plural: "users",
            subresource: None,
            namespace: None,
            name: Some(user),
        },
    };
    crate::authorization::require(shared, identity, target)?;
    for group in &groups {
        let access = Access {
            plural: "groups",
            namespace: None,
            name: Some(group),
            ..target
        };
        crate::authorization::require(shared, identity, access)?;
    }
    Ok(Some(match account {
        Some((namespace, name)) if groups.is_empty() => Identity::ServiceAccount {
            namespace: namespace.to_string(),
            name: name.to_string(),
        },
        _ => Identity::of_user(user.clone(), groups),
    }))
}

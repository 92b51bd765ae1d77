//! An object readied for the store against its resource, as kube-apiserver's generic
//! registry readies it before a create or an update: its kind and apiVersion checked
//! (and filled in), its name checked by the kind's rule (or made from generateName),
//! its namespace the request's, and the fields the server owns — uid, creation time —
//! set; an update's resourceVersion taken as the revision it expects.

use serde_json::{Value, json};

use crate::kinds::NameRule;
use crate::objects::{now, random_suffix, uid};
use crate::resources::Resource;
use crate::status::Status;

/// A name the kind accepts (its [`NameRule`]), or kube-apiserver's words for why not.
fn check_name(resource: &Resource, name: &str) -> Result<(), String> {
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let rule = match resource.name_rule {
        NameRule::Label if name.len() <= 63 && valid_label(name) => return Ok(()),
        NameRule::Label => {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        }
        NameRule::Subdomain if name.len() <= 253 && name.split('.').all(valid_label) => {
            return Ok(());
        }
        NameRule::Subdomain => {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        }
        NameRule::PathSegment => match name {
            "." | ".." => "may not be '.' or '..'",
            _ if name.contains('/') => "may not contain '/'",
            _ if name.contains('%') => "may not contain '%'",
            _ => return Ok(()),
        },
    };
    Err(format!("metadata.name: Invalid value: \"{name}\": {rule}"))
}

/// Checks the object's kind and apiVersion against the resource's.
fn check_kind(resource: &Resource, object: &mut Value) -> Result<(), Status> {
    let api_version = resource.api_version();
    match object["apiVersion"].as_str() {
        None => {}
        Some(given) if given == api_version => {}
        Some(other) => {
            return Err(Status::bad_request(format!(
                "the API version in the data ({other}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match object["kind"].as_str() {
        None => {}
        Some(kind) if kind == resource.kind => {}
        Some(kind) => {
            return Err(Status::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(resource.kind);
    Ok(())
}

/// Checks the namespace in the object against the request's, filling it in.
fn check_namespace(object: &mut Value, namespace: Option<&str>) -> Result<(), Status> {
    let Some(namespace) = namespace else {
        if let Some(map) = object["metadata"].as_object_mut() {
            map.remove("namespace");
        }
        return Ok(());
    };
    match object["metadata"]["namespace"].as_str() {
        Some(given) if !given.is_empty() && given != namespace => Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => {
            object["metadata"]["namespace"] = json!(namespace);
            Ok(())
        }
    }
}

/// A new object's store key and stored form: name (from generateName when asked), uid,
/// creation time and the resource's defaults.
pub(crate) fn create(
    resource: &Resource,
    namespace: Option<&str>,
    mut object: Value,
    prefix: &str,
) -> Result<(String, Value), Status> {
    check_kind(resource, &mut object)?;
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let name = match (
        object["metadata"]["name"].as_str(),
        object["metadata"]["generateName"].as_str(),
    ) {
        (Some(name), _) if !name.is_empty() => name.to_string(),
        (_, Some(base)) if !base.is_empty() => format!("{base}{}", random_suffix()?),
        _ => {
            return Err(Status::invalid(
                &resource.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
    };
    check_name(resource, &name).map_err(|m| Status::invalid(&resource.kind, &name, m))?;
    check_namespace(&mut object, namespace)?;
    let metadata = &mut object["metadata"];
    metadata["name"] = json!(name);
    metadata["uid"] = json!(uid()?);
    metadata["creationTimestamp"] = json!(now());
    if let Some(map) = metadata.as_object_mut() {
        map.remove("resourceVersion");
    }
    Ok((format!("{prefix}{name}"), object))
}

/// An update's expected revision (0 when the client sent none) and stored form.
pub(crate) fn update(
    resource: &Resource,
    namespace: Option<&str>,
    name: &str,
    mut object: Value,
) -> Result<(i64, Value), Status> {
    check_kind(resource, &mut object)?;
    match object["metadata"]["name"].as_str() {
        Some(given) if given == name => {}
        Some(given) => {
            return Err(Status::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        None => object["metadata"]["name"] = json!(name),
    }
    check_namespace(&mut object, namespace)?;
    let expected = match object["metadata"]["resourceVersion"].as_str() {
        None | Some("") => 0,
        Some(text) => text.parse().map_err(|_| {
            Status::invalid(
                &resource.kind,
                name,
                format!("metadata.resourceVersion: Invalid value: \"{text}\": must be the resourceVersion the server gave"),
            )
        })?,
    };
    if let Some(map) = object["metadata"].as_object_mut() {
        map.remove("resourceVersion");
    }
    Ok((expected, object))
}

/// One of the server's own objects of `plural` (in `namespace`, for a namespaced kind),
/// named, stamped and read through its kind's schema as a client's would be: its store
/// key and stored form.
pub(crate) fn own(
    plural: &str,
    namespace: Option<&str>,
    object: Value,
) -> Result<(String, Value), Status> {
    let resource = crate::resources::resource(plural)?;
    let (key, object) = create(&resource, namespace, object, &resource.prefix(namespace))?;
    let admitted = resource.admit(object, (crate::kinds::FieldValidation::Strict, None))?;
    Ok((key, admitted.object))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_must_be_dns_names() {
        let ns = crate::resources::resource("namespaces").expect("served");
        let cm = crate::resources::resource("configmaps").expect("served");
        assert!(check_name(&cm, "app.config-1").is_ok());
        assert!(check_name(&ns, "app.config").is_err());
        assert!(check_name(&cm, "Upper").is_err());
        assert!(check_name(&cm, "-x").is_err());
    }
}

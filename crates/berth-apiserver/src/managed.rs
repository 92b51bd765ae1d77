//! Field ownership (`metadata.managedFields`) and server-side apply. Every write records
//! which manager set which fields: an update owns the fields it changed, an apply owns
//! exactly the fields of its configuration. An apply that would change a field another
//! manager owns is refused with the conflicts named unless forced; fields an applier
//! stops naming are removed when nobody else owns them.
//!
//! Lists are owned whole (kube-apiserver tracks keyed list items one by one).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// A field's path from the object's root: `["spec", "replicas"]`.
type Path = Vec<String>;

/// The fields a manager owns.
type FieldSet = BTreeSet<Path>;

/// The metadata fields that are the object's owners' to set; the rest are the server's.
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// Who writes, and how: the `fieldManager` of a request.
#[derive(Debug, Clone)]
pub(crate) struct Manager {
    /// The manager's name: kubectl's `kubectl-client-side-apply`, a controller's name.
    pub(crate) name: String,
    /// Whether the write is a server-side apply.
    pub(crate) applying: bool,
    /// Whether an apply takes conflicting fields from their owners.
    pub(crate) force: bool,
}

/// A field another manager owns and an apply would change.
#[derive(Debug)]
pub(crate) struct Conflict {
    manager: String,
    path: Path,
}

/// kube-apiserver's message for an apply's conflicts.
pub(crate) fn conflict_message(conflicts: &[Conflict], api_version: &str) -> String {
    let field = |c: &Conflict| format!(".{}", c.path.join("."));
    match conflicts {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {api_version}: {}",
            one.manager,
            field(one)
        ),
        many => {
            let mut managers: Vec<&str> = many.iter().map(|c| c.manager.as_str()).collect();
            managers.dedup();
            let lines: Vec<String> = many.iter().map(|c| format!("- {}", field(c))).collect();
            format!(
                "Apply failed with {} conflicts: conflicts with \"{}\" using {api_version}:\n{}",
                many.len(),
                managers.join("\", \""),
                lines.join("\n")
            )
        }
    }
}

/// The fields an object sets: its leaves, lists and empty maps counted whole.
fn fields_of(object: &Value) -> FieldSet {
    let mut found = FieldSet::new();
    if let Value::Object(map) = object {
        for (key, value) in map {
            match key.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    for field in OWNED_METADATA {
                        leaves(
                            &value[field],
                            vec!["metadata".into(), field.into()],
                            &mut found,
                        );
                    }
                }
                _ => leaves(value, vec![key.clone()], &mut found),
            }
        }
    }
    found
}

fn leaves(value: &Value, path: Path, found: &mut FieldSet) {
    match value {
        Value::Null => {}
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut deeper = path.clone();
                deeper.push(key.clone());
                leaves(child, deeper, found);
            }
        }
        _ => {
            found.insert(path);
        }
    }
}

fn value_at<'v>(object: &'v Value, path: &Path) -> &'v Value {
    path.iter().fold(object, |value, key| &value[key])
}

fn set_at(object: &mut Value, path: &Path, value: Value) {
    let target = path.iter().fold(object, |value, key| {
        if !value.is_object() {
            *value = json!({});
        }
        &mut value[key]
    });
    *target = value;
}

/// Removes the field at `path`, and the maps it leaves empty.
fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut value = &mut *object;
    for key in parents {
        match value.get_mut(key) {
            Some(child) => value = child,
            None => return,
        }
    }
    if let Some(map) = value.as_object_mut() {
        map.remove(last);
        if map.is_empty() && !parents.is_empty() {
            remove_at(object, parents);
        }
    }
}

/// FieldsV1: `{"f:spec": {"f:replicas": {}}}`.
fn encode(fields: &FieldSet) -> Value {
    let mut root = json!({});
    for path in fields {
        let keyed: Path = path.iter().map(|k| format!("f:{k}")).collect();
        set_at(&mut root, &keyed, json!({}));
    }
    root
}

fn decode(fields: &Value, path: Path, found: &mut FieldSet) {
    let children: Vec<(&String, &Value)> = fields
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("f:"))
        .collect();
    if children.is_empty() {
        if !path.is_empty() {
            found.insert(path);
        }
        return;
    }
    for (key, child) in children {
        let mut deeper = path.clone();
        deeper.push(key["f:".len()..].to_string());
        decode(child, deeper, found);
    }
}

/// The object's managers and their fields, keyed by name and operation.
fn owners(object: &Value) -> BTreeMap<(String, String), FieldSet> {
    let mut owners = BTreeMap::new();
    for entry in object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut fields = FieldSet::new();
        decode(&entry["fieldsV1"], Vec::new(), &mut fields);
        let key = (
            entry["manager"].as_str().unwrap_or_default().to_string(),
            entry["operation"].as_str().unwrap_or("Update").to_string(),
        );
        owners.insert(key, fields);
    }
    owners
}

/// Writes the owners into the object's managedFields, leaving out those who own
/// nothing any more; each entry keeps the time of its manager's last write as
/// `previous` entries say, the `writer`'s is now.
fn record(
    object: &mut Value,
    owners: BTreeMap<(String, String), FieldSet>,
    (previous, writer): (&Value, &(String, String)),
    api_version: &str,
) {
    let now = json!(crate::objects::rfc3339(std::time::SystemTime::now()));
    let time_of = |key: &(String, String)| {
        let earlier = previous
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["manager"] == key.0.as_str() && e["operation"] == key.1.as_str());
        match earlier {
            Some(entry) if key != writer => entry["time"].clone(),
            _ => now.clone(),
        }
    };
    let entries: Vec<Value> = owners
        .iter()
        .filter(|(_, fields)| !fields.is_empty())
        .map(|(key, fields)| {
            json!({
                "manager": key.0,
                "operation": key.1,
                "apiVersion": api_version,
                "time": time_of(key),
                "fieldsType": "FieldsV1",
                "fieldsV1": encode(fields),
            })
        })
        .collect();
    object["metadata"]["managedFields"] = Value::Array(entries);
}

/// An update by `manager` from `old` to `new`: it owns the fields it changed, which no
/// one else owns any more; fields it removed are no one's.
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
) {
    let mut owners = old.map(owners).unwrap_or_default();
    let before = old.map(fields_of).unwrap_or_default();
    let after = fields_of(new);
    let changed: FieldSet = after
        .iter()
        .filter(|p| old.is_none_or(|o| value_at(o, p) != value_at(new, p)))
        .cloned()
        .collect();
    let gone: FieldSet = before.difference(&after).cloned().collect();
    for fields in owners.values_mut() {
        fields.retain(|p| !changed.contains(p) && !gone.contains(p));
    }
    let writer = (manager.to_string(), "Update".to_string());
    owners.entry(writer.clone()).or_default().extend(changed);
    let previous = old.map_or(Value::Null, |o| o["metadata"]["managedFields"].clone());
    record(new, owners, (&previous, &writer), api_version);
}

/// A server-side apply of `applied` by `manager` to `current` (None when the object
/// does not exist yet): the object as it results, or the conflicts that stop it.
pub(crate) fn apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &Manager,
    api_version: &str,
) -> Result<Value, Vec<Conflict>> {
    let wanted = fields_of(applied);
    let stamp = (manager.name.clone(), "Apply".to_string());
    let Some(current) = current else {
        let mut object = applied.clone();
        let owners = BTreeMap::from([(stamp.clone(), wanted)]);
        record(&mut object, owners, (&Value::Null, &stamp), api_version);
        return Ok(object);
    };
    let mut owners = owners(current);
    let mut conflicts = Vec::new();
    for ((name, _), fields) in owners.iter_mut().filter(|(key, _)| **key != stamp) {
        let contested: Vec<Path> = fields
            .iter()
            .filter(|p| {
                wanted.iter().any(|w| overlaps(w, p))
                    && value_at(current, p) != value_at(applied, p)
            })
            .cloned()
            .collect();
        for path in contested {
            if manager.force {
                fields.remove(&path);
            } else {
                conflicts.push(Conflict {
                    manager: name.clone(),
                    path,
                });
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut object = current.clone();
    let previously = owners.remove(&stamp).unwrap_or_default();
    for path in previously.difference(&wanted) {
        if !owners.values().any(|f| f.iter().any(|p| overlaps(p, path))) {
            remove_at(&mut object, path);
        }
    }
    for path in &wanted {
        set_at(&mut object, path, value_at(applied, path).clone());
    }
    owners.insert(stamp.clone(), wanted);
    let previous = current["metadata"]["managedFields"].clone();
    record(&mut object, owners, (&previous, &stamp), api_version);
    Ok(object)
}

/// Whether one path is the other or lies under it.
fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// An applied configuration without the fields that are the server's (resourceVersion,
/// uid, status…), so only what the applier declares counts.
pub(crate) fn configuration(mut applied: Value) -> Value {
    if let Some(map) = applied.as_object_mut() {
        map.remove("status");
    }
    if let Some(metadata) = applied["metadata"].as_object_mut() {
        metadata
            .retain(|k, _| OWNED_METADATA.contains(&k.as_str()) || k == "name" || k == "namespace");
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(name: &str, force: bool) -> Manager {
        Manager {
            name: name.into(),
            applying: true,
            force,
        }
    }

    #[test]
    fn an_apply_owns_its_fields_and_removes_what_it_stops_naming() {
        let first =
            json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}});
        let object = apply(None, &first, &manager("me", false), "v1").unwrap();
        assert_eq!(
            object["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:x": {}, "f:y": {}}, "f:metadata": {"f:labels": {"f:a": {}}}})
        );
        let second = json!({"metadata": {"name": "c"}, "data": {"x": "3"}});
        let object = apply(Some(&object), &second, &manager("me", false), "v1").unwrap();
        assert_eq!(object["data"], json!({"x": "3"}));
        assert!(object["metadata"]["labels"].is_null());
    }

    #[test]
    fn another_manager_s_fields_conflict_unless_forced() {
        let mut object = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        record_update(None, &mut object, "editor", "v1");
        let applied = json!({"metadata": {"name": "c"}, "data": {"x": "2"}});
        let conflicts = apply(Some(&object), &applied, &manager("me", false), "v1").unwrap_err();
        assert_eq!(
            conflict_message(&conflicts, "v1"),
            "Apply failed with 1 conflict: conflict with \"editor\" using v1: .data.x"
        );
        let same = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        assert!(apply(Some(&object), &same, &manager("me", false), "v1").is_ok());
        let forced = apply(Some(&object), &applied, &manager("me", true), "v1").unwrap();
        assert_eq!(forced["data"]["x"], "2");
        let owners: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(owners, ["me"]);
    }
}

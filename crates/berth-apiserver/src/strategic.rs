//! Strategic merge patches, as kube-apiserver applies them to its own kinds: a JSON merge
//! patch whose lists are merged where the Go types say so — containers by `name`, ports
//! by `containerPort`, finalizers as a set — rather than replaced, with kubectl's
//! directives: `$patch: delete|replace|merge`, `$setElementOrder/<list>`,
//! `$deleteFromPrimitiveList/<list>` and `$retainKeys`. Which lists merge, and by which
//! key, is read from `proto/patch-strategies.txt` (generated with `proto/` from the Go
//! types' tags); which message a field holds, from the protobuf descriptors — so a patch
//! is walked along the kind's schema.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::{FieldDescriptor, Kind as FieldKind, MessageDescriptor};
use serde_json::{Map, Value};

/// How a strategic merge patch treats one field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Strategy {
    /// As the Go tag says it: `merge`, `retainKeys`, `merge,retainKeys`, `replace`.
    tag: String,
    /// The field that identifies an item of a merged list of objects.
    key: Option<String>,
}

/// The strategies of the fields that have one, by message and field name.
static STRATEGIES: LazyLock<HashMap<(String, String), Strategy>> = LazyLock::new(|| {
    include_str!("../proto/patch-strategies.txt")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (message, field, strategy) = (words.next()?, words.next()?, words.next()?);
            let strategy = Strategy {
                tag: strategy.to_string(),
                key: words.next().map(str::to_string),
            };
            Some(((message.to_string(), field.to_string()), strategy))
        })
        .collect()
});

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies `patch` to `object`, an object of the kind `message` describes.
pub(crate) fn apply(
    object: &mut Value,
    patch: Value,
    message: &MessageDescriptor,
) -> Result<(), String> {
    let (Value::Object(original), Value::Object(patch)) = (object, patch) else {
        return Err("a strategic merge patch must be a JSON object".into());
    };
    merge_map(original, patch, Some(message))
}

/// Merges `patch` into `original`, maps of the message `message` (None where the
/// schema says nothing: an unknown field's value, which merges as JSON merge patches do).
fn merge_map(
    original: &mut Map<String, Value>,
    mut patch: Map<String, Value>,
    message: Option<&MessageDescriptor>,
) -> Result<(), String> {
    match patch.remove(PATCH).as_ref().map(|d| d.as_str()) {
        None | Some(Some("merge")) => {}
        Some(Some("replace")) => {
            original.clear();
            return merge_map(original, patch, message);
        }
        Some(Some("delete")) => {
            original.clear();
            return Ok(());
        }
        Some(other) => return Err(format!("unknown value {other:?} of the $patch directive")),
    }
    let retained = patch.remove(RETAIN_KEYS);
    let mut orders = Vec::new();
    let mut deletions = Vec::new();
    for (key, value) in patch {
        if let Some(list) = key.strip_prefix(SET_ELEMENT_ORDER) {
            orders.push((list.to_string(), value));
            continue;
        }
        if let Some(list) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            deletions.push((list.to_string(), value));
            continue;
        }
        if key.starts_with('$') {
            return Err(format!("unknown patch directive {key:?}"));
        }
        if value.is_null() || is_delete(&value) {
            original.remove(&key);
            continue;
        }
        let field = message.and_then(|m| m.get_field_by_name(&key));
        let slot = original.entry(key.clone()).or_insert_with(|| match &value {
            Value::Object(_) => Value::Object(Map::new()),
            Value::Array(_) => Value::Array(Vec::new()),
            _ => Value::Null,
        });
        match (slot, value) {
            (Value::Object(current), Value::Object(changes)) => match &field {
                Some(field) if field.is_map() => merge_entries(current, changes, field)?,
                _ => merge_map(
                    current,
                    changes,
                    field.as_ref().and_then(held_message).as_ref(),
                )?,
            },
            (Value::Array(current), Value::Array(items)) => {
                let strategy = message.and_then(|m| strategy_of(m, &key));
                let items_message = field.as_ref().and_then(held_message);
                merge_list(current, items, strategy, items_message.as_ref())?;
            }
            (slot, value) => *slot = stripped(value),
        }
    }
    for (list, values) in deletions {
        let values = values.as_array().cloned().unwrap_or_default();
        if let Some(Value::Array(items)) = original.get_mut(&list) {
            items.retain(|item| !values.contains(item));
        }
    }
    for (list, order) in orders {
        let key = message
            .and_then(|m| strategy_of(m, &list))
            .and_then(|s| s.key.clone());
        if let (Some(Value::Array(items)), Value::Array(order)) = (original.get_mut(&list), order) {
            reorder(items, &order, key.as_deref());
        }
    }
    if let Some(Value::Array(keys)) = retained {
        original.retain(|key, _| keys.iter().any(|k| k.as_str() == Some(key)));
    }
    Ok(())
}

/// Merges the entries of a map field (`labels`, `resources.limits`): each key's value
/// replaced, merged when it is a message, or removed when null.
fn merge_entries(
    original: &mut Map<String, Value>,
    patch: Map<String, Value>,
    field: &FieldDescriptor,
) -> Result<(), String> {
    let values = match field.kind() {
        FieldKind::Message(entry) => held_message(&entry.map_entry_value_field()),
        _ => None,
    };
    let mut wrapper = Map::new();
    for (key, value) in patch {
        match (original.get_mut(&key), value) {
            (_, Value::Null) => drop(original.remove(&key)),
            (Some(Value::Object(current)), Value::Object(changes)) => {
                merge_map(current, changes, values.as_ref())?
            }
            (_, value) => drop(wrapper.insert(key, value)),
        }
    }
    for (key, value) in wrapper {
        original.insert(key, stripped(value));
    }
    Ok(())
}

/// Merges a list as its strategy says: items by key, values as a set, or the whole list
/// replaced. A `$patch: replace` item replaces it in any case.
fn merge_list(
    original: &mut Vec<Value>,
    items: Vec<Value>,
    strategy: Option<&Strategy>,
    message: Option<&MessageDescriptor>,
) -> Result<(), String> {
    let replaced = items
        .iter()
        .any(|i| i.get(PATCH).and_then(Value::as_str) == Some("replace"));
    let merged = strategy.is_some_and(|s| s.tag.split(',').any(|t| t == "merge"));
    if replaced || !merged {
        *original = items
            .into_iter()
            .filter(|i| i.get(PATCH).is_none())
            .map(stripped)
            .collect();
        return Ok(());
    }
    let Some(key) = strategy.and_then(|s| s.key.as_deref()) else {
        for item in items {
            if !original.contains(&item) {
                original.push(item);
            }
        }
        return Ok(());
    };
    for item in items {
        let Value::Object(changes) = item else {
            return Err(format!(
                "a list merged by {key:?} holds something other than objects"
            ));
        };
        let wanted = changes.get(key).cloned();
        let position = original
            .iter()
            .position(|o| wanted.is_some() && o.get(key) == wanted.as_ref());
        match (is_delete_map(&changes), position) {
            (true, Some(at)) => drop(original.remove(at)),
            (true, None) => {}
            (false, Some(at)) => {
                if let Value::Object(current) = &mut original[at] {
                    merge_map(current, changes, message)?;
                }
            }
            (false, None) => {
                let mut fresh = Map::new();
                merge_map(&mut fresh, changes, message)?;
                original.push(Value::Object(fresh));
            }
        }
    }
    Ok(())
}

/// Marks the properties of `schemas` (OpenAPI definitions by name, `io.k8s.api.…`) that
/// have a strategy with `x-kubernetes-patch-strategy` and `-merge-key`, as
/// kube-apiserver's documents do: kubectl computes its patches from them.
pub(crate) fn mark_strategies(schemas: &mut Map<String, Value>) {
    for ((message, field), strategy) in STRATEGIES.iter() {
        let name = format!("io.k8s.{}", message.trim_start_matches("k8s.io."));
        let Some(property) = schemas
            .get_mut(&name)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        property.insert(
            "x-kubernetes-patch-strategy".into(),
            Value::from(strategy.tag.clone()),
        );
        if let Some(key) = &strategy.key {
            property.insert(
                "x-kubernetes-patch-merge-key".into(),
                Value::from(key.clone()),
            );
        }
    }
}

/// Puts the items `order` names in its order, in the places those items hold; items it
/// does not name (the server's own) stay where they are.
fn reorder(items: &mut [Value], order: &[Value], key: Option<&str>) {
    let rank = |item: &Value| {
        order.iter().position(|o| match key {
            Some(key) => o.get(key).is_some() && o.get(key) == item.get(key),
            None => o == item,
        })
    };
    let places: Vec<usize> = (0..items.len())
        .filter(|&i| rank(&items[i]).is_some())
        .collect();
    let mut ranked: Vec<Value> = places.iter().map(|&i| items[i].clone()).collect();
    ranked.sort_by_key(|item| rank(item));
    for (place, item) in places.into_iter().zip(ranked) {
        items[place] = item;
    }
}

/// The strategy of field `name` of `message`, if it has one.
fn strategy_of<'a>(message: &MessageDescriptor, name: &str) -> Option<&'a Strategy> {
    STRATEGIES.get(&(message.full_name().to_string(), name.to_string()))
}

/// The message a field holds (its items' for a list), if it holds one.
fn held_message(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        FieldKind::Message(message) if !field.is_map() => Some(message),
        _ => None,
    }
}

fn is_delete(value: &Value) -> bool {
    value.as_object().is_some_and(is_delete_map)
}

fn is_delete_map(map: &Map<String, Value>) -> bool {
    map.get(PATCH).and_then(Value::as_str) == Some("delete")
}

/// A value without directives, for where nothing is there to merge it with.
fn stripped(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| !key.starts_with('$'))
                .map(|(key, value)| (key, stripped(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|item| !is_delete(item))
                .map(stripped)
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(object: Value, patch: Value) -> Value {
        let deployment = crate::protobuf::Kind::new("apps", "v1", "Deployment");
        let message = crate::protobuf::message_of(deployment).unwrap();
        let mut object = object;
        apply(&mut object, patch, &message).unwrap();
        object
    }

    fn deployment(containers: Value) -> Value {
        json!({"metadata": {"name": "web", "finalizers": ["a"]},
               "spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn containers_merge_by_name_and_keep_what_the_patch_leaves_out() {
        let object = deployment(json!([
            {"name": "web", "image": "web:1", "ports": [{"containerPort": 80}]},
            {"name": "sidecar", "image": "proxy:1"},
        ]));
        // What `kubectl set image deployment/web web=web:2` sends.
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "web:2"}]}}}});
        let containers = &patched(object, patch)["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers,
            &json!([
                {"name": "web", "image": "web:2", "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "proxy:1"},
            ])
        );
    }

    #[test]
    fn kubectl_apply_s_directives_delete_order_and_replace() {
        let object = deployment(json!([
            {"name": "web", "image": "web:1"},
            {"name": "old", "image": "old:1"},
        ]));
        // What `kubectl apply` sends when a container was renamed in the manifest.
        let patch = json!({
        "metadata": {"finalizers": ["b"]},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "new"}, {"name": "web"}],
            "containers": [{"name": "new", "image": "new:1"}, {"$patch": "delete", "name": "old"}],
        }}}});
        let object = patched(object, patch);
        assert_eq!(
            object["spec"]["template"]["spec"]["containers"],
            json!([{"name": "new", "image": "new:1"}, {"name": "web", "image": "web:1"}])
        );
        assert_eq!(object["metadata"]["finalizers"], json!(["a", "b"]));
        let replace = json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "only", "image": "only:1"}]}}}});
        let object = patched(object, replace);
        assert_eq!(
            object["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "only:1"}])
        );
    }

    #[test]
    fn retain_keys_and_deletions_from_primitive_lists() {
        let object = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"strategy": {
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let object = patched(object, patch);
        assert_eq!(object["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(object["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn maps_merge_their_entries_and_null_removes_one() {
        let object = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let patch = json!({"metadata": {"labels": {"tier": null, "track": "stable"}}});
        assert_eq!(
            patched(object, patch)["metadata"]["labels"],
            json!({"app": "web", "track": "stable"})
        );
    }
}

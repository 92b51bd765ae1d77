//! Status writes the controllers share.

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Writes `wanted` as the status of the object `name` by a merge patch. A merge patch
/// keeps the map entries it does not name, so the entries of the maps named in `maps`
/// that `current` has and `wanted` lacks are named null.
pub(crate) async fn merge_status<K>(
    api: &Api<K>,
    name: &str,
    (current, mut wanted): (&Value, Value),
    maps: &[&str],
) -> Result<(), kube::Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    for map in maps {
        for (key, _) in current[*map].as_object().into_iter().flatten() {
            if wanted[*map].get(key).is_none() {
                wanted[*map][key] = Value::Null;
            }
        }
    }
    let patch = json!({"status": wanted});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

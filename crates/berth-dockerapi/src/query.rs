//! Query strings as Docker clients send them: keys may repeat (`changes`, `names`), and a
//! repository and tag may come whole or split.

use berth_image::Reference;

use crate::ApiError;

/// A request's query, as its key-value pairs in order.
pub(crate) struct QueryPairs(Vec<(String, String)>);

impl QueryPairs {
    /// The pairs of `raw`; a query that cannot be read has none.
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(serde_urlencoded::from_str(raw.unwrap_or_default()).unwrap_or_default())
    }

    /// The first non-empty value of `key`.
    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every key and value, in order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value of `key`, in order.
    pub(crate) fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The tag `repo` and `tag` name, if any: the CLI sends `repo=name:tag` whole, other
    /// clients split it.
    pub(crate) fn tags(&self) -> Result<Vec<Reference>, ApiError> {
        let Some(repo) = self.first("repo") else {
            return Ok(Vec::new());
        };
        let reference = match self.first("tag") {
            Some(tag) => Reference::parse(&format!("{repo}:{tag}"))?,
            None => Reference::parse(repo)?,
        };
        Ok(vec![reference])
    }
}

/// Docker's `filters` query parameter: `{"key": ["value", …]}` or the older
/// `{"key": {"value": true}}`, as key → values.
/// Whether labels (looked up by `label`) pass every value of a `label` filter (`KEY` or
/// `KEY=VALUE`): Docker requires them all, for containers and events alike.
pub(crate) fn labels_match<'a>(values: &[String], label: impl Fn(&str) -> Option<&'a str>) -> bool {
    values.iter().all(|wanted| match wanted.split_once('=') {
        Some((key, value)) => label(key) == Some(value),
        None => label(wanted).is_some(),
    })
}

pub(crate) fn filters(
    text: Option<&str>,
) -> Result<std::collections::HashMap<String, Vec<String>>, crate::ApiError> {
    let mut filters = std::collections::HashMap::new();
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(filters);
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| crate::ApiError::bad_request(format!("invalid filters {text:?}: {e}")))?;
    for (key, values) in value.as_object().into_iter().flatten() {
        let list: Vec<String> = match values {
            serde_json::Value::Array(list) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        filters.insert(key.clone(), list);
    }
    Ok(filters)
}

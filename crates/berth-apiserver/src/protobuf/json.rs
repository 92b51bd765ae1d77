//! Protobuf messages as the JSON kube-apiserver would have read from a JSON client.
//!
//! Fields are named as the `.proto` files name them (Kubernetes' JSON names). A Go
//! client writes every non-pointer field, set or not, and Go's JSON leaves empty strings
//! out (`omitempty`), so an empty string or byte string is a field left out — the
//! server's defaults then apply as they would to JSON. Zero numbers and `false` are kept:
//! on a pointer field (`replicas: 0`) they mean something, and where they do not they
//! read the same as a field left out — but for an object's `metadata.generation`, which
//! clients see: zero is left out there, as Go's JSON leaves it out. Kubernetes' own types have their JSON forms:
//! Time and MicroTime are RFC 3339 strings (null when zero), Quantity a string,
//! IntOrString a number or a string, RawExtension and FieldsV1 the JSON they carry;
//! byte strings are base64 (Secret data).

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value as Field};
use serde_json::{Map, Value, json};

const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
const OBJECT_META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The first second of the year 10000, past which RFC 3339 has no four-digit year.
const YEAR_10000: u64 = 253_402_300_800;

/// What is wrong with a message, and at which field: `spec.containers[0].ports`.
#[derive(Debug)]
pub(super) struct Problem {
    at: String,
    what: String,
}

impl Problem {
    fn new(what: impl Into<String>) -> Self {
        Self {
            at: String::new(),
            what: what.into(),
        }
    }

    /// The problem seen from the field or item `step` that holds it.
    fn within(mut self, step: &str) -> Self {
        self.at = match self.at.as_str() {
            "" => step.to_string(),
            at if at.starts_with('[') => format!("{step}{at}"),
            at => format!("{step}.{at}"),
        };
        self
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at.as_str() {
            "" => f.write_str(&self.what),
            at => write!(f, "{at}: {}", self.what),
        }
    }
}

/// The JSON form of `message`.
pub(super) fn message(message: &DynamicMessage) -> Result<Value, Problem> {
    match message.descriptor().full_name() {
        TIME => time(message, false),
        MICRO_TIME => time(message, true),
        QUANTITY => Ok(quantity(message)),
        INT_OR_STRING => int_or_string(message),
        RAW_EXTENSION | FIELDS_V1 => embedded_json(message),
        _ => object(message),
    }
}

/// An ordinary message: its fields set, by name, empty strings left out.
fn object(message: &DynamicMessage) -> Result<Value, Problem> {
    let mut object = Map::new();
    let metadata = message.descriptor().full_name() == OBJECT_META;
    for (field, value) in message.fields() {
        let left_out = match value {
            Field::String(text) => text.is_empty(),
            Field::Bytes(bytes) => bytes.is_empty(),
            Field::I64(0) => metadata && field.name() == "generation",
            _ => false,
        };
        let value = self::value(value).map_err(|p| p.within(field.name()))?;
        if !left_out && !value.is_null() {
            object.insert(field.name().to_string(), value);
        }
    }
    Ok(Value::Object(object))
}

fn value(value: &Field) -> Result<Value, Problem> {
    Ok(match value {
        Field::Bool(b) => json!(b),
        Field::I32(n) => json!(n),
        Field::I64(n) => json!(n),
        Field::U32(n) => json!(n),
        Field::U64(n) => json!(n),
        Field::F32(n) => json!(n),
        Field::F64(n) => json!(n),
        Field::EnumNumber(n) => json!(n),
        Field::String(text) => json!(text),
        Field::Bytes(bytes) => json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        Field::Message(inner) => message(inner)?,
        Field::List(items) => {
            let items = items
                .iter()
                .enumerate()
                .map(|(i, item)| self::value(item).map_err(|p| p.within(&format!("[{i}]"))));
            Value::Array(items.collect::<Result<_, _>>()?)
        }
        Field::Map(entries) => {
            let mut object = Map::new();
            for (key, item) in entries {
                let key = map_key(key);
                let item = self::value(item).map_err(|p| p.within(&key))?;
                object.insert(key, item);
            }
            Value::Object(object)
        }
    })
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::String(text) => text.clone(),
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
    }
}

/// Field `number` of one of Kubernetes' own types, whose numbers are their wire format.
fn field(message: &DynamicMessage, number: u32) -> Cow<'_, Field> {
    message
        .get_field_by_number(number)
        .unwrap_or(Cow::Owned(Field::I64(0)))
}

/// A Time (seconds only, as Go reads it) or MicroTime: null when zero (sent empty).
fn time(message: &DynamicMessage, micros: bool) -> Result<Value, Problem> {
    if message.fields().next().is_none() {
        return Ok(Value::Null);
    }
    let seconds = field(message, 1).as_i64().unwrap_or_default();
    let nanos = if micros {
        field(message, 2).as_i32().unwrap_or_default()
    } else {
        0
    };
    let at = u64::try_from(seconds)
        .ok()
        .filter(|s| *s < YEAR_10000)
        .zip(u32::try_from(nanos).ok().filter(|n| *n < 1_000_000_000))
        .map(|(s, n)| UNIX_EPOCH + Duration::new(s, n))
        .ok_or_else(|| {
            Problem::new(format!(
                "{seconds} seconds and {nanos} nanoseconds is not a time between the years 1970 and 9999"
            ))
        })?;
    Ok(json!(if micros {
        humantime::format_rfc3339_micros(at).to_string()
    } else {
        humantime::format_rfc3339_seconds(at).to_string()
    }))
}

/// A Quantity's string; an empty one is zero.
fn quantity(message: &DynamicMessage) -> Value {
    match field(message, 1).as_str() {
        Some(text) if !text.is_empty() => json!(text),
        _ => json!("0"),
    }
}

/// An IntOrString: its number when its type is 0, its string when 1.
fn int_or_string(message: &DynamicMessage) -> Result<Value, Problem> {
    match field(message, 1).as_i64().unwrap_or_default() {
        0 => Ok(json!(field(message, 2).as_i32().unwrap_or_default())),
        1 => Ok(json!(field(message, 3).as_str().unwrap_or_default())),
        other => Err(Problem::new(format!(
            "an IntOrString's type is 0 (int) or 1 (string), not {other}"
        ))),
    }
}

/// The JSON a RawExtension or FieldsV1 carries: null when empty.
fn embedded_json(message: &DynamicMessage) -> Result<Value, Problem> {
    let raw = field(message, 1);
    match raw.as_bytes() {
        Some(bytes) if !bytes.is_empty() => serde_json::from_slice(bytes)
            .map_err(|e| Problem::new(format!("the embedded object is not JSON: {e}"))),
        _ => Ok(Value::Null),
    }
}

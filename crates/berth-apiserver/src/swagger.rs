//! `/openapi/v2` in protobuf, as client-go's discovery asks for it
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and kubectl, Helm
//! and Argo CD's diffing read it: the Swagger 2.0 document in gnostic's `openapi.v2`
//! messages. Only what the document holds is declared here — paths with their
//! operations, and definitions with the schema keywords Kubernetes' schemas use; the
//! field numbers are gnostic's (`openapiv2/OpenAPIv2.proto`). Vendor extensions,
//! defaults and enum values travel as YAML text, as gnostic carries them (their JSON,
//! which YAML reads).

use prost::Message;
use serde_json::Value;

/// The media type the answer is sent as (clients ask for `…spec.v2@v1.0+protobuf`,
/// which Go's media-type parser would not read back).
pub(crate) const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

#[derive(Clone, PartialEq, Message)]
struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<NamedSchemas>,
}

#[derive(Clone, PartialEq, Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

#[derive(Clone, PartialEq, Message)]
struct PathItem {
    #[prost(message, optional, tag = "2")]
    get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
}

#[derive(Clone, PartialEq, Message)]
struct Operation {
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(string, repeated, tag = "6")]
    produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    responses: Option<Responses>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

/// gnostic's `ParametersItem` (a oneof: a parameter, here), its `Parameter` (a
/// non-body one) and `NonBodyParameter` (a query parameter), each a message of one
/// present field.
#[derive(Clone, PartialEq, Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
}

#[derive(Clone, PartialEq, Message)]
struct Parameter {
    #[prost(message, optional, tag = "2")]
    non_body_parameter: Option<NonBodyParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    query_parameter_sub_schema: Option<QueryParameter>,
}

#[derive(Clone, PartialEq, Message)]
struct QueryParameter {
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "6")]
    r#type: String,
}

#[derive(Clone, PartialEq, Message)]
struct Responses {
    #[prost(message, repeated, tag = "1")]
    response_code: Vec<NamedResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedResponseValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<ResponseValue>,
}

#[derive(Clone, PartialEq, Message)]
struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    response: Option<Response>,
}

#[derive(Clone, PartialEq, Message)]
struct Response {
    #[prost(string, tag = "1")]
    description: String,
}

#[derive(Clone, PartialEq, Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

/// gnostic's `Definitions` and `Properties`: named schemas, in order.
#[derive(Clone, PartialEq, Message)]
struct NamedSchemas {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

#[derive(Clone, PartialEq, Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

#[derive(Clone, PartialEq, Message)]
struct Schema {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "3")]
    title: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(message, optional, tag = "5")]
    default: Option<Any>,
    #[prost(double, tag = "6")]
    multiple_of: f64,
    #[prost(double, tag = "7")]
    maximum: f64,
    #[prost(bool, tag = "8")]
    exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    minimum: f64,
    #[prost(bool, tag = "10")]
    exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    max_length: i64,
    #[prost(int64, tag = "12")]
    min_length: i64,
    #[prost(string, tag = "13")]
    pattern: String,
    #[prost(int64, tag = "14")]
    max_items: i64,
    #[prost(int64, tag = "15")]
    min_items: i64,
    #[prost(bool, tag = "16")]
    unique_items: bool,
    #[prost(int64, tag = "17")]
    max_properties: i64,
    #[prost(int64, tag = "18")]
    min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, optional, tag = "21")]
    additional_properties: Option<AdditionalProperties>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<Strings>,
    #[prost(message, optional, tag = "23")]
    items: Option<Items>,
    #[prost(message, repeated, tag = "24")]
    all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    properties: Option<NamedSchemas>,
    #[prost(bool, tag = "27")]
    read_only: bool,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

/// gnostic's `AdditionalPropertiesItem`: a oneof of a schema or a boolean.
#[derive(Clone, PartialEq, Message)]
struct AdditionalProperties {
    #[prost(message, optional, boxed, tag = "1")]
    schema: Option<Box<Schema>>,
    #[prost(bool, optional, tag = "2")]
    boolean: Option<bool>,
}

/// gnostic's `TypeItem`.
#[derive(Clone, PartialEq, Message)]
struct Strings {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

/// gnostic's `ItemsItem`.
#[derive(Clone, PartialEq, Message)]
struct Items {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

/// The Swagger 2.0 document `document` encoded as gnostic's `openapi.v2.Document`.
pub(crate) fn encode(document: &Value) -> Vec<u8> {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    let paths = document["paths"].as_object().into_iter().flatten();
    let document = Document {
        swagger: text(&document["swagger"]),
        info: Some(Info {
            title: text(&document["info"]["title"]),
            version: text(&document["info"]["version"]),
        }),
        paths: Some(Paths {
            path: paths
                .map(|(name, item)| NamedPathItem {
                    name: name.clone(),
                    value: Some(path_item(item)),
                })
                .collect(),
        }),
        definitions: Some(named_schemas(&document["definitions"])),
    };
    document.encode_to_vec()
}

fn path_item(item: &Value) -> PathItem {
    let operation = |method: &str| item.get(method).map(operation);
    PathItem {
        get: operation("get"),
        put: operation("put"),
        post: operation("post"),
        delete: operation("delete"),
        patch: operation("patch"),
    }
}

fn operation(operation: &Value) -> Operation {
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let parameters = operation["parameters"].as_array().into_iter().flatten();
    let responses = operation["responses"].as_object().into_iter().flatten();
    Operation {
        operation_id: operation["operationId"].as_str().unwrap_or_default().into(),
        produces: strings(&operation["produces"]),
        consumes: strings(&operation["consumes"]),
        parameters: parameters
            .map(|parameter| ParametersItem {
                parameter: Some(Parameter {
                    non_body_parameter: Some(NonBodyParameter {
                        query_parameter_sub_schema: Some(QueryParameter {
                            r#in: parameter["in"].as_str().unwrap_or_default().into(),
                            name: parameter["name"].as_str().unwrap_or_default().into(),
                            r#type: "string".into(),
                        }),
                    }),
                }),
            })
            .collect(),
        responses: Some(Responses {
            response_code: responses
                .map(|(code, response)| NamedResponseValue {
                    name: code.clone(),
                    value: Some(ResponseValue {
                        response: Some(Response {
                            description: response["description"]
                                .as_str()
                                .unwrap_or_default()
                                .into(),
                        }),
                    }),
                })
                .collect(),
        }),
        vendor_extension: extensions(operation),
    }
}

fn named_schemas(schemas: &Value) -> NamedSchemas {
    NamedSchemas {
        additional_properties: schemas
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, value)| NamedSchema {
                name: name.clone(),
                value: Some(schema(value)),
            })
            .collect(),
    }
}

/// A JSON value as gnostic's `Any` carries it: as YAML, which its JSON text is.
fn any(value: &Value) -> Any {
    Any {
        yaml: format!("{value}\n"),
    }
}

/// The `x-` keys of an object, as gnostic's vendor extensions.
fn extensions(object: &Value) -> Vec<NamedAny> {
    object
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.starts_with("x-"))
        .map(|(key, value)| NamedAny {
            name: key.clone(),
            value: Some(any(value)),
        })
        .collect()
}

/// A schema; a field that is another definition, which the generator writes as an
/// `allOf` of one reference (OpenAPI v3's way to describe it), as a reference beside
/// its description — Swagger 2.0's way, and what kube-openapi's readers follow.
fn schema(json: &Value) -> Schema {
    let all_of = json["allOf"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if let [only] = all_of
        && let Some(reference) = only["$ref"].as_str()
    {
        let mut inlined = json.clone();
        inlined["$ref"] = Value::from(reference);
        if let Some(fields) = inlined.as_object_mut() {
            fields.remove("allOf");
        }
        return schema(&inlined);
    }
    let text = |key: &str| json[key].as_str().unwrap_or_default().to_string();
    let number = |key: &str| json[key].as_f64().unwrap_or_default();
    let count = |key: &str| json[key].as_i64().unwrap_or_default();
    let flag = |key: &str| json[key].as_bool().unwrap_or_default();
    let types = match &json["type"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let items = match &json["items"] {
        Value::Array(many) => Some(many.iter().map(schema).collect()),
        Value::Object(_) => Some(vec![schema(&json["items"])]),
        _ => None,
    };
    let additional_properties = match &json["additionalProperties"] {
        Value::Bool(allowed) => Some(AdditionalProperties {
            schema: None,
            boolean: Some(*allowed),
        }),
        Value::Object(_) => Some(AdditionalProperties {
            schema: Some(Box::new(schema(&json["additionalProperties"]))),
            boolean: None,
        }),
        _ => None,
    };
    Schema {
        r#ref: text("$ref"),
        format: text("format"),
        title: text("title"),
        description: text("description"),
        default: json.get("default").map(any),
        multiple_of: number("multipleOf"),
        maximum: number("maximum"),
        exclusive_maximum: flag("exclusiveMaximum"),
        minimum: number("minimum"),
        exclusive_minimum: flag("exclusiveMinimum"),
        max_length: count("maxLength"),
        min_length: count("minLength"),
        pattern: text("pattern"),
        max_items: count("maxItems"),
        min_items: count("minItems"),
        unique_items: flag("uniqueItems"),
        max_properties: count("maxProperties"),
        min_properties: count("minProperties"),
        required: json["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect(),
        r#enum: json["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .map(any)
            .collect(),
        additional_properties,
        r#type: (!types.is_empty()).then_some(Strings { value: types }),
        items: items.map(|schema| Items { schema }),
        all_of: json["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(schema)
            .collect(),
        properties: json
            .get("properties")
            .map(named_schemas)
            .filter(|p| !p.additional_properties.is_empty()),
        read_only: flag("readOnly"),
        vendor_extension: extensions(json),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_document_reads_back_with_its_schemas_and_extensions() {
        let document = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33"},
            "paths": {"/api/v1/namespaces/{namespace}/pods/{name}": {"patch": {
                "operationId": "patchPod",
                "consumes": ["application/strategic-merge-patch+json"],
                "parameters": [{"name": "fieldValidation", "in": "query"}],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"},
            }}},
            "definitions": {"io.k8s.api.core.v1.PodSpec": {
                "type": "object",
                "required": ["containers"],
                "properties": {"containers": {
                    "type": "array",
                    "items": {"$ref": "#/definitions/io.k8s.api.core.v1.Container"},
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge",
                }},
            }},
        });
        let decoded = Document::decode(encode(&document).as_slice()).unwrap();
        assert_eq!(decoded.swagger, "2.0");
        let path = &decoded.paths.unwrap().path[0];
        let patch = path.value.as_ref().unwrap().patch.as_ref().unwrap();
        assert_eq!(patch.consumes, ["application/strategic-merge-patch+json"]);
        assert_eq!(
            patch.vendor_extension[0].value.as_ref().unwrap().yaml,
            "{\"group\":\"\",\"kind\":\"Pod\",\"version\":\"v1\"}\n"
        );
        let definitions = decoded.definitions.unwrap().additional_properties;
        let spec = definitions[0].value.as_ref().unwrap();
        assert_eq!(spec.required, ["containers"]);
        let containers = spec.properties.as_ref().unwrap().additional_properties[0]
            .value
            .as_ref()
            .unwrap();
        assert_eq!(
            containers.items.as_ref().unwrap().schema[0].r#ref,
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        let extensions: Vec<&str> = containers
            .vendor_extension
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            extensions,
            [
                "x-kubernetes-patch-merge-key",
                "x-kubernetes-patch-strategy"
            ]
        );
    }
}

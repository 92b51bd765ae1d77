//! Regenerates `proto/`, the Kubernetes messages the server decodes. k8s-pb ships no
//! `.proto` files nor descriptors, but its generated prost code keeps every field's
//! number and type, so the files are written from that code — only the messages the
//! served kinds reach, each field under its Kubernetes JSON name taken from
//! k8s-openapi's schema of the message (prost's snake_case loses acronyms: `podIP` is
//! `pod_ip` there). The test fails when the files differ from what the two crates say
//! now; `BERTH_REGENERATE_PROTOS=1` rewrites them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use syn::{Attribute, Fields, GenericArgument, Item, LitStr, PathArguments, Type};

use super::{
    EVICTION, Kind, SCALE, SELF_SUBJECT_ACCESS_REVIEW, SELF_SUBJECT_REVIEW,
    SELF_SUBJECT_RULES_REVIEW, SUBJECT_ACCESS_REVIEW, TOKEN_REQUEST, TOKEN_REVIEW, UNKNOWN,
};
use crate::kinds::schema_of;
use crate::resources::{BUILT_IN, Definition};

/// One field of a message as a `.proto` file declares it.
struct Field {
    name: String,
    number: u32,
    /// `optional string`, `repeated .k8s.io.api.core.v1.Container`, `map<string, bytes>`.
    declaration: String,
    /// The message it holds, for the walk to the messages reached.
    message: Option<String>,
    /// How strategic merge patches merge it, from the Go field's `+patchStrategy` and
    /// `+patchMergeKey` tags that k8s-pb keeps in its doc comments: `merge name`.
    patch: Option<String>,
}

/// The file beside the `.proto` files that lists the fields strategic merge patches
/// merge rather than replace (crate::strategic reads it).
const PATCH_STRATEGIES: &str = "patch-strategies.txt";

/// The kinds decoded besides the served ones, with their schemas' adders.
type Extra = (Kind<'static>, fn(&mut schemars::SchemaGenerator) -> String);

const EXTRA: [Extra; 8] = [
    (
        SELF_SUBJECT_ACCESS_REVIEW,
        schema_of::<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>,
    ),
    (
        SELF_SUBJECT_RULES_REVIEW,
        schema_of::<k8s_openapi::api::authorization::v1::SelfSubjectRulesReview>,
    ),
    (
        SUBJECT_ACCESS_REVIEW,
        schema_of::<k8s_openapi::api::authorization::v1::SubjectAccessReview>,
    ),
    (
        EVICTION,
        schema_of::<k8s_openapi::api::policy::v1::Eviction>,
    ),
    (
        TOKEN_REVIEW,
        schema_of::<k8s_openapi::api::authentication::v1::TokenReview>,
    ),
    (
        SELF_SUBJECT_REVIEW,
        schema_of::<k8s_openapi::api::authentication::v1::SelfSubjectReview>,
    ),
    (SCALE, schema_of::<k8s_openapi::api::autoscaling::v1::Scale>),
    (
        TOKEN_REQUEST,
        schema_of::<k8s_openapi::api::authentication::v1::TokenRequest>,
    ),
];

#[test]
fn protos_are_current() {
    let root = manifest_dir().join("proto");
    let wanted = generate();
    if std::env::var_os("BERTH_REGENERATE_PROTOS").is_some() {
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in &wanted {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }
    let mut found = BTreeMap::new();
    read_tree(&root, &root, &mut found);
    assert!(
        found == wanted,
        "proto/ is not what k8s-pb and k8s-openapi say now: rerun this test with \
         BERTH_REGENERATE_PROTOS=1 and commit the result"
    );
}

/// Every file under `dir`, by its path under `root`.
fn read_tree(root: &Path, dir: &Path, found: &mut BTreeMap<PathBuf, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_tree(root, &path, found);
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            found.insert(path.strip_prefix(root).unwrap().to_path_buf(), text);
        }
    }
}

/// The `.proto` files, by path: one per package the served kinds reach.
fn generate() -> BTreeMap<PathBuf, String> {
    let (source, version) = k8s_pb_source();
    let definitions = definitions();
    let mut packages: BTreeMap<String, BTreeMap<String, Vec<Field>>> = BTreeMap::new();
    let mut parsed = BTreeMap::new();
    let roots = BUILT_IN.iter().map(|r| r.protobuf_kind());
    let mut todo: Vec<String> = roots
        .chain(EXTRA.iter().map(|(kind, _)| *kind))
        .map(|kind| kind.message_name())
        .chain([UNKNOWN.to_string()])
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let (package, message) = name.rsplit_once('.').unwrap();
        let messages = parsed
            .entry(package.to_string())
            .or_insert_with(|| parse_package(&source, package));
        let fields = messages
            .remove(message)
            .unwrap_or_else(|| panic!("k8s-pb has no message {name}"));
        let fields = name_fields(fields, definitions.get(&definition_name(&name)));
        todo.extend(fields.iter().filter_map(|f| f.message.clone()));
        packages
            .entry(package.to_string())
            .or_default()
            .insert(message.to_string(), fields);
    }
    let mut files: BTreeMap<PathBuf, String> = packages
        .iter()
        .map(|(package, messages)| (file_of(package), proto_file(package, messages, &version)))
        .collect();
    files.insert(
        PATCH_STRATEGIES.into(),
        patch_strategies(&packages, &version),
    );
    files
}

/// The patch strategies file: `MESSAGE FIELD STRATEGY [MERGE-KEY]` per line.
fn patch_strategies(
    packages: &BTreeMap<String, BTreeMap<String, Vec<Field>>>,
    version: &str,
) -> String {
    let mut text = format!(
        "# Generated from k8s-pb {version}'s +patchStrategy and +patchMergeKey tags by\n\
         # berth-apiserver's test protobuf::schema::protos_are_current. Do not edit.\n"
    );
    for (package, messages) in packages {
        for (message, fields) in messages {
            for field in fields {
                if let Some(patch) = &field.patch {
                    text.push_str(&format!("{package}.{message} {} {patch}\n", field.name));
                }
            }
        }
    }
    text
}

/// A field's patch strategy and merge key from its doc comments, if it has a strategy.
fn patch_tags(attributes: &[Attribute]) -> Option<String> {
    let tag = |name: &str| {
        attributes.iter().find_map(|a| {
            let syn::Meta::NameValue(doc) = &a.meta else {
                return None;
            };
            let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(text),
                ..
            }) = &doc.value
            else {
                return None;
            };
            let text = text.value();
            let value = text.trim().strip_prefix(&format!("+{name}="))?;
            Some(value.trim().to_string())
        })
    };
    let strategy = tag("patchStrategy")?;
    Some(match tag("patchMergeKey") {
        Some(key) => format!("{strategy} {key}"),
        None => strategy,
    })
}

/// The crate's directory, as the test runner says at run time: a test binary reused
/// from a build in another checkout (a shared target directory) must read this one.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// Where k8s-pb's source is, and its version, as cargo resolved it for this workspace.
/// The resolve is filtered to this platform: unfiltered, `cargo metadata` wants every
/// crate of Cargo.lock (Windows-only ones too), which a fresh cargo home that only built
/// for Linux does not hold, and offline it cannot fetch them.
fn k8s_pb_source() -> (PathBuf, String) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let platform = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version=1", "--offline"])
        .args(["--filter-platform", &platform])
        .current_dir(manifest_dir())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "k8s-pb")
        .unwrap();
    let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
    let version = package["version"].as_str().unwrap().to_string();
    (manifest.parent().unwrap().join("src"), version)
}

/// k8s-openapi's schemas of everything the decoded kinds reach, by definition name.
fn definitions() -> serde_json::Map<String, Value> {
    let mut generator = schemars::SchemaGenerator::default();
    for resource in BUILT_IN.iter() {
        if let Definition::BuiltIn { schema, .. } = &resource.definition {
            schema(&mut generator);
        }
    }
    for (_, schema) in EXTRA {
        schema(&mut generator);
    }
    generator.definitions().clone()
}

/// `io.k8s.api.apps.v1.Deployment` for `k8s.io.api.apps.v1.Deployment`.
fn definition_name(message: &str) -> String {
    format!("io.k8s.{}", message.trim_start_matches("k8s.io."))
}

/// `k8s.io/api/apps/v1/generated.proto` for `k8s.io.api.apps.v1`.
fn file_of(package: &str) -> PathBuf {
    let module = package.trim_start_matches("k8s.io.").replace('.', "/");
    PathBuf::from(format!("k8s.io/{module}/generated.proto"))
}

/// The messages of one package in k8s-pb, each with its fields named in snake_case.
fn parse_package(source: &Path, package: &str) -> BTreeMap<String, Vec<Field>> {
    let module: Vec<&str> = package.trim_start_matches("k8s.io.").split('.').collect();
    let path = source.join(module.join("/")).join("mod.rs");
    let text = std::fs::read_to_string(&path).unwrap();
    let file = syn::parse_file(&text).unwrap();
    let mut messages = BTreeMap::new();
    for item in file.items {
        if let Item::Struct(item) = item
            && let Fields::Named(fields) = item.fields
        {
            let fields = fields
                .named
                .iter()
                .filter_map(|f| {
                    let name = f.ident.as_ref()?.to_string();
                    let attribute = f.attrs.iter().find(|a| a.path().is_ident("prost"))?;
                    let mut field = field(&module, name.trim_start_matches("r#"), attribute, &f.ty);
                    field.patch = patch_tags(&f.attrs);
                    Some(field)
                })
                .collect();
            messages.insert(item.ident.to_string(), fields);
        }
    }
    messages
}

/// A field from its `#[prost(...)]` attribute and Rust type, in module `module`.
fn field(module: &[&str], name: &str, attribute: &Attribute, ty: &Type) -> Field {
    let mut words = Vec::new();
    let (mut number, mut map) = (0, None);
    attribute
        .parse_nested_meta(|meta| {
            let word = meta.path.get_ident().unwrap().to_string();
            let value = match meta.input.peek(syn::Token![=]) {
                true => Some(meta.value()?.parse::<LitStr>()?.value()),
                false => None,
            };
            match (word.as_str(), value) {
                ("tag", Some(tag)) => number = tag.parse().unwrap(),
                ("btree_map", Some(types)) => map = Some(types),
                ("packed", _) => {}
                _ => words.push(word),
            }
            Ok(())
        })
        .unwrap();
    let holds_message = words.iter().any(|w| w == "message")
        || map.as_deref().is_some_and(|m| m.ends_with("message"));
    let message = holds_message.then(|| referenced_message(module, ty));
    let declaration = match (map, &message) {
        (Some(types), message) => {
            let (key, value) = types.split_once(", ").unwrap();
            let value = message
                .as_ref()
                .map_or(value.to_string(), |m| format!(".{m}"));
            format!("map<{key}, {value}>")
        }
        (None, message) => {
            let label = if words.iter().any(|w| w == "repeated") {
                "repeated"
            } else {
                "optional"
            };
            let kind = message
                .as_ref()
                .map_or(words[0].clone(), |m| format!(".{m}"));
            format!("{label} {kind}")
        }
    };
    Field {
        name: name.to_string(),
        number,
        declaration,
        message,
        patch: None,
    }
}

/// The full name of the message a field of type `ty` holds: the innermost type of
/// `Option<Box<T>>`, `Vec<T>` or `BTreeMap<String, T>`, resolved from module `module`.
fn referenced_message(module: &[&str], ty: &Type) -> String {
    let Type::Path(path) = ty else {
        panic!("a message field of an unexpected type")
    };
    let last = path.path.segments.last().unwrap();
    if let PathArguments::AngleBracketed(arguments) = &last.arguments {
        let inner = arguments.args.iter().rev().find_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        });
        return referenced_message(module, inner.unwrap());
    }
    let segments: Vec<String> = path
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let supers = segments.iter().take_while(|s| *s == "super").count();
    let mut resolved: Vec<&str> = module[..module.len() - supers].to_vec();
    resolved.extend(segments[supers..].iter().map(String::as_str));
    format!("k8s.io.{}", resolved.join("."))
}

/// The fields under their JSON names: the schema's property of the same letters, or
/// lowerCamelCase where the message has no schema of its own (Time, IntOrString, ...).
fn name_fields(fields: Vec<Field>, definition: Option<&Value>) -> Vec<Field> {
    let properties: Vec<&String> = definition
        .and_then(|d| d["properties"].as_object())
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    let letters = |name: &str| name.replace('_', "").to_lowercase();
    fields
        .into_iter()
        .map(|field| {
            let name = properties
                .iter()
                .find(|p| letters(p) == letters(&field.name))
                .map_or_else(|| lower_camel(&field.name), |p| p.to_string());
            Field { name, ..field }
        })
        .collect()
}

/// `generateName` for `generate_name`.
fn lower_camel(snake: &str) -> String {
    let mut words = snake.split('_');
    let first = words.next().unwrap_or_default().to_string();
    words.fold(first, |mut name, word| {
        let mut letters = word.chars();
        name.extend(letters.next().map(|c| c.to_ascii_uppercase()));
        name.push_str(letters.as_str());
        name
    })
}

/// The text of package `package`'s file.
fn proto_file(package: &str, messages: &BTreeMap<String, Vec<Field>>, version: &str) -> String {
    let imports: BTreeSet<PathBuf> = messages
        .values()
        .flatten()
        .filter_map(|f| f.message.as_deref()?.rsplit_once('.'))
        .filter(|(other, _)| *other != package)
        .map(|(other, _)| file_of(other))
        .collect();
    let mut text = format!(
        "// Generated from k8s-pb {version} with k8s-openapi's JSON names by berth-apiserver's\n\
         // test protobuf::schema::protos_are_current. Do not edit: rerun that test with\n\
         // BERTH_REGENERATE_PROTOS=1.\nsyntax = \"proto2\";\n\npackage {package};\n"
    );
    if !imports.is_empty() {
        text.push('\n');
    }
    for import in &imports {
        text.push_str(&format!("import \"{}\";\n", import.display()));
    }
    for (name, fields) in messages {
        text.push_str(&format!("\nmessage {name} {{\n"));
        for f in fields {
            text.push_str(&format!("  {} {} = {};\n", f.declaration, f.name, f.number));
        }
        text.push_str("}\n");
    }
    text
}

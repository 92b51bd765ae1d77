//! CustomResourceDefinitions as operators publish them: a definition with two versions,
//! a structural schema with defaults, enums, bounds and patterns, printer columns, short
//! names, a category and the status subresource, applied with kubectl's default
//! validation and established at once; its objects validated, pruned and defaulted in
//! kube-apiserver's words and printed with its columns; and gone with the definition.

use std::process::Output;
use std::time::Duration;

use crate::server::Server;

/// The CronTab of Kubernetes' CustomResourceDefinition guide, as projects write theirs.
const DEFINITION: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
      description: The cron spec defining the interval a CronJob is run
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Ready
      type: boolean
      jsonPath: .status.ready
    - name: Image
      type: string
      priority: 1
      jsonPath: .spec.image
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            x-kubernetes-validations:
            - rule: "!has(self.image) || self.image.contains(':')"
              message: the image must name its tag
              fieldPath: .image
            - rule: "self.cronSpec == oldSelf.cronSpec"
              message: cronSpec is immutable
              reason: FieldValueForbidden
            - rule: "!has(self.image) || isURL('https://' + self.image)"
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
              policy:
                type: string
                enum: [Allow, Forbid]
                default: Allow
          status:
            type: object
            properties:
              ready:
                type: boolean
              replicas:
                type: integer
              selector:
                type: string
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

const CRONTAB: &str = r#"apiVersion: stable.example.com/v1
kind: CronTab
metadata:
  name: nightly
spec:
  cronSpec: "0 3 * * *"
  image: backup:1
"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

fn refused(output: Output, expected: &str) {
    assert!(!output.status.success(), "{output:?}");
    assert!(stderr(&output).contains(expected), "{}", stderr(&output));
}

#[test]
fn custom_resources_are_served_checked_and_printed_as_their_definition_says_on_sqlite() {
    custom_resources_are_served_checked_and_printed_as_their_definition_says(false);
}

#[test]
fn custom_resources_are_served_checked_and_printed_as_their_definition_says_on_etcd() {
    custom_resources_are_served_checked_and_printed_as_their_definition_says(true);
}

fn custom_resources_are_served_checked_and_printed_as_their_definition_says(on_etcd: bool) {
    let server = Server::start("custom", on_etcd);
    let definition = server.write("crd.yaml", DEFINITION);
    let applied = server.kubectl(&["apply", "-f", &definition]);
    let said = String::from_utf8_lossy(&applied.stdout);
    assert!(
        said.contains(
            "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"
        ),
        "{applied:?}"
    );
    // Its CEL rules all parse here: nothing to warn about.
    assert!(
        !stderr(&applied).contains("Warning"),
        "{}",
        stderr(&applied)
    );
    server.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=10s",
    ]);
    let crontab = server.write("crontab.yaml", CRONTAB);
    let created = server.kubectl(&["apply", "-f", &crontab]);
    // A rule calling a Kubernetes library function this server lacks lets the object
    // through, and says so.
    assert!(
        stderr(&created).contains(
            "Warning: spec: the validation rule \"!has(self.image) || isURL('https://' + self.image)\" was not evaluated"
        ),
        "{}",
        stderr(&created)
    );
    let created = String::from_utf8_lossy(&created.stdout).to_string();
    assert_eq!(created, "crontab.stable.example.com/nightly created\n");

    // Defaults from the schema; the columns the definition names, by short name too.
    let field = |path: &str| {
        server.kubectl_ok(&["get", "ct", "nightly", "-o", &format!("jsonpath={path}")])
    };
    assert_eq!(field("{.spec.replicas} {.spec.policy}"), "1 Allow");
    let table = server.kubectl_ok(&["get", "crontabs"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "READY", "AGE"]);
    // A column whose path finds nothing is an empty cell: no status yet.
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..7], ["nightly", "0", "3", "*", "*", "*", "1"]);
    assert!(
        row.len() == 8 && row[7].ends_with('s'),
        "an age last: {row:?}"
    );
    let wide = server.kubectl_ok(&["get", "ct", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("IMAGE"), "{wide}");
    assert!(wide.contains("backup:1"), "{wide}");
    let all = server.kubectl_ok(&["get", "all"]);
    assert!(all.contains("crontab.stable.example.com/nightly"), "{all}");

    // Only the status subresource writes the status.
    let patch_status = |status: &str| {
        server.kubectl_ok(&[
            "patch",
            "ct",
            "nightly",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ])
    };
    patch_status(r#"{"status":{"ready":true}}"#);
    server.kubectl_ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":3},"status":{"ready":false}}"#,
    ]);
    assert_eq!(field("{.spec.replicas} {.status.ready}"), "3 true");
    let row = server.kubectl_ok(&["get", "ct", "nightly", "--no-headers"]);
    let row: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(row[6..8], ["3", "true"]);

    // The scale subresource reads and writes the paths the definition names, and the
    // schema still holds.
    patch_status(r#"{"status":{"replicas":3,"selector":"app=nightly"}}"#);
    let scaled = server.kubectl_ok(&["scale", "ct", "nightly", "--replicas=5"]);
    assert_eq!(scaled, "crontab.stable.example.com/nightly scaled\n");
    assert_eq!(field("{.spec.replicas}"), "5");
    let scale = server.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=nightly");
    refused(
        server.kubectl(&["scale", "ct", "nightly", "--replicas=11"]),
        "spec.replicas in body should be less than or equal to 10",
    );

    // Every served version reads the same objects.
    let other = server.kubectl_ok(&["get", "crontabs.v1beta1.stable.example.com", "-o", "name"]);
    assert_eq!(other, "crontab.stable.example.com/nightly\n");
    // Each in its own version (conversion: None changes only the apiVersion).
    let version = |args: &[&str]| {
        let mut all = vec!["get", "crontabs.v1beta1.stable.example.com"];
        all.extend(args);
        server.kubectl_ok(&all)
    };
    assert_eq!(
        version(&["nightly", "-o", "jsonpath={.apiVersion}"]),
        "stable.example.com/v1beta1"
    );
    assert_eq!(
        version(&["-o", "jsonpath={.items[*].apiVersion}"]),
        "stable.example.com/v1beta1"
    );

    // Refused in kube-apiserver's words: unknown fields under kubectl's strict
    // validation, then values the schema does not allow.
    let unknown = server.write(
        "unknown.yaml",
        &CRONTAB.replace("image: backup:1", "image: backup:1\n  colour: red"),
    );
    refused(
        server.kubectl(&["apply", "-f", &unknown]),
        r#"unknown field "spec.colour""#,
    );
    let wrong = server.write(
        "wrong.yaml",
        &CRONTAB
            .replace("nightly", "broken")
            .replace("0 3 * * *", "at three")
            .replace("image: backup:1", "replicas: eleven\n  policy: Sometimes"),
    );
    let output = server.kubectl(&["apply", "-f", &wrong]);
    assert!(!output.status.success(), "{output:?}");
    let message = stderr(&output);
    for expected in [
        r#"The CronTab "broken" is invalid"#,
        r#"spec.cronSpec: Invalid value: "at three": spec.cronSpec in body should match"#,
        r#"spec.policy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid""#,
        r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#,
    ] {
        assert!(message.contains(expected), "{message}");
    }

    // The definition's CEL rules, in kube-apiserver's words: a tagless image, and a
    // change of what the transition rule keeps.
    let tagless = server.write(
        "tagless.yaml",
        &CRONTAB
            .replace("nightly", "tagless")
            .replace("backup:1", "backup"),
    );
    refused(
        server.kubectl(&["apply", "-f", &tagless]),
        r#"The CronTab "tagless" is invalid: spec.image: Invalid value: "object": the image must name its tag"#,
    );
    refused(
        server.kubectl(&[
            "patch",
            "ct",
            "nightly",
            "--type=merge",
            "-p",
            r#"{"spec":{"cronSpec":"0 4 * * *"}}"#,
        ]),
        r#"spec: Forbidden: cronSpec is immutable"#,
    );

    // Discovery and OpenAPI know the kind: kubectl explains its fields.
    let explained = server.kubectl_ok(&["explain", "crontab.spec.replicas"]);
    assert!(
        explained.contains("KIND:       CronTab") && explained.contains("replicas"),
        "{explained}"
    );
    let resources = server.kubectl_ok(&["api-resources", "--api-group=stable.example.com"]);
    assert!(
        resources
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["crontabs", "ct", "stable.example.com/v1", "true", "CronTab"]),
        "{resources}"
    );

    // The definition's objects go with it, and its resource with them.
    server.kubectl_ok(&["delete", "crd", "crontabs.stable.example.com"]);
    server.kubectl_until(&["api-resources"], Duration::from_secs(10), |text| {
        !text.contains("crontabs")
    });
    refused(
        server.kubectl(&["get", "crontabs"]),
        r#"the server doesn't have a resource type "crontabs""#,
    );
    server.kubectl_ok(&["apply", "-f", &definition]);
    let after = server.kubectl(&["get", "crontabs", "-A", "-o", "name"]);
    assert!(after.status.success(), "{after:?}");
    assert_eq!(String::from_utf8_lossy(&after.stdout), "");
}

/// A definition of the kind `kind` in tenancy.example.com, whose objects may be anything:
/// custom kinds named as built-in ones (operators publish `Pod`s, `Namespace`s and
/// `Role`s of their own groups) get none of the built-in kind's behaviour.
fn namesake((plural, singular, kind): (&str, &str, &str), scope: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.tenancy.example.com
spec:
  group: tenancy.example.com
  scope: {scope}
  names: {{plural: {plural}, singular: {singular}, kind: {kind}}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"#
    )
}

#[test]
fn custom_kinds_named_as_built_in_ones_behave_as_custom_ones() {
    let server = Server::start("namesakes", false);
    let definitions = [
        namesake(("namespaces", "namespace", "Namespace"), "Cluster"),
        namesake(("pods", "pod", "Pod"), "Namespaced"),
    ];
    let definitions = server.write("namesakes.yaml", &definitions.join("---\n"));
    server.kubectl_ok(&["apply", "-f", &definitions]);
    for name in ["namespaces", "pods"] {
        server.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{name}.tenancy.example.com"),
            "--timeout=10s",
        ]);
    }
    server.kubectl_ok(&["create", "configmap", "kept", "-n", "default"]);
    let tenant = server.write(
        "tenant.yaml",
        "apiVersion: tenancy.example.com/v1\nkind: Namespace\nmetadata: {name: default}\n",
    );
    server.kubectl_ok(&["apply", "-f", &tenant]);
    // Deleting the custom Namespace "default" deletes that object only, not what the
    // real namespace of the same name holds.
    server.kubectl_ok(&["delete", "namespaces.tenancy.example.com", "default"]);
    server.kubectl_ok(&["get", "configmap", "kept", "-n", "default"]);
    // The custom pods have no subresources of the built-in kind's.
    let discovery = server.kubectl_ok(&["get", "--raw", "/apis/tenancy.example.com/v1"]);
    assert!(discovery.contains(r#""name":"pods""#), "{discovery}");
    assert!(!discovery.contains("pods/binding"), "{discovery}");
    assert!(!discovery.contains("pods/log"), "{discovery}");
}

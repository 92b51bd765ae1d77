//! An operator written with kube-rs, as Rust projects write one: a
//! CustomResourceDefinition generated from a Rust type (`kube::CustomResource`, its
//! schema from schemars), installed through the API, and a `kube::runtime::Controller`
//! that reconciles each object by writing its status — watched, patched and printed
//! through `berth server`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::client;
use crate::server::Server;

/// A greeting the operator answers.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "berth.example.com",
    version = "v1",
    kind = "Greeting",
    namespaced,
    status = "GreetingStatus",
    shortname = "greet",
    printcolumn = r#"{"name":"Name To Greet", "type":"string", "jsonPath":".spec.name"}"#,
    printcolumn = r#"{"name":"Reply", "type":"string", "jsonPath":".status.reply"}"#
)]
pub struct GreetingSpec {
    /// Whom to greet.
    name: String,
    /// How many times.
    #[serde(default)]
    times: Option<u32>,
}

/// What the operator answered.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
pub struct GreetingStatus {
    reply: String,
}

/// Why a reconcile failed.
#[derive(Debug)]
enum Failure {
    Api(kube::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Failure::Api(error) = self;
        write!(f, "{error}")
    }
}

impl std::error::Error for Failure {}

/// Writes the reply to a greeting into its status.
async fn reconcile(greeting: Arc<Greeting>, client: Arc<kube::Client>) -> Result<Action, Failure> {
    let api: Api<Greeting> =
        Api::namespaced((*client).clone(), &greeting.namespace().unwrap_or_default());
    let times = greeting.spec.times.unwrap_or(1) as usize;
    let reply = vec![format!("hello, {}", greeting.spec.name); times].join(" ");
    let status = json!({"status": {"reply": reply}});
    api.patch_status(
        &greeting.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&status),
    )
    .await
    .map_err(Failure::Api)?;
    Ok(Action::await_change())
}

fn retry(_: Arc<Greeting>, _: &Failure, _: Arc<kube::Client>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

#[test]
fn a_kube_rs_operator_runs_on_a_definition_made_from_a_rust_type_on_sqlite() {
    a_kube_rs_operator_runs_on_a_definition_made_from_a_rust_type(false);
}

#[test]
fn a_kube_rs_operator_runs_on_a_definition_made_from_a_rust_type_on_etcd() {
    a_kube_rs_operator_runs_on_a_definition_made_from_a_rust_type(true);
}

fn a_kube_rs_operator_runs_on_a_definition_made_from_a_rust_type(on_etcd: bool) {
    let server = Server::start("operator", on_etcd);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = client(&server).await;
        let definitions: Api<CustomResourceDefinition> = Api::all(client.clone());
        definitions
            .create(&PostParams::default(), &Greeting::crd())
            .await
            .unwrap();
        let established = await_condition(
            definitions,
            "greetings.berth.example.com",
            conditions::is_crd_established(),
        );
        tokio::time::timeout(Duration::from_secs(10), established)
            .await
            .unwrap()
            .unwrap();

        let greetings: Api<Greeting> = Api::default_namespaced(client.clone());
        let controller = Controller::new(greetings.clone(), Default::default())
            .run(reconcile, retry, Arc::new(client.clone()))
            .for_each(|_| async {});
        let controller = tokio::spawn(controller);

        let mut greeting = Greeting::new(
            "world",
            GreetingSpec {
                name: "world".into(),
                times: Some(2),
            },
        );
        greeting.meta_mut().labels = Some([("app".to_string(), "demo".to_string())].into());
        greetings
            .create(&PostParams::default(), &greeting)
            .await
            .unwrap();
        let answered = await_condition(greetings.clone(), "world", |g: Option<&Greeting>| {
            g.and_then(|g| g.status.as_ref())
                .is_some_and(|s| !s.reply.is_empty())
        });
        let answered = tokio::time::timeout(Duration::from_secs(20), answered)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(answered.status.unwrap().reply, "hello, world hello, world");

        // A change is seen through the watch and answered again.
        let change = json!({"spec": {"times": 1}});
        greetings
            .patch("world", &PatchParams::default(), &Patch::Merge(&change))
            .await
            .unwrap();
        let again = await_condition(greetings.clone(), "world", |g: Option<&Greeting>| {
            g.and_then(|g| g.status.as_ref())
                .is_some_and(|s| s.reply == "hello, world")
        });
        tokio::time::timeout(Duration::from_secs(20), again)
            .await
            .unwrap()
            .unwrap();
        controller.abort();
    });

    let table = server.kubectl_ok(&["get", "greet"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "NAME", "TO", "GREET", "REPLY"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["world", "world", "hello,", "world"]);
}

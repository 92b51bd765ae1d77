//! `?watch=true`: a resource's changes as a stream of JSON lines `{"type", "object"}`,
//! as kube-apiserver sends them — from a resourceVersion, or after the current objects
//! as ADDED; BOOKMARK events carrying the revision reached when the client allows them
//! (and the one that ends the initial events of `sendInitialEvents`); an ERROR event
//! with a 410 Status when the revision asked for was compacted away; the end of the
//! stream after `timeoutSeconds`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc::Sender;

use crate::Shared;
use crate::objects;
use crate::resources::{Place, Resource};
use crate::status::Status;

/// How often a watch that allows bookmarks is told the revision it has reached.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// What a watch asks for, from its query.
struct WatchOptions {
    from: i64,
    initial_events: bool,
    bookmarks: bool,
    timeout: Option<Duration>,
    as_table: bool,
}

impl WatchOptions {
    fn from_query(query: &HashMap<String, String>, as_table: bool) -> Self {
        let flag = |key: &str| matches!(query.get(key).map(String::as_str), Some("true" | "1"));
        let from = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Self {
            from,
            // Without a resourceVersion a watch starts with the current objects.
            initial_events: flag("sendInitialEvents") || from == 0,
            bookmarks: flag("allowWatchBookmarks"),
            timeout: query
                .get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .map(Duration::from_secs),
            as_table,
        }
    }
}

/// Starts the watch of `place` and answers with its stream.
pub(crate) async fn watch(
    shared: Arc<Shared>,
    place: Place,
    query: HashMap<String, String>,
    as_table: bool,
) -> Result<Response, Status> {
    let options = WatchOptions::from_query(&query, as_table);
    let wanted = crate::resources::selected(&query)?;
    let resource = place.resource;
    let prefix = place.prefix();
    let mut initial = Vec::new();
    let mut after = options.from;
    if options.initial_events {
        let listed = shared
            .store
            .list(&prefix, "", 0, 0)
            .await
            .map_err(|e| Status::from_store(e, resource.plural, ""))?;
        initial = listed
            .items
            .iter()
            .filter_map(objects::from_stored)
            .filter(|o| wanted(o))
            .collect();
        after = after.max(listed.revision);
    }
    let changes = shared.store.watch(&prefix, after).await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let stream = Stream {
        resource,
        sender,
        options,
        revision: after,
    };
    tokio::spawn(stream.run(initial, changes, wanted));
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Ok((
        [("content-type", "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// One client's watch: what it asked for and where it has got to.
struct Stream {
    resource: &'static Resource,
    sender: Sender<Result<Bytes, std::io::Error>>,
    options: WatchOptions,
    /// The revision of the last event sent.
    revision: i64,
}

impl Stream {
    async fn run(
        mut self,
        initial: Vec<Value>,
        changes: berth_store::Result<berth_store::Watch>,
        wanted: impl Fn(&Value) -> bool,
    ) {
        let deadline = self
            .options
            .timeout
            .map(|t| tokio::time::Instant::now() + t);
        for object in initial {
            if !self.send("ADDED", object).await {
                return;
            }
        }
        if self.options.initial_events && self.options.bookmarks {
            let end = json!({"k8s.io/initial-events-end": "true"});
            if !self.bookmark(Some(end)).await {
                return;
            }
        }
        let mut changes = match changes {
            Ok(changes) => changes,
            Err(error) => return self.fail(error).await,
        };
        let mut ticks = tokio::time::interval(BOOKMARK_INTERVAL);
        ticks.tick().await;
        loop {
            let timeout = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let change = tokio::select! {
                change = changes.recv() => change,
                _ = ticks.tick(), if self.options.bookmarks => {
                    if !self.bookmark(None).await {
                        return;
                    }
                    continue;
                }
                () = timeout => return,
            };
            let change = match change {
                Some(Ok(change)) => change,
                Some(Err(error)) => return self.fail(error).await,
                None => return,
            };
            let revision = change.revision();
            let event = match change {
                berth_store::Event::Put { kv, prev } => objects::from_stored(&kv)
                    .map(|o| (if prev.is_some() { "MODIFIED" } else { "ADDED" }, o)),
                berth_store::Event::Delete { mut prev, revision } => {
                    prev.mod_revision = revision;
                    objects::from_stored(&prev).map(|o| ("DELETED", o))
                }
            };
            self.revision = revision;
            if let Some((kind, object)) = event.filter(|(_, object)| wanted(object))
                && !self.send(kind, object).await
            {
                return;
            }
        }
    }

    /// Sends one event; false once the client has gone.
    async fn send(&mut self, kind: &str, object: Value) -> bool {
        if let Some(revision) = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
        {
            self.revision = self.revision.max(revision);
        }
        // kubectl get -w asks for each object as a one-row Table.
        let object = if self.options.as_table && kind != "BOOKMARK" && kind != "ERROR" {
            objects::table(self.resource, &[object], self.revision)
        } else {
            object
        };
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        self.sender.send(Ok(Bytes::from(line))).await.is_ok()
    }

    /// A BOOKMARK: the revision the watch has reached, and nothing else of the object.
    async fn bookmark(&mut self, annotations: Option<Value>) -> bool {
        let mut metadata = json!({"resourceVersion": self.revision.to_string()});
        if let Some(annotations) = annotations {
            metadata["annotations"] = annotations;
        }
        let object = json!({
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version(),
            "metadata": metadata,
        });
        self.send("BOOKMARK", object).await
    }

    /// Ends the watch with an ERROR event: 410 Expired when the revision asked for is
    /// gone, so the client lists again.
    async fn fail(mut self, error: berth_store::Error) {
        let status = match &error {
            berth_store::Error::Compacted { compacted, .. } => json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "Expired", "code": 410,
                "message": format!("too old resource version: {} ({compacted})", self.options.from),
            }),
            _ => json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "InternalError", "code": 500,
                "message": error.to_string(),
            }),
        };
        self.send("ERROR", status).await;
    }
}

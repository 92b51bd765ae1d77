//! The `kubernetes` Service's endpoints: the API servers that are alive, as
//! kube-apiserver's lease endpoint reconciler keeps them. Every server renews a lease
//! of its own under `/registry/masterleases/<ip>` every few seconds and sets the
//! Endpoints and EndpointSlice to the addresses whose leases are fresh, so in-cluster
//! clients stop being sent to a server that died within [`LEASE_TTL`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Shared;

/// Where each server's lease lives (kube-apiserver's prefix).
const LEASES: &str = "/registry/masterleases/";

/// How often a server renews its lease and reconciles the endpoints.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A lease not renewed for this long is a dead server's (kube-apiserver's TTL).
const LEASE_TTL: Duration = Duration::from_secs(15);

/// What a server's lease holds: when it was last renewed.
#[derive(Debug, Serialize, Deserialize)]
struct ServerLease {
    /// Seconds since the Unix epoch.
    renewed: u64,
}

/// Renews this server's lease and keeps the endpoints to the live servers, until the
/// process ends.
pub(crate) async fn keep(shared: Arc<Shared>) {
    let address: std::net::SocketAddr = match crate::reachable(shared.bind).parse() {
        Ok(address) => address,
        Err(error) => {
            tracing::warn!(%error, "the server's address: not in the kubernetes Service");
            return;
        }
    };
    loop {
        if let Err(error) = reconcile(&shared, address).await {
            tracing::warn!(%error, "could not keep the kubernetes Service's endpoints");
        }
        tokio::time::sleep(RENEW_EVERY).await;
    }
}

/// One round: renew, collect the live servers (dropping the leases of dead ones), and
/// write the endpoints if they differ.
async fn reconcile(shared: &Shared, address: std::net::SocketAddr) -> Result<(), String> {
    let own = address.ip().to_string();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    renew(shared, &own, now).await?;
    let store = shared.store.as_ref();
    let leases = store
        .list(LEASES, "", 0, 0)
        .await
        .map_err(|e| e.to_string())?;
    let mut live = BTreeSet::from([own]);
    for lease in leases.items {
        let ip = lease.key.trim_start_matches(LEASES).to_string();
        let renewed = serde_json::from_slice::<ServerLease>(&lease.value).map_or(0, |l| l.renewed);
        if now.saturating_sub(renewed) <= LEASE_TTL.as_secs() {
            live.insert(ip);
        } else {
            tracing::info!(
                server = ip,
                "an API server's lease expired: out of the kubernetes Service"
            );
            // Compared with the revision read, so a renewal in between wins.
            let _ = store.delete(&lease.key, lease.mod_revision).await;
        }
    }
    publish(shared, address.port(), &live).await
}

/// Writes this server's lease, renewed at `now`.
async fn renew(shared: &Shared, own: &str, now: u64) -> Result<(), String> {
    let key = format!("{LEASES}{own}");
    let value = serde_json::to_vec(&ServerLease { renewed: now }).map_err(|e| e.to_string())?;
    let store = shared.store.as_ref();
    let written = match store.get(&key).await.map_err(|e| e.to_string())? {
        Some(stored) => store.update(&key, value, stored.mod_revision).await,
        None => store.create(&key, value).await,
    };
    written.map(drop).map_err(|e| e.to_string())
}

/// Sets the `kubernetes` Service's Endpoints and EndpointSlice (made if missing) to
/// `live` on `port`.
async fn publish(shared: &Shared, port: u16, live: &BTreeSet<String>) -> Result<(), String> {
    let endpoints = serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    let slice = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4", "endpoints": [],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    let with_live =
        |object: &mut Value| -> bool {
            let (list, entries): (&mut Value, Vec<Value>) = match object["kind"].as_str() {
            Some("Endpoints") => (
                &mut object["subsets"][0]["addresses"],
                live.iter().map(|ip| serde_json::json!({"ip": ip})).collect(),
            ),
            _ => (
                &mut object["endpoints"],
                (live.iter())
                    .map(|ip| serde_json::json!({"addresses": [ip], "conditions": {"ready": true}}))
                    .collect(),
            ),
        };
            let wanted = Value::Array(entries);
            let changed = *list != wanted;
            *list = wanted;
            changed
        };
    for (plural, mut object) in [("endpoints", endpoints), ("endpointslices", slice)] {
        let key = format!("/registry/{plural}/default/kubernetes");
        let store = shared.store.as_ref();
        let updated = crate::stored::edit(store, (plural, &key), |o| Ok(with_live(o))).await;
        if updated.is_ok() {
            continue;
        }
        with_live(&mut object);
        crate::stored::create_own(store, plural, Some("default"), object)
            .await
            .map_err(|status| status.message().to_string())?;
    }
    Ok(())
}

//! The scheduler and the controllers (Deployments, ReplicaSets, Jobs, CronJobs, DaemonSets,
//! StatefulSets, nodes, garbage collection, endpoints, autoscaling, ...) as idempotent
//! reconcile loops over the Kubernetes API, run on the elected leader.
//!
//! Depends on nothing of ours: it reaches the cluster only through the Kubernetes API.

pub mod autoscalers;
pub mod clusterroles;
pub mod collector;
pub mod cronjobs;
pub mod daemonsets;
pub mod deployments;
pub mod disruption;
pub mod endpoints;
mod expectations;
pub mod jobs;
use berth_labels as labels;
pub mod cached_pod;
pub mod leader;
pub mod local_path;
pub mod node_ipam;
pub mod nodes;
mod pods;
pub mod quota;
pub mod replicasets;
mod revisions;
pub mod scheduler;
pub mod serviceaccounts;
pub mod servicelb;
pub mod statefulsets;
mod statuses;
mod watched;

pub use berth_runner::Informers;
pub use leader::Election;

/// The mutex's value; a poisoned one (a panic while held) is still read, as what the
/// controllers keep under one is a cache they can do without.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the controller manager: competes for leadership through its Lease and, while
/// leading, runs the scheduler and the controllers.
pub async fn run_controller_manager(
    client: kube::Client,
    election: Election,
    lifecycle: nodes::Lifecycle,
    cluster_cidr: node_ipam::ClusterCidr,
    root_ca: String,
) {
    let controllers = client.clone();
    let lead = move || {
        let client = controllers.clone();
        let root_ca = root_ca.clone();
        async move {
            let informers = Informers::new(client.clone());
            tokio::join!(
                scheduler::run(client.clone(), informers.clone()),
                replicasets::run(client.clone(), informers.clone()),
                deployments::run(client.clone(), informers.clone()),
                jobs::run(client.clone(), informers.clone()),
                cronjobs::run(client.clone(), informers.clone()),
                daemonsets::run(client.clone(), informers.clone()),
                statefulsets::run(client.clone(), informers.clone()),
                nodes::run(client.clone(), informers.clone(), lifecycle),
                node_ipam::run(client.clone(), informers.clone(), cluster_cidr),
                autoscalers::run(client.clone(), informers.clone()),
                local_path::run(client.clone(), informers.clone()),
                endpoints::run(client.clone(), informers.clone()),
                serviceaccounts::run(client.clone(), informers.clone(), root_ca),
                clusterroles::run(client.clone(), informers.clone()),
                servicelb::run(client.clone(), informers.clone()),
                disruption::run(client.clone(), informers.clone()),
                quota::run(client.clone(), informers),
                collector::run(client),
            );
        }
    };
    leader::run(client, election, lead).await;
}

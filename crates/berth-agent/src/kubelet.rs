//! The kubelet's pod workers: every pod bound to this node gets a worker task that
//! makes the pod's sandbox, runs its init containers in order and then its containers
//! through the engine, restarts them as the restart policy says (with the kubelet's
//! back-off: at once, then 10 s doubling to 5 min), reports the pod's status as the
//! kubelet does, and at deletion stops the containers within the grace period, removes
//! everything the pod had and lets the API server forget the pod.
//!
//! A pod's sync runs on berth-runner's queue, keyed by the pod's uid: woken by changes,
//! never by polling — the pod's own watch events, the engine's container events (start,
//! die) routed to the pod whose labels they carry, its probers' findings. The queue
//! calls it again when a back-off it waits out ends, and never runs two syncs of one
//! pod at once. What a pod's worker remembers between syncs (back-offs, probe states,
//! the last status reported) is the kubelet's, as kube's pod workers keep theirs.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_engine::{Engine, PodSandbox};
use berth_runner::{Action, Queue};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc::unbounded_channel;

use crate::node::NodeIdentity;
use crate::probes::{ProbeState, ProbeStates, Target};
use crate::spec::{self, Refusal};
use crate::status::{self, Waiting};
use crate::watches::ObjectWatches;

/// The label of a sandbox or container that names its pod's uid.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// The label naming the pod.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// The label naming the pod's namespace.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// The label of a container that names its container in the pod.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// The label of a container that counts its restarts: 0 for the first run.
pub const ATTEMPT: &str = "io.kubernetes.container.restartCount";

/// The kubelet's restart back-off: its first delay and its ceiling.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What the pod workers of one node share.
pub struct Kubelet {
    /// The node's API client.
    pub client: Client,
    /// The node's engine.
    pub engine: Arc<Engine>,
    /// The node.
    pub node: NodeIdentity,
    /// Where pods' volumes live: `<dir>/<uid>/volumes/<name>`.
    pub pods_dir: PathBuf,
    /// The cluster DNS pods ask, per their dnsPolicy.
    pub dns: crate::ClusterDns,
    /// The `kubernetes` Service's cluster IP (the Service range's first address), which
    /// containers find in their environment.
    pub api_service: std::net::Ipv4Addr,
}

impl Kubelet {
    /// The agent's data directory (`<data-dir>/agent`), whose disk is the node's.
    pub fn data_dir(&self) -> PathBuf {
        self.pods_dir
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    /// Where a pod's volumes are: `<pods>/<uid>/volumes`.
    pub fn volumes_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir.join(uid).join("volumes")
    }

    /// Removes a pod's volumes (memory-backed ones unmounted first).
    fn remove_pod_dir(&self, uid: &str) {
        let dir = self.pods_dir.join(uid);
        spec::unmount_below(&dir);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// How long a postStart hook may take before it counts as failed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// How many pods sync at once: the kubelet's default `maxPods`, so that no pod waits
/// for another's image pull or stop.
const SYNCS_AT_ONCE: usize = 110;

/// What happened to a pod since its last sync, kept until the sync that takes it.
#[derive(Default)]
struct News {
    /// The pod as the API now has it.
    pod: Option<Box<Pod>>,
    /// The pod is gone from the API.
    gone: bool,
    /// A configMap, secret or claim its volumes use changed: volumes made of them are
    /// written again, and a container waiting for one is tried again.
    objects: bool,
}

/// Every pod's worker state and news, by uid: what the runner's queue calls a sync with.
#[derive(Default)]
struct Pods {
    workers: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Worker>>>>,
    news: std::sync::Mutex<HashMap<String, News>>,
}

impl Pods {
    /// Records `change` of the pod `uid` for its next sync.
    fn tell(&self, uid: &str, change: impl FnOnce(&mut News)) {
        change(lock(&self.news).entry(uid.to_string()).or_default());
    }

    /// Whether the pod `uid` has a worker.
    fn has(&self, uid: &str) -> bool {
        lock(&self.workers).contains_key(uid)
    }

    fn uids(&self) -> Vec<String> {
        lock(&self.workers).keys().cloned().collect()
    }

    /// One sync of the pod `uid` with its news: its worker made when the pod is new, let
    /// go of once the pod is gone and everything it had removed.
    async fn sync(&self, kubelet: &Arc<Kubelet>, queue: &Queue<String>, uid: String) -> Action {
        let news = lock(&self.news).remove(&uid).unwrap_or_default();
        let existing = lock(&self.workers).get(&uid).cloned();
        let worker = match (existing, news.pod) {
            (Some(worker), pod) => {
                let mut state = worker.lock().await;
                if let Some(pod) = pod {
                    state.pod = *pod;
                }
                state.gone |= news.gone;
                state.objects_changed |= news.objects;
                drop(state);
                worker
            }
            (None, Some(pod)) if !news.gone => {
                let worker = Worker::new(Arc::clone(kubelet), *pod, queue.clone());
                let worker = Arc::new(tokio::sync::Mutex::new(worker));
                lock(&self.workers).insert(uid.clone(), Arc::clone(&worker));
                worker
            }
            (None, _) => return Action::AwaitChange,
        };
        let step = worker.lock().await.sync().await;
        match step {
            Step::Wait(None) => Action::AwaitChange,
            Step::Wait(Some(at)) => {
                Action::RequeueAfter(at.saturating_duration_since(Instant::now()))
            }
            Step::Done => {
                lock(&self.workers).remove(&uid);
                Action::AwaitChange
            }
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the pods bound to the node until the engine stops: each pod's sync is called
/// from berth-runner's queue — one sync of a pod at a time, again at once when it
/// changed meanwhile, again when the back-off it waits out ends — for each change of
/// the pod, of its containers or of the objects its volumes use. A watch of the pods
/// that fails — one that fell behind the server's history ends with 410, routine on a
/// busy server — is made again after a back-off, listing the pods anew.
pub async fn run(kubelet: Arc<Kubelet>) {
    let (pods, queue) = (Pods::default(), Queue::default());
    let (pods, queue, kubelet) = (&pods, &queue, &kubelet);
    let syncs = queue.run(SYNCS_AT_ONCE, move |uid| async move {
        Ok::<_, kube::Error>(pods.sync(kubelet, queue, uid).await)
    });
    tokio::select! {
        () = follow(kubelet, pods, queue) => {}
        () = syncs => {}
    }
}

/// Tells the pods' syncs of what changed: the node's pods in the API, their containers
/// in the engine, the objects their volumes use.
async fn follow(kubelet: &Arc<Kubelet>, pods: &Pods, queue: &Queue<String>) {
    let api: Api<Pod> = Api::all(kubelet.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", kubelet.node.name));
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
    let (_, mut engine_events) = kubelet.engine.subscribe_events();
    let mut listed: HashSet<String> = HashSet::new();
    let (changed, mut changes) = unbounded_channel();
    let mut watched = ObjectWatches::new(kubelet.client.clone(), changed);
    let apply = |pod: Pod, watched: &mut ObjectWatches| {
        let uid = pod.uid().unwrap_or_default();
        watched.track(&pod);
        pods.tell(&uid, |news| news.pod = Some(Box::new(pod)));
        queue.add(uid);
    };
    loop {
        tokio::select! {
            Some(key) = changes.recv() => {
                for uid in watched.users(&key) {
                    pods.tell(uid, |news| news.objects = true);
                    queue.add(uid.clone());
                }
            }
            event = stream.next() => {
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(error)) => {
                        tracing::warn!(%error, "the watch of the node's pods failed; watching again");
                        continue;
                    }
                    None => return,
                };
                match event {
                    watcher::Event::Init => listed.clear(),
                    watcher::Event::InitApply(pod) => {
                        listed.insert(pod.uid().unwrap_or_default());
                        apply(pod, &mut watched);
                    }
                    watcher::Event::InitDone => {
                        for uid in watched.pods() {
                            if !listed.contains(&uid) {
                                watched.forget(&uid);
                            }
                        }
                        remove_orphans(kubelet, &listed).await;
                    }
                    watcher::Event::Apply(pod) => apply(pod, &mut watched),
                    watcher::Event::Delete(pod) => {
                        let uid = pod.uid().unwrap_or_default();
                        watched.forget(&uid);
                        pods.tell(&uid, |news| news.gone = true);
                        queue.add(uid);
                    }
                }
            }
            event = engine_events.recv() => match event {
                Ok(event) if event.kind == "container" => {
                    let uid = event.actor.attributes.get(POD_UID);
                    if let Some(uid) = uid.filter(|uid| pods.has(uid)) {
                        queue.add(uid.clone());
                    }
                }
                Ok(_) => {}
                // Missed events: every pod looks again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    for uid in pods.uids() {
                        queue.add(uid);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Removes the sandboxes (and so the containers) of pods the API no longer has: pods
/// deleted while the agent was down.
async fn remove_orphans(kubelet: &Arc<Kubelet>, listed: &HashSet<String>) {
    for sandbox in kubelet.engine.sandboxes() {
        let uid = sandbox.labels.get(POD_UID).cloned().unwrap_or_default();
        if listed.contains(&uid) {
            continue;
        }
        let engine = Arc::clone(&kubelet.engine);
        let removed = tokio::task::spawn_blocking(move || engine.remove_sandbox(&sandbox.id)).await;
        if let Ok(Err(error)) = removed {
            tracing::warn!(%error, pod_uid = %uid, "could not remove the sandbox of a deleted pod");
        }
        kubelet.remove_pod_dir(&uid);
    }
}

/// What a worker remembers between syncs.
struct Worker {
    kubelet: Arc<Kubelet>,
    pod: Pod,
    gone: bool,
    /// Per container: when its back-off ends and how long the next one is.
    backoff: HashMap<String, (Instant, Duration)>,
    /// Per container: why it waits, when the engine's records do not say.
    waiting: HashMap<String, Waiting>,
    /// The last status reported.
    reported: Option<serde_json::Value>,
    /// What the probes of the running containers found, by engine id.
    probes: ProbeStates,
    /// The queue its syncs are called from, which its probers add its uid to.
    queue: Queue<String>,
    /// An object its volumes use changed, or its tokens are due, since the last sync.
    objects_changed: bool,
    /// Its sandbox's network was checked, or made by this worker.
    sandbox_checked: bool,
    /// Why the pod was evicted, once it was.
    evicted: Option<String>,
    /// When its projected tokens were last fetched.
    tokens_fetched: Option<Instant>,
}

/// What a sync asks of its worker next.
enum Step {
    /// Sleep until woken, or until the instant given.
    Wait(Option<Instant>),
    /// The pod is gone and so is everything it had.
    Done,
}

impl Worker {
    fn new(kubelet: Arc<Kubelet>, pod: Pod, queue: Queue<String>) -> Self {
        Self {
            kubelet,
            pod,
            gone: false,
            backoff: HashMap::new(),
            waiting: HashMap::new(),
            reported: None,
            probes: ProbeStates::default(),
            queue,
            objects_changed: false,
            sandbox_checked: false,
            evicted: None,
            tokens_fetched: None,
        }
    }

    fn uid(&self) -> String {
        self.pod.uid().unwrap_or_default()
    }

    /// Records an event about the pod from the kubelet, without holding the worker up.
    fn event(&self, kind: &'static str, reason: &'static str, message: String) {
        record_later(
            self.kubelet.client.clone(),
            self.pod.clone(),
            (kind, reason, message),
        );
    }

    async fn sync(&mut self) -> Step {
        if self.gone || self.pod.metadata.deletion_timestamp.is_some() {
            self.terminate().await;
            return Step::Done;
        }
        let phase = self.pod.status.as_ref().and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
            return Step::Wait(None);
        }
        if self.evicted.is_some() {
            if let Some(sandbox) = self.existing_sandbox() {
                self.report(&sandbox).await;
            }
            return Step::Wait(None);
        }
        let sandbox = match self.sandbox().await {
            Ok(sandbox) => sandbox,
            Err(message) => {
                tracing::warn!(pod = %self.pod.name_any(), %message, "could not make the pod's sandbox");
                let message = format!("Failed to create pod sandbox: {message}");
                self.event("Warning", "FailedCreatePodSandBox", message);
                return Step::Wait(Some(Instant::now() + BACKOFF_START));
            }
        };
        let mut wake = None;
        let initialized = self.run_init_containers(&sandbox, &mut wake).await;
        if initialized {
            let containers = self.spec().containers.clone();
            for container in &containers {
                self.ensure(&sandbox, container, false, &mut wake).await;
            }
            self.probe(&sandbox, &containers);
            if let Some(next) = self.watch_disk_use().await {
                wake = earliest(wake, next);
            }
        }
        if let Some(next) = self.tokens_due() {
            wake = earliest(wake, next);
        }
        if std::mem::take(&mut self.objects_changed)
            && let Err(refusal) = spec::refresh_volumes(&self.kubelet, &self.pod).await
        {
            tracing::info!(pod = %self.pod.name_any(), %refusal, "could not refresh the pod's volumes");
        }
        self.report(&sandbox).await;
        Step::Wait(wake)
    }

    fn spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        static EMPTY: std::sync::OnceLock<k8s_openapi::api::core::v1::PodSpec> =
            std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }

    fn restart_policy(&self) -> &str {
        self.spec().restart_policy.as_deref().unwrap_or("Always")
    }

    /// The sandbox the engine has for the pod's uid, if any.
    fn existing_sandbox(&self) -> Option<PodSandbox> {
        let uid = self.uid();
        self.kubelet
            .engine
            .sandboxes()
            .into_iter()
            .find(|s| s.labels.get(POD_UID) == Some(&uid))
    }

    /// The pod's sandbox: the one the engine has for its uid, or a new one. A sandbox
    /// this worker did not make (an earlier agent's) has its network checked first and
    /// is made again, with the pod's containers, when the check fails — as the kubelet
    /// re-creates a sandbox that changed.
    async fn sandbox(&mut self) -> Result<PodSandbox, String> {
        let found = self.existing_sandbox();
        let checked = std::mem::replace(&mut self.sandbox_checked, true);
        if let Some(sandbox) = found {
            if checked {
                return Ok(sandbox);
            }
            let engine = Arc::clone(&self.kubelet.engine);
            let id = sandbox.id.clone();
            let verdict = tokio::task::spawn_blocking(move || engine.check_sandbox(&id))
                .await
                .map_err(|e| e.to_string())?;
            let Err(problem) = verdict else {
                return Ok(sandbox);
            };
            tracing::warn!(pod = %self.pod.name_any(), %problem, "the pod's sandbox network failed its check");
            let message = "Pod sandbox changed, it will be killed and re-created.".to_string();
            self.event("Normal", "SandboxChanged", message);
            let engine = Arc::clone(&self.kubelet.engine);
            tokio::task::spawn_blocking(move || engine.remove_sandbox(&sandbox.id))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        let request =
            spec::sandbox_request(&self.pod, &self.kubelet.dns).map_err(|r| r.to_string())?;
        let engine = Arc::clone(&self.kubelet.engine);
        tokio::task::spawn_blocking(move || engine.run_sandbox(request))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Runs the init containers one after another; true once all have succeeded.
    async fn run_init_containers(
        &mut self,
        sandbox: &PodSandbox,
        wake: &mut Option<Instant>,
    ) -> bool {
        let containers = self.spec().init_containers.clone().unwrap_or_default();
        for container in &containers {
            let records = self.records(&container.name);
            match records.last() {
                Some(latest) if status::exit_code(latest) == Some(0) => continue,
                _ => {
                    self.ensure(sandbox, container, true, wake).await;
                    return false;
                }
            }
        }
        true
    }

    /// The engine's containers for the pod's container `name`, oldest run first.
    fn records(&self, name: &str) -> Vec<berth_engine::Container> {
        status::records(&self.kubelet.engine.containers(true), &self.uid(), name)
    }

    /// Makes the container run if it should: its first run, or a restart the policy
    /// asks for once its back-off has passed.
    async fn ensure(
        &mut self,
        sandbox: &PodSandbox,
        container: &k8s_openapi::api::core::v1::Container,
        init: bool,
        wake: &mut Option<Instant>,
    ) {
        let records = self.records(&container.name);
        let attempt = match records.last() {
            None => 0,
            Some(latest) if latest.state.status == berth_engine::Status::Running => return,
            Some(latest) => match status::exit_code(latest) {
                // Created but never started (this worker starts what it creates before
                // it syncs again): left by an agent that stopped between the two. Made
                // again.
                None => {
                    let (engine, id) = (Arc::clone(&self.kubelet.engine), latest.id.clone());
                    let _ = tokio::task::spawn_blocking(move || engine.remove_container(&id, true))
                        .await;
                    status::attempt(latest)
                }
                Some(code) => {
                    // Init containers are retried unless the pod never restarts.
                    let policy = if init && self.restart_policy() == "Always" {
                        "OnFailure"
                    } else {
                        self.restart_policy()
                    };
                    if !status::restarts(policy, code) {
                        return;
                    }
                    let now = Instant::now();
                    if let Some((until, _)) = self.backoff.get(&container.name)
                        && now < *until
                    {
                        let delay = self.backoff[&container.name].1;
                        self.waiting.insert(
                            container.name.clone(),
                            Waiting::new(
                                "CrashLoopBackOff",
                                format!(
                                    "back-off {} restarting failed container={} pod={}_{}({})",
                                    go_duration(delay),
                                    container.name,
                                    self.pod.name_any(),
                                    self.pod.namespace().unwrap_or_default(),
                                    self.uid()
                                ),
                            ),
                        );
                        *wake = earliest(*wake, *until);
                        self.event(
                            "Warning",
                            "BackOff",
                            format!(
                                "Back-off restarting failed container {} in pod {}_{}({})",
                                container.name,
                                self.pod.name_any(),
                                self.pod.namespace().unwrap_or_default(),
                                self.uid()
                            ),
                        );
                        return;
                    }
                    status::attempt(latest) + 1
                }
            },
        };
        if self.pulling_backs_off(container, wake) {
            return;
        }
        if attempt > 0 {
            self.back_off(&container.name);
        }
        let pull_failed_before = self.pull_failed(&container.name);
        self.waiting.remove(&container.name);
        if let Err(waiting) = self.start(sandbox, container, attempt).await {
            tracing::info!(pod = %self.pod.name_any(), container = %container.name, reason = %waiting.reason, message = %waiting.message, "container not started");
            if waiting.reason == "ErrImagePull" {
                self.event("Warning", "Failed", waiting.message.clone());
            }
            if waiting.reason == "ContainerCreating" {
                self.event("Warning", "FailedMount", waiting.message.clone());
            } else {
                self.event(
                    "Warning",
                    "Failed",
                    format!("Error: {}", waiting.reason_or_message()),
                );
            }
            let retry = if waiting.reason == "ErrImagePull" {
                // Shown as ErrImagePull now, then ImagePullBackOff until the next try.
                if attempt == 0 || pull_failed_before {
                    self.back_off(&container.name);
                }
                Instant::now()
            } else {
                Instant::now() + BACKOFF_START
            };
            *wake = earliest(*wake, retry);
            self.waiting.insert(container.name.clone(), waiting);
        }
        // Only the two latest runs are kept: the current one and the previous one that
        // `kubectl logs --previous` reads.
        for old in records.iter().rev().skip(1) {
            let engine = Arc::clone(&self.kubelet.engine);
            let id = old.id.clone();
            let _ = tokio::task::spawn_blocking(move || engine.remove_container(&id, true)).await;
        }
    }

    /// Starts the container's next back-off: 10 s, then twice the last, at most 5 min.
    fn back_off(&mut self, name: &str) {
        let delay = self
            .backoff
            .get(name)
            .map_or(BACKOFF_START, |(_, d)| (*d * 2).min(BACKOFF_MAX));
        self.backoff
            .insert(name.to_string(), (Instant::now() + delay, delay));
    }

    fn pull_failed(&self, name: &str) -> bool {
        self.waiting
            .get(name)
            .is_some_and(|w| matches!(w.reason.as_str(), "ErrImagePull" | "ImagePullBackOff"))
    }

    /// Whether the container's image pull failed and its back-off has not passed: then
    /// it waits as ImagePullBackOff until the back-off ends.
    fn pulling_backs_off(
        &mut self,
        container: &k8s_openapi::api::core::v1::Container,
        wake: &mut Option<Instant>,
    ) -> bool {
        let Some((until, _)) = self.backoff.get(&container.name).copied() else {
            return false;
        };
        if !self.pull_failed(&container.name) || Instant::now() >= until {
            return false;
        }
        let image = container.image.clone().unwrap_or_default();
        let message = format!("Back-off pulling image {image:?}");
        let shown = self.waiting.get(&container.name).map(|w| w.reason.clone());
        if shown.as_deref() != Some("ImagePullBackOff") {
            self.event("Normal", "BackOff", message.clone());
        }
        self.waiting.insert(
            container.name.clone(),
            Waiting::new("ImagePullBackOff", message),
        );
        *wake = earliest(*wake, until);
        true
    }

    /// Pulls the image as the policy says, then creates and starts run `attempt` of
    /// the container; why it waits when it cannot.
    async fn start(
        &self,
        sandbox: &PodSandbox,
        container: &k8s_openapi::api::core::v1::Container,
        attempt: u32,
    ) -> Result<(), Waiting> {
        let image = container.image.clone().unwrap_or_default();
        let report = |pulling: bool| {
            if pulling {
                self.event("Normal", "Pulling", format!("Pulling image {image:?}"));
            } else {
                let message = format!("Container image {image:?} already present on machine");
                self.event("Normal", "Pulled", message);
            }
        };
        let pulled = crate::images::ensure(
            (&self.kubelet.engine, &self.kubelet.client),
            (&self.pod, container),
            &report,
        )
        .await?;
        if let Some(took) = pulled {
            let message = format!("Successfully pulled image {image:?} in {took:?}");
            self.event("Normal", "Pulled", message);
        }
        let request =
            spec::container_request(&self.kubelet, &self.pod, sandbox, container, attempt)
                .await
                .map_err(|refusal: Refusal| match refusal {
                    Refusal::Unmountable(why) => Waiting::new("ContainerCreating", why),
                    other => Waiting::new("CreateContainerConfigError", other.to_string()),
                })?;
        let engine = Arc::clone(&self.kubelet.engine);
        let sandbox_id = sandbox.id.clone();
        let creating = Arc::clone(&engine);
        let created = tokio::task::spawn_blocking(move || {
            creating.create_pod_container(&sandbox_id, request)
        })
        .await
        .map_err(|e| Waiting::new("CreateContainerError", e.to_string()))?
        .map_err(|e| Waiting::new("CreateContainerError", e.to_string()))?;
        self.event(
            "Normal",
            "Created",
            format!("Created container: {}", container.name),
        );
        let id = created.id.clone();
        let started = tokio::task::spawn_blocking(move || engine.start_container(&created.id))
            .await
            .map_err(|e| Waiting::new("RunContainerError", e.to_string()))?;
        started.map_err(|e| Waiting::new("RunContainerError", e.to_string()))?;
        self.event(
            "Normal",
            "Started",
            format!("Started container: {}", container.name),
        );
        self.post_start(sandbox, container, &id).await;
        Ok(())
    }

    /// Runs the container's postStart hook; one that fails kills the container (its
    /// restart policy then decides), as the kubelet does.
    async fn post_start(
        &self,
        sandbox: &PodSandbox,
        container: &k8s_openapi::api::core::v1::Container,
        id: &str,
    ) {
        let Some(hook) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
        else {
            return;
        };
        let target = self.target(sandbox, container, id);
        if let Err(why) = crate::probes::handle(&target, hook, HOOK_TIMEOUT).await {
            let message = format!("PostStartHook failed: {why}");
            self.event("Warning", "FailedPostStartHook", message);
            let (engine, id) = (Arc::clone(&self.kubelet.engine), id.to_string());
            let grace = target.grace;
            let _ =
                tokio::task::spawn_blocking(move || engine.stop_container(&id, Some(grace), None))
                    .await;
        }
    }

    /// What probers and hooks of a container run need.
    fn target(
        &self,
        sandbox: &PodSandbox,
        container: &k8s_openapi::api::core::v1::Container,
        id: &str,
    ) -> Target {
        let ip = sandbox.ip().map_or(
            std::net::IpAddr::V4(self.kubelet.node.ip),
            std::net::IpAddr::V4,
        );
        Target {
            engine: Arc::clone(&self.kubelet.engine),
            container: container.clone(),
            id: id.to_string(),
            ip,
            grace: Duration::from_secs(self.grace_period()),
            states: Arc::clone(&self.probes),
            notify: self.notifier(),
        }
    }

    /// Starts the probers of each container run that has none yet, and forgets the
    /// results of runs that ended.
    fn probe(&self, sandbox: &PodSandbox, containers: &[k8s_openapi::api::core::v1::Container]) {
        let Ok(mut states) = self.probes.lock() else {
            return;
        };
        let mut live = HashSet::new();
        for container in containers {
            let runs = self.records(&container.name);
            let Some(run) = runs
                .last()
                .filter(|r| r.state.status == berth_engine::Status::Running)
            else {
                continue;
            };
            live.insert(run.id.clone());
            if states.contains_key(&run.id) {
                continue;
            }
            states.insert(run.id.clone(), ProbeState::initial(container));
            crate::probes::start(self.target(sandbox, container, &run.id));
        }
        states.retain(|id, _| live.contains(id));
    }

    /// Runs the preStop hooks of the pod's running containers, together, within the
    /// grace period; what they take is taken from it.
    async fn pre_stop(&self, grace: Duration) {
        if self.gone {
            return;
        }
        let Some(sandbox) = self
            .kubelet
            .engine
            .sandboxes()
            .into_iter()
            .find(|s| s.labels.get(POD_UID) == Some(&self.uid()))
        else {
            return;
        };
        let mut hooks = Vec::new();
        for container in &self.spec().containers {
            let Some(hook) = container
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.clone())
            else {
                continue;
            };
            let runs = self.records(&container.name);
            let Some(run) = runs
                .last()
                .filter(|r| r.state.status == berth_engine::Status::Running)
            else {
                continue;
            };
            let target = self.target(&sandbox, container, &run.id);
            hooks.push(async move {
                let outcome = crate::probes::handle(&target, &hook, grace).await;
                (target.container.name.clone(), outcome)
            });
        }
        for (name, outcome) in futures_util::future::join_all(hooks).await {
            if let Err(why) = outcome {
                let message = format!("PreStopHook failed: {why} (container {name})");
                self.event("Warning", "FailedPreStopHook", message);
            }
        }
    }

    /// What probers call with news: an event to record, and a wake-up for the worker.
    fn notifier(&self) -> crate::probes::Notify {
        let client = self.kubelet.client.clone();
        let pod = self.pod.clone();
        let (queue, uid) = (self.queue.clone(), self.uid());
        Arc::new(move |event| {
            if let Some((kind, reason, message)) = event {
                record_later(client.clone(), pod.clone(), (kind, reason, message));
            }
            queue.add(uid.clone());
        })
    }

    /// The seconds a stop of the pod's containers waits for them before SIGKILL.
    fn grace_period(&self) -> u64 {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self.spec().termination_grace_period_seconds)
            .unwrap_or(30);
        u64::try_from(seconds).unwrap_or(0)
    }

    /// Reports the pod's status when it changed since the last report.
    async fn report(&mut self, sandbox: &PodSandbox) {
        let records = self.kubelet.engine.containers(true);
        let probes = self.probes.lock().map(|p| p.clone()).unwrap_or_default();
        let mut status = status::pod_status(
            &self.pod,
            sandbox,
            &self.kubelet.node,
            (&records, &probes),
            &self.waiting,
        );
        if let Some(message) = &self.evicted {
            status.phase = Some("Failed".into());
            status.reason = Some("Evicted".into());
            status.message = Some(message.clone());
        }
        let body = serde_json::json!({"status": status});
        if self.reported.as_ref() == Some(&body) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.kubelet.client.clone(),
            &self.pod.namespace().unwrap_or_default(),
        );
        match pods
            .patch_status(
                &self.pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
        {
            Ok(pod) => {
                self.pod = pod;
                self.reported = Some(body);
            }
            Err(error) => {
                tracing::debug!(%error, pod = %self.pod.name_any(), "could not report the pod's status");
            }
        }
    }

    /// Marks the pod's volumes for refreshing when its projected tokens are due to be
    /// fetched again; when they will be next, if it has any.
    fn tokens_due(&mut self) -> Option<Instant> {
        let interval = spec::token_refresh_interval(&self.pod)?;
        let now = Instant::now();
        let fetched = *self.tokens_fetched.get_or_insert(now);
        if now < fetched + interval {
            return Some(fetched + interval);
        }
        self.objects_changed = true;
        self.tokens_fetched = Some(now);
        Some(now + interval)
    }

    /// Measures the pod's emptyDirs that have a size limit and evicts the pod when one
    /// is over it, as the kubelet's eviction manager does; when to measure again, if
    /// there is anything to measure.
    async fn watch_disk_use(&mut self) -> Option<Instant> {
        let volumes = self.kubelet.volumes_dir(&self.uid());
        let limits = crate::eviction::disk_limits(&self.pod, &volumes);
        if limits.is_empty() {
            return None;
        }
        let over = tokio::task::spawn_blocking(move || crate::eviction::exceeded(&limits))
            .await
            .ok()
            .flatten();
        let Some(message) = over else {
            return Some(Instant::now() + crate::eviction::MONITORING_INTERVAL);
        };
        tracing::info!(pod = %self.pod.name_any(), %message, "evicting the pod");
        self.event("Warning", "Evicted", message.clone());
        self.stop_all(0).await;
        self.evicted = Some(message);
        None
    }

    /// Stops the pod's running containers, together, each within `grace` seconds.
    async fn stop_all(&self, grace: u64) {
        let uid = self.uid();
        let engine = Arc::clone(&self.kubelet.engine);
        let running: Vec<String> = engine
            .containers(false)
            .into_iter()
            .filter(|c| c.request.labels.as_ref().and_then(|l| l.get(POD_UID)) == Some(&uid))
            .map(|c| {
                if !self.gone {
                    let labels = c.request.labels.as_ref();
                    let name = labels.and_then(|l| l.get(CONTAINER_NAME)).cloned();
                    let message = format!("Stopping container {}", name.unwrap_or_default());
                    self.event("Normal", "Killing", message);
                }
                c.id
            })
            .collect();
        let stops = running.into_iter().map(|id| {
            let engine = Arc::clone(&engine);
            tokio::task::spawn_blocking(move || {
                engine.stop_container(&id, Some(Duration::from_secs(grace)), None)
            })
        });
        futures_util::future::join_all(stops).await;
    }

    /// Removes sandbox `id` with what is in it, trying again for a few seconds when a
    /// member will not go yet (a container still stopping on a busy machine): the pod
    /// is forgotten only after, so nothing of it is left behind unseen.
    async fn remove_sandbox(&self, engine: &Arc<Engine>, id: &str) {
        let mut attempts = 0;
        loop {
            let (engine, id) = (Arc::clone(engine), id.to_string());
            let removed = tokio::task::spawn_blocking(move || engine.remove_sandbox(&id)).await;
            match removed {
                Ok(Err(error)) if attempts < SANDBOX_REMOVAL_ATTEMPTS => {
                    tracing::debug!(%error, pod = %self.pod.name_any(), "the pod's sandbox will not go yet");
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Ok(Err(error)) => {
                    return tracing::warn!(%error, pod = %self.pod.name_any(), "could not remove the pod's sandbox");
                }
                _ => return,
            }
        }
    }

    /// Stops the pod's containers within its grace period, removes its sandbox and
    /// volumes, and lets the API server forget it.
    async fn terminate(&self) {
        let grace = self.grace_period();
        let uid = self.uid();
        let engine = Arc::clone(&self.kubelet.engine);
        let begun = Instant::now();
        self.pre_stop(Duration::from_secs(grace)).await;
        self.stop_all(grace.saturating_sub(begun.elapsed().as_secs()))
            .await;
        let sandboxes: Vec<PodSandbox> = engine
            .sandboxes()
            .into_iter()
            .filter(|s| s.labels.get(POD_UID) == Some(&uid))
            .collect();
        for sandbox in sandboxes {
            self.remove_sandbox(&engine, &sandbox.id).await;
        }
        self.kubelet.remove_pod_dir(&uid);
        if self.gone {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.kubelet.client.clone(),
            &self.pod.namespace().unwrap_or_default(),
        );
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        if let Err(error) = pods.delete(&self.pod.name_any(), &now).await {
            tracing::debug!(%error, pod = %self.pod.name_any(), "could not finish the pod's deletion");
        }
    }
}

/// How many times a sandbox's removal is tried again before the pod is let go with a
/// warning (a quarter second apart).
const SANDBOX_REMOVAL_ATTEMPTS: u32 = 20;

/// A duration as Go prints it, as the kubelet's messages have it: `10s`, `5m0s`.
fn go_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        format!("{}m{}s", seconds / 60, seconds % 60)
    }
}

/// Records an event about `pod` from the kubelet on a task of its own.
fn record_later(
    client: Client,
    pod: Pod,
    (kind, reason, message): (&'static str, &'static str, String),
) {
    tokio::spawn(async move {
        berth_events::record(&client, &pod, (kind, reason, &message), "kubelet").await;
    });
}

fn earliest(current: Option<Instant>, candidate: Instant) -> Option<Instant> {
    Some(current.map_or(candidate, |c| c.min(candidate)))
}

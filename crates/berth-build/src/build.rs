//! Carrying out a Dockerfile, as Docker's classic builder does: each stage from its base
//! image (a local image, pulled when missing, an earlier stage, or `scratch`), config
//! steps applied to the image config in memory, RUN in a container of the image so far
//! (network off unless asked, with its `--mount`s) whose changes become a layer, COPY as a
//! layer written from the context. Stages that do not use each other build at the same
//! time, each on a thread, their progress passed on as if they had built in order.
//! Times in the image are `SOURCE_DATE_EPOCH` (or zero), so the same inputs give the same
//! config and COPY layers. Nothing is tagged until the last step succeeded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_engine::{CreateRequest, Engine, HostConfig, MountRequest, TmpfsOptions, WaitCondition};
use berth_image::{Digest, LayerBlob, Reference};
use serde_json::{Map, Value, json};

use crate::cache::{Cache, key};
use crate::context::{CopySpec, copy_layer, tree_digest};
use crate::dockerfile::{Command, Dockerfile, DockerfileError, Stage, Step, StepKind};
use crate::mounts::{RunMount, cache_dir};
use crate::words::{pairs, word, words};

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The build context: a directory.
    pub context: PathBuf,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Names for the image.
    pub tags: Vec<Reference>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The stage to stop at (`--target`); the last when None.
    pub target: Option<String>,
    /// Run every step, as if nothing were cached (`--no-cache`).
    pub no_cache: bool,
    /// Pull base images even when they are here (`--pull`).
    pub pull: bool,
    /// The network of RUN steps: `none` (the default), `host` or `bridge`.
    pub network: Option<String>,
}

/// What a build is doing, for its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A step begins: its number, the number of steps, its text.
    Step(usize, usize, String),
    /// A RUN step's container started.
    Running(String),
    /// A step's layer came from the cache (RUN's cache, or a COPY layer the store had).
    Cached,
    /// The base image's ONBUILD triggers, this many, run before the stage's steps.
    Triggers(usize),
    /// What a RUN step's command printed.
    Output(String),
    /// A step is done; the image so far, when it has one of its own.
    Done(Option<Digest>),
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile cannot be read or asks for what is not supported.
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// A step failed, in Docker's words.
    #[error("{0}")]
    Step(String),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] berth_engine::Error),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] berth_image::Error),
}

/// An image being built: its config document and its layers.
#[derive(Debug, Clone)]
struct Image {
    config: Map<String, Value>,
    layers: Vec<LayerBlob>,
}

/// What every step of a build sees.
#[derive(Clone, Copy)]
struct Build<'a> {
    engine: &'a Arc<Engine>,
    request: &'a BuildRequest,
    /// The ARGs before the first FROM, with the build's values.
    globals: &'a BTreeMap<String, String>,
    progress: &'a dyn Fn(Progress),
    cache: &'a Cache,
}

/// A stage's state between steps.
struct StageState<'m> {
    image: Image,
    /// What decides the stage's filesystem so far (cache.rs).
    key: Digest,
    /// The intermediate images the build made (RUN's), removed when it ends.
    made: &'m mut Vec<Digest>,
    /// The stages built before this one, for `COPY --from`.
    earlier: &'m [(Option<String>, Image)],
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    /// Whether CMD was set in this stage (ENTRYPOINT clears an inherited one only).
    cmd_set: bool,
}

/// Builds the image `request` describes, reporting each step; its id.
pub fn build(
    engine: &Arc<Engine>,
    request: &BuildRequest,
    progress: &dyn Fn(Progress),
) -> Result<Digest, BuildError> {
    let mut made = Vec::new();
    let built = build_stages(engine, request, progress, &mut made);
    for image in made {
        if built.as_ref().ok() != Some(&image) {
            // Another image of the store may share it since; then it stays.
            let _ = engine.images().remove(image.as_str(), false);
        }
    }
    built
}

fn build_stages(
    engine: &Arc<Engine>,
    request: &BuildRequest,
    progress: &dyn Fn(Progress),
    made: &mut Vec<Digest>,
) -> Result<Digest, BuildError> {
    let file = Dockerfile::parse(&request.dockerfile)?;
    let last = match &request.target {
        Some(target) => file
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(target.to_lowercase().as_str()))
            .ok_or_else(|| {
                BuildError::Step(format!(
                    "failed to reach build target {target} in Dockerfile"
                ))
            })?,
        None => file.stages.len() - 1,
    };
    let stages = &file.stages[..=last];
    let needed = needed_stages(stages);
    // Steps are numbered through the needed stages in the Dockerfile's order.
    let mut first_numbers = Vec::with_capacity(stages.len());
    let mut total = 0;
    for (stage, needed) in stages.iter().zip(&needed) {
        first_numbers.push(total + 1);
        if *needed {
            total += stage.steps.len() + 1;
        }
    }
    let globals = declared(&file.global_args, &request.build_args, &platform_args())?
        .into_iter()
        .chain(platform_args())
        .fold(BTreeMap::new(), |mut all, (name, value)| {
            all.entry(name).or_insert(value);
            all
        });
    let cache = Cache::open(engine.images(), !request.no_cache)?;
    let build = Build {
        engine,
        request,
        globals: &globals,
        progress,
        cache: &cache,
    };
    let mut built: Vec<Option<Image>> = vec![None; stages.len()];
    for wave in waves(stages, &needed) {
        // A stage sees the stages before it; those it does not use may not be built yet.
        let earlier: Vec<(Option<String>, Image)> = stages
            .iter()
            .zip(&built)
            .map(|(stage, image)| (stage.name.clone(), image.clone().unwrap_or_else(scratch)))
            .collect();
        let numbered = |index: usize| (index, &stages[index], first_numbers[index]);
        let images = match wave.as_slice() {
            [index] => {
                let (index, stage, first) = numbered(*index);
                let image = build.stage(stage, &earlier[..index], first, total, made)?;
                vec![(index, image)]
            }
            _ => build.stages_at_once(
                &wave.iter().map(|i| numbered(*i)).collect::<Vec<_>>(),
                &earlier,
                total,
                made,
            )?,
        };
        for (index, image) in images {
            built[index] = Some(image);
        }
    }
    let image = built
        .pop()
        .flatten()
        .ok_or_else(|| BuildError::Step("the Dockerfile has no stage".into()))?;
    Ok(commit(engine, &image, &request.tags)?)
}

/// The needed stages in waves: each wave's stages use only stages of earlier waves, so
/// they build at the same time. A stage the target does not need is not built, as
/// BuildKit has it (its place keeps the later stages' numbers).
fn waves(stages: &[Stage], needed: &[bool]) -> Vec<Vec<usize>> {
    let mut wave_of: Vec<usize> = Vec::with_capacity(stages.len());
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for (index, stage) in stages.iter().enumerate() {
        let after = stage_references(stage)
            .into_iter()
            .flat_map(|reference| {
                // A reference holding a variable may be any earlier stage.
                if reference.contains('$') {
                    (0..index).collect()
                } else {
                    stage_index(&stages[..index], reference)
                        .into_iter()
                        .collect::<Vec<_>>()
                }
            })
            .filter(|earlier| needed[*earlier])
            .map(|earlier| wave_of[earlier] + 1)
            .max()
            .unwrap_or(0);
        wave_of.push(after);
        if needed[index] {
            if waves.len() <= after {
                waves.resize_with(after + 1, Vec::new);
            }
            waves[after].push(index);
        }
    }
    waves.retain(|wave| !wave.is_empty());
    waves
}

/// What a stage building beside others tells the thread that orders the output.
enum Report {
    Progress(usize, Progress),
    Finished(usize),
}

impl Build<'_> {
    /// Builds one stage on `earlier`, its steps numbered from `first` of `total`.
    fn stage(
        &self,
        stage: &Stage,
        earlier: &[(Option<String>, Image)],
        first: usize,
        total: usize,
        made: &mut Vec<Digest>,
    ) -> Result<Image, BuildError> {
        let progress = self.progress;
        let globals = self.globals;
        progress(Progress::Step(
            first,
            total,
            format!("FROM {}", from_text(stage)),
        ));
        let base = word(&stage.base, &|name| globals.get(name).cloned())
            .map_err(|e| step_error(stage.line, &e))?;
        if let Some(platform) = &stage.platform {
            let platform = word(platform, &|name| globals.get(name).cloned())
                .map_err(|e| step_error(stage.line, &e))?;
            let host = format!("linux/{}", berth_image::host_architecture());
            if platform != host {
                let refused =
                    format!("berth builds for {host}: --platform={platform} is not supported yet");
                return Err(step_error(stage.line, refused));
            }
        }
        let mut image = base_image(self.engine, &base, earlier, self.request.pull)?;
        let triggers = take_triggers(&mut image);
        progress(Progress::Done(None));
        let mut state = StageState {
            key: filesystem_key(&image),
            image,
            made,
            earlier,
            args: BTreeMap::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_set: false,
        };
        if !triggers.is_empty() {
            progress(Progress::Triggers(triggers.len()));
        }
        for trigger in &triggers {
            let mut step = trigger_step(trigger).map_err(|e| step_error(stage.line, e))?;
            step.line = stage.line;
            self.run_step(&mut state, &step)?;
        }
        for (number, step) in (first + 1..).zip(&stage.steps) {
            progress(Progress::Step(number, total, step.text.clone()));
            let made = self.run_step(&mut state, step)?;
            progress(Progress::Done(made));
        }
        Ok(state.image)
    }

    /// Builds `stages` (index, stage, first step number) at once, each on a thread of
    /// its own. Their progress comes out as if they had built one after the other: the
    /// first stage's as it happens, each next one's once those before it are done.
    fn stages_at_once(
        &self,
        stages: &[(usize, &Stage, usize)],
        earlier: &[(Option<String>, Image)],
        total: usize,
        made: &mut Vec<Digest>,
    ) -> Result<Vec<(usize, Image)>, BuildError> {
        let (sender, reports) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (engine, request, globals, cache) =
            (self.engine, self.request, self.globals, self.cache);
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = stages
                .iter()
                .map(|&(index, stage, first)| {
                    let sender = sender.clone();
                    let runtime = runtime.clone();
                    scope.spawn(move || {
                        let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
                        let report = |progress| {
                            let _ = sender.send(Report::Progress(index, progress));
                        };
                        let build = Build {
                            engine,
                            request,
                            globals,
                            progress: &report,
                            cache,
                        };
                        let mut made = Vec::new();
                        let image = build.stage(stage, &earlier[..index], first, total, &mut made);
                        let _ = sender.send(Report::Finished(index));
                        (image, made)
                    })
                })
                .collect();
            drop(sender);
            self.in_order(stages, reports);
            handles
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        (
                            Err(BuildError::Step("a build stage's thread panicked".into())),
                            Vec::new(),
                        )
                    })
                })
                .collect::<Vec<_>>()
        });
        let mut images = Vec::new();
        let mut failure = None;
        for (&(index, _, _), (image, stage_made)) in stages.iter().zip(results) {
            made.extend(stage_made);
            match image {
                Ok(image) => images.push((index, image)),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        failure.map_or(Ok(images), Err)
    }

    /// Passes on the stages' progress in their order, holding back a stage's until the
    /// ones before it have finished.
    fn in_order(
        &self,
        stages: &[(usize, &Stage, usize)],
        reports: std::sync::mpsc::Receiver<Report>,
    ) {
        let position = |index: usize| stages.iter().position(|(i, _, _)| *i == index).unwrap_or(0);
        let mut held: Vec<Vec<Progress>> = vec![Vec::new(); stages.len()];
        let mut finished = vec![false; stages.len()];
        let mut head = 0;
        for report in reports {
            match report {
                Report::Progress(index, progress) if position(index) == head => {
                    (self.progress)(progress);
                }
                Report::Progress(index, progress) => held[position(index)].push(progress),
                Report::Finished(index) => finished[position(index)] = true,
            }
            while head < stages.len() && finished[head] {
                head += 1;
                if let Some(next) = held.get_mut(head) {
                    next.drain(..)
                        .for_each(|progress| (self.progress)(progress));
                }
            }
        }
    }
}

/// The empty image `FROM scratch` starts from.
fn scratch() -> Image {
    let config = json!({
        "architecture": berth_image::host_architecture(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    Image {
        config: object(config),
        layers: Vec::new(),
    }
}

/// The platform ARGs BuildKit predefines in the global scope (`TARGETPLATFORM`,
/// `BUILDARCH`…): builds are for this host's platform.
fn platform_args() -> BTreeMap<String, String> {
    let arch = berth_image::host_architecture();
    let mut args = BTreeMap::new();
    for side in ["BUILD", "TARGET"] {
        args.insert(format!("{side}PLATFORM"), format!("linux/{arch}"));
        args.insert(format!("{side}OS"), "linux".to_string());
        args.insert(format!("{side}ARCH"), arch.to_string());
    }
    args
}

/// Which of `stages` the last one needs: itself, and what a needed stage starts from,
/// copies from or mounts (a reference holding a variable may be any earlier stage).
fn needed_stages(stages: &[Stage]) -> Vec<bool> {
    let mut needed = vec![false; stages.len()];
    if let Some(last) = needed.last_mut() {
        *last = true;
    }
    for index in (0..stages.len()).rev() {
        if !needed[index] {
            continue;
        }
        for reference in stage_references(&stages[index]) {
            if reference.contains('$') {
                needed[..index].iter_mut().for_each(|n| *n = true);
            } else if let Some(earlier) = stage_index(&stages[..index], reference) {
                needed[earlier] = true;
            }
        }
    }
    needed
}

/// What a stage names that may be another stage: its base, `COPY --from`, `RUN
/// --mount=…,from=`.
fn stage_references(stage: &Stage) -> Vec<&str> {
    let mut references = vec![stage.base.as_str()];
    for step in &stage.steps {
        match &step.kind {
            StepKind::Copy {
                from: Some(from), ..
            } => references.push(from),
            StepKind::Run { mounts, .. } => {
                references.extend(mounts.iter().filter_map(|m| match m {
                    RunMount::Bind {
                        from: Some(from), ..
                    } => Some(from.as_str()),
                    _ => None,
                }))
            }
            _ => {}
        }
    }
    references
}

/// The stage of `earlier` that `reference` names (by index or by name, the last of a
/// name), if one does.
fn stage_index(earlier: &[Stage], reference: &str) -> Option<usize> {
    if let Ok(index) = reference.parse::<usize>() {
        return (index < earlier.len()).then_some(index);
    }
    let name = reference.to_lowercase();
    earlier
        .iter()
        .rposition(|s| s.name.as_deref() == Some(name.as_str()))
}

/// The ONBUILD triggers of a stage's base image, taken out: they run once, in the stage
/// that starts from it, and its own image does not keep them.
fn take_triggers(image: &mut Image) -> Vec<String> {
    let config = image
        .config
        .get_mut("config")
        .and_then(Value::as_object_mut);
    let triggers = config.and_then(|config| config.remove("OnBuild"));
    triggers
        .and_then(|list| serde_json::from_value(list).ok())
        .unwrap_or_default()
}

/// An ONBUILD trigger's instruction as a step.
fn trigger_step(trigger: &str) -> Result<Step, String> {
    let file = Dockerfile::parse(&format!("FROM scratch\n{trigger}\n"))
        .map_err(|e| format!("ONBUILD trigger {trigger:?}: {}", e.message))?;
    let mut steps = file.stages.into_iter().flat_map(|stage| stage.steps);
    steps
        .next()
        .ok_or_else(|| format!("ONBUILD trigger {trigger:?} is empty"))
}

fn from_text(stage: &Stage) -> String {
    match &stage.name {
        Some(name) => format!("{} AS {name}", stage.base),
        None => stage.base.clone(),
    }
}

/// ARG declarations (`NAME[=default]`) with the build's values over their defaults.
fn declared(
    declarations: &[String],
    build_args: &BTreeMap<String, String>,
    outer: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut values = BTreeMap::new();
    for declaration in declarations {
        let lookup = |name: &str| values.get(name).cloned();
        let words = words(declaration, &lookup).map_err(|e| BuildError::Step(e.to_string()))?;
        for (name, default) in pairs(words) {
            let value = build_args
                .get(&name)
                .cloned()
                .or(default)
                .or_else(|| outer.get(&name).cloned());
            if let Some(value) = value {
                values.insert(name, value);
            }
        }
    }
    Ok(values)
}

/// A HEALTHCHECK as the image config keeps it: the test (`CMD`, `CMD-SHELL` or `NONE`)
/// and its times in nanoseconds.
fn health_check(test: Option<&Command>, options: &[(String, String)]) -> Result<Value, String> {
    let test = match test {
        None => json!(["NONE"]),
        Some(Command::Exec(words)) => json!([&["CMD".to_string()][..], words].concat()),
        Some(Command::Shell(line)) => json!(["CMD-SHELL", line]),
    };
    let mut check = json!({"Test": test});
    for (name, value) in options {
        let key = match name.as_str() {
            "retries" => {
                let retries: u64 = value
                    .parse()
                    .map_err(|_| format!("invalid --retries={value}"))?;
                check["Retries"] = json!(retries);
                continue;
            }
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            _ => "StartInterval",
        };
        let nanoseconds = go_duration(value)
            .ok_or_else(|| format!("invalid --{name}={value}: a duration like 30s"))?;
        check[key] = json!(nanoseconds);
    }
    Ok(check)
}

/// A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds.
pub fn go_duration(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, tail) = rest.split_at(digits);
        let unit = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += (number.parse::<f64>().ok()? * scale) as u64;
        rest = next;
    }
    (!text.is_empty()).then_some(total)
}

/// What is wrong with the instruction on `line`.
fn step_error(line: usize, error: impl std::fmt::Display) -> BuildError {
    BuildError::Dockerfile(DockerfileError {
        line,
        message: error.to_string(),
    })
}

/// The image a stage starts from.
fn base_image(
    engine: &Arc<Engine>,
    base: &str,
    built: &[(Option<String>, Image)],
    pull: bool,
) -> Result<Image, BuildError> {
    if base == "scratch" {
        return Ok(scratch());
    }
    let by_index = base
        .parse::<usize>()
        .ok()
        .and_then(|index| built.get(index));
    if let Some((_, image)) = by_index {
        return Ok(image.clone());
    }
    if let Some((_, image)) = built
        .iter()
        .rev()
        .find(|(name, _)| name.as_deref() == Some(base.to_lowercase().as_str()))
    {
        return Ok(image.clone());
    }
    let reference = Reference::parse(base)?;
    let present = engine.images().resolve(&reference.to_string()).ok();
    let record = match present.filter(|_| !pull) {
        Some(record) => record,
        None => {
            let pull = engine.pull_image(&reference, None, &|_| {});
            tokio::runtime::Handle::current().block_on(pull)?;
            engine.images().resolve(&reference.to_string())?
        }
    };
    let layers = record
        .layers
        .iter()
        .map(|layer| LayerBlob {
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
        })
        .collect();
    Ok(Image {
        config: object(engine.images().config(&record)?),
        layers,
    })
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl Build<'_> {
    /// Carries out one step; the image it made, when it made one.
    fn run_step(
        &self,
        state: &mut StageState<'_>,
        step: &Step,
    ) -> Result<Option<Digest>, BuildError> {
        let mut config = match state.image.config.remove("config") {
            Some(Value::Object(config)) => config,
            _ => Map::new(),
        };
        let made = self.apply(state, &mut config, step);
        state
            .image
            .config
            .insert("config".into(), Value::Object(config));
        made
    }

    /// Applies one step to the stage: `config` is the image's run config, taken out of
    /// it while the step works.
    fn apply(
        &self,
        state: &mut StageState<'_>,
        config: &mut Map<String, Value>,
        step: &Step,
    ) -> Result<Option<Digest>, BuildError> {
        // ENV wins over an ARG of the same name.
        let mut variables = state.args.clone();
        variables.extend(environment_of(config));
        let lookup = |name: &str| variables.get(name).cloned();
        let expand = |text: &str| word(text, &lookup).map_err(|e| step_error(step.line, &e));
        let split = |text: &str| words(text, &lookup).map_err(|e| step_error(step.line, &e));
        let (engine, request) = (self.engine, self.request);
        match &step.kind {
            StepKind::Env(text) => {
                let words = split(text)?;
                let assignments = match words.first() {
                    Some(first) if first.contains('=') => pairs(words)
                        .into_iter()
                        .map(|(k, v)| (k, v.unwrap_or_default()))
                        .collect(),
                    Some(_) => {
                        let (key, rest) = text
                            .trim()
                            .split_once(char::is_whitespace)
                            .unwrap_or((text, ""));
                        vec![(key.to_string(), expand(rest.trim())?)]
                    }
                    None => Vec::new(),
                };
                let mut env = environment_of(config);
                for (key, value) in assignments {
                    env.retain(|(k, _)| *k != key);
                    env.push((key, value));
                }
                config.insert(
                    "Env".into(),
                    json!(
                        env.iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                    ),
                );
            }
            StepKind::Arg(text) => {
                let values = declared(
                    std::slice::from_ref(text),
                    &request.build_args,
                    self.globals,
                )?;
                state.args.extend(values);
            }
            StepKind::Label(text) => {
                let labels = config.entry("Labels").or_insert_with(|| json!({}));
                for (key, value) in pairs(split(text)?) {
                    labels[key] = json!(value.unwrap_or_default());
                }
            }
            StepKind::Workdir(text) => {
                let dir = expand(text)?;
                let joined = std::path::Path::new(&working_dir(config)).join(&dir);
                config.insert("WorkingDir".into(), json!(joined.to_string_lossy()));
            }
            StepKind::User(text) => {
                config.insert("User".into(), json!(expand(text)?));
            }
            StepKind::Expose(ports) => {
                let exposed = config.entry("ExposedPorts").or_insert_with(|| json!({}));
                for port in ports {
                    let port = expand(port)?;
                    let key = if port.contains('/') {
                        port
                    } else {
                        format!("{port}/tcp")
                    };
                    exposed[key] = json!({});
                }
            }
            StepKind::Volume(paths) => {
                let volumes = config.entry("Volumes").or_insert_with(|| json!({}));
                for path in paths {
                    volumes[expand(path)?] = json!({});
                }
            }
            StepKind::Stopsignal(text) => {
                config.insert("StopSignal".into(), json!(expand(text)?));
            }
            StepKind::Cmd(command) => {
                config.insert("Cmd".into(), json!(argv(command, &state.shell)));
                state.cmd_set = true;
            }
            StepKind::Entrypoint(command) => {
                config.insert("Entrypoint".into(), json!(argv(command, &state.shell)));
                if !state.cmd_set {
                    config.insert("Cmd".into(), Value::Null);
                }
            }
            StepKind::Shell(shell) => {
                state.shell = shell.clone();
                config.insert("Shell".into(), json!(shell));
            }
            StepKind::Maintainer(name) => {
                state.image.config.insert("author".into(), json!(name));
            }
            StepKind::Healthcheck { test, options } => {
                let check = health_check(test.as_ref(), options)
                    .map_err(|message| step_error(step.line, message))?;
                config.insert("Healthcheck".into(), check);
            }
            StepKind::Run {
                command,
                mounts,
                network,
            } => {
                let command = argv(command, &state.shell);
                let build_network = request.network.as_deref().unwrap_or("none");
                let network = match network.as_deref() {
                    None | Some("default") => build_network,
                    Some("host") if build_network != "host" => {
                        let refused = "RUN --network=host needs the build's --network host";
                        return Err(step_error(step.line, refused));
                    }
                    Some(other) => other,
                };
                let mut expanded = Vec::new();
                for mount in mounts {
                    expanded.push(expand_mount(mount, &expand)?);
                }
                let run = Run {
                    command: &command,
                    mounts: &expanded,
                    network,
                };
                return self.run(state, config, &run, step).map(Some);
            }
            StepKind::Copy {
                sources,
                inline,
                extract,
                dest,
                from,
                chown,
                chmod,
                checksum,
            } => {
                // Another stage's or image's filesystem, mounted while the layer is
                // written; or the downloads of ADD's URLs.
                let sources = sources
                    .iter()
                    .map(|s| expand(s))
                    .collect::<Result<Vec<_>, _>>()?;
                let downloaded = match sources.first().filter(|s| crate::dockerfile::is_http(s)) {
                    Some(_) => Some(download_all(engine, &sources, checksum.as_deref(), step)?),
                    None => None,
                };
                let root = match from {
                    Some(from) => {
                        let image = base_image(engine, &expand(from)?, state.earlier, false)?;
                        let id = remember(engine, &image, state.made)?;
                        Some(engine.mount_image(id.as_str())?)
                    }
                    None => None,
                };
                let owner = match chown {
                    Some(chown) => self.owner(state, &expand(chown)?)?,
                    None => (0, 0),
                };
                let chmod = chmod
                    .as_deref()
                    .map(|m| {
                        u32::from_str_radix(m, 8)
                            .map_err(|_| step_error(step.line, format!("invalid --chmod={m}")))
                    })
                    .transpose()?
                    // Downloads are 0600 unless asked, as Docker leaves them.
                    .or(downloaded.as_ref().map(|_| 0o600));
                let dest = std::path::Path::new(&working_dir(config)).join(expand(dest)?);
                let (context, sources, unpack) = match &downloaded {
                    Some((dir, names)) => (dir.path(), names, false),
                    None => (
                        root.as_ref()
                            .map_or(request.context.as_path(), |root| root.path()),
                        &sources,
                        *extract,
                    ),
                };
                let spec = CopySpec {
                    context,
                    sources,
                    inline: inline.as_deref(),
                    dest: &dest,
                    owner,
                    chmod,
                    extract: unpack,
                    mtime: epoch(),
                };
                let verb = if *extract { "ADD" } else { "COPY" };
                let (layer, cached) = copy_layer(engine.images().content(), &spec)
                    .map_err(|message| BuildError::Step(format!("{verb} failed: {message}")))?;
                if cached && !request.no_cache {
                    (self.progress)(Progress::Cached);
                }
                state.key = key(&state.key, &[verb, layer.as_str()]);
                add_layer(&mut state.image, layer);
                record_history(&mut state.image, &step.text, false);
                return Ok(None);
            }
            StepKind::Onbuild(trigger) => {
                let triggers = config.entry("OnBuild").or_insert_with(|| json!([]));
                if !triggers.is_array() {
                    *triggers = json!([]);
                }
                if let Some(list) = triggers.as_array_mut() {
                    list.push(json!(trigger));
                }
            }
        }
        record_history(&mut state.image, &step.text, true);
        Ok(None)
    }

    /// Runs a RUN step's command in a container of the image so far (whose run config
    /// is `config`), on its network with its mounts; its changes become the step's layer.
    fn run(
        &self,
        state: &mut StageState<'_>,
        config: &Map<String, Value>,
        run: &Run<'_>,
        step: &Step,
    ) -> Result<Digest, BuildError> {
        let (engine, progress) = (self.engine, self.progress);
        state
            .image
            .config
            .insert("config".into(), Value::Object(config.clone()));
        let env = run_environment(config, &state.args);
        let text = |key: &str| {
            config
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let (working_dir, user) = (text("WorkingDir"), text("User"));
        let mounted = self
            .mounts(state, run.mounts)
            .map_err(|message| step_error(step.line, message))?;
        let mut parts = vec!["RUN", working_dir.as_str(), user.as_str()];
        parts.extend(run.command.iter().map(String::as_str));
        parts.push("\0env");
        parts.extend(env.iter().map(String::as_str));
        parts.extend(mounted.keys.iter().map(String::as_str));
        let step_key = key(&state.key, &parts);
        let layer = match self.cache.layer(&step_key, engine.images().content()) {
            Some(layer) => {
                progress(Progress::Cached);
                layer
            }
            None => {
                let image = intermediate(engine, state)?;
                let request = CreateRequest {
                    image: image.to_string(),
                    cmd: Some(run.command.to_vec()),
                    entrypoint: Some(Vec::new()),
                    env: Some(env),
                    working_dir,
                    user,
                    host_config: HostConfig {
                        network_mode: run.network.into(),
                        mounts: Some(mounted.requests.clone()),
                        ..HostConfig::default()
                    },
                    ..CreateRequest::default()
                };
                let layer = run_container(engine, request, run.command, progress)?;
                self.cache.keep(&step_key, &layer);
                layer
            }
        };
        drop(mounted);
        state.key = step_key;
        add_layer(&mut state.image, layer);
        record_history(&mut state.image, &step.text, false);
        intermediate(engine, state)
    }

    /// What a RUN step's `--mount`s need while it runs, and what they add to its key.
    fn mounts(&self, state: &mut StageState<'_>, mounts: &[RunMount]) -> Result<Mounted, String> {
        let engine = self.engine;
        let mut mounted = Mounted::default();
        for mount in mounts {
            match mount {
                RunMount::Cache(cache) => {
                    let id = cache.id.as_deref().unwrap_or(&cache.target);
                    let (dir, lock) = cache_dir(engine.data_dir(), cache, id)?;
                    mounted.locks.extend(lock);
                    mounted.keys.push(format!("\0cache {}", cache.target));
                    mounted
                        .requests
                        .push(bind(&dir, &cache.target, cache.read_only));
                }
                RunMount::Tmpfs { target, size } => {
                    mounted.keys.push(format!("\0tmpfs {target}"));
                    mounted.requests.push(MountRequest {
                        kind: "tmpfs".into(),
                        target: target.clone(),
                        tmpfs_options: Some(TmpfsOptions {
                            size_bytes: size.map_or(0, |s| s as i64),
                            ..TmpfsOptions::default()
                        }),
                        ..MountRequest::default()
                    });
                }
                RunMount::Bind {
                    target,
                    source,
                    from,
                } => {
                    let root = match from {
                        Some(from) => {
                            let image = base_image(engine, from, state.earlier, false)
                                .map_err(|e| e.to_string())?;
                            let id =
                                remember(engine, &image, state.made).map_err(|e| e.to_string())?;
                            let root =
                                engine.mount_image(id.as_str()).map_err(|e| e.to_string())?;
                            let path = root.path().to_path_buf();
                            mounted.roots.push(root);
                            path
                        }
                        None => self.request.context.clone(),
                    };
                    let (path, digest) = tree_digest(&root, source)?;
                    mounted.keys.push(format!("\0bind {target} {digest}"));
                    mounted.requests.push(bind(&path, target, true));
                }
            }
        }
        Ok(mounted)
    }
}

impl Build<'_> {
    /// `--chown`'s owner as numbers: ids as they are, names looked up in the stage's
    /// /etc/passwd and /etc/group; a user alone stands for its group too, as Docker has it.
    fn owner(&self, state: &mut StageState<'_>, chown: &str) -> Result<(u64, u64), BuildError> {
        let (user, group) = chown.split_once(':').unwrap_or((chown, chown));
        if let (Ok(uid), Ok(gid)) = (user.parse(), group.parse()) {
            return Ok((uid, gid));
        }
        let id = intermediate(self.engine, state)?;
        let root = self.engine.mount_image(id.as_str())?;
        let lookup = |file: &str, name: &str| -> Result<u64, BuildError> {
            if let Ok(number) = name.parse() {
                return Ok(number);
            }
            let entries = std::fs::read_to_string(root.path().join(file)).unwrap_or_default();
            entries
                .lines()
                .map(|line| line.split(':').collect::<Vec<_>>())
                .find(|fields| fields.first() == Some(&name))
                .and_then(|fields| fields.get(2)?.parse().ok())
                .ok_or_else(|| {
                    BuildError::Step(format!(
                        "unable to convert {chown} to uid:gid: no {name} in /{file}"
                    ))
                })
        };
        let uid = lookup("etc/passwd", user)?;
        let gid = if chown.contains(':') {
            lookup("etc/group", group)?
        } else {
            uid
        };
        Ok((uid, gid))
    }
}

/// A RUN step as it runs: its command, expanded mounts and network.
struct Run<'a> {
    command: &'a [String],
    mounts: &'a [RunMount],
    network: &'a str,
}

/// What a RUN step's mounts hold while it runs: the engine's mount requests, the locks of
/// `sharing=locked` caches, the stages and images mounted for binds; and their part of
/// the step's cache key.
#[derive(Default)]
struct Mounted {
    requests: Vec<MountRequest>,
    keys: Vec<String>,
    locks: Vec<nix::fcntl::Flock<std::fs::File>>,
    roots: Vec<berth_engine::ImageRoot>,
}

/// A bind mount of `source` at `target`.
fn bind(source: &std::path::Path, target: &str, read_only: bool) -> MountRequest {
    MountRequest {
        kind: "bind".into(),
        source: source.display().to_string(),
        target: target.into(),
        read_only,
        ..MountRequest::default()
    }
}

/// A mount with the ARG and ENV values in force expanded in its words.
fn expand_mount(
    mount: &RunMount,
    expand: &dyn Fn(&str) -> Result<String, BuildError>,
) -> Result<RunMount, BuildError> {
    Ok(match mount {
        RunMount::Cache(cache) => RunMount::Cache(crate::mounts::CacheMount {
            target: expand(&cache.target)?,
            id: cache.id.as_deref().map(expand).transpose()?,
            ..cache.clone()
        }),
        RunMount::Tmpfs { target, size } => RunMount::Tmpfs {
            target: expand(target)?,
            size: *size,
        },
        RunMount::Bind {
            target,
            source,
            from,
        } => RunMount::Bind {
            target: expand(target)?,
            source: expand(source)?,
            from: from.as_deref().map(expand).transpose()?,
        },
    })
}

/// ADD's URLs downloaded into a directory of their own (under the daemon's data
/// directory), each named as its URL's last segment; the directory and the names. A
/// `--checksum` must match the download.
fn download_all(
    engine: &Arc<Engine>,
    urls: &[String],
    checksum: Option<&str>,
    step: &Step,
) -> Result<(tempfile::TempDir, Vec<String>), BuildError> {
    let failed = |message: String| step_error(step.line, message);
    let dir = tempfile::Builder::new()
        .prefix("add-")
        .tempdir_in(engine.data_dir())
        .map_err(|e| failed(e.to_string()))?;
    let mut names = Vec::new();
    for url in urls {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let name = path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty() && *n != ".." && *n != ".")
            .unwrap_or("download")
            .to_string();
        let mut bytes = Vec::new();
        let fetch = berth_image::download(url, &mut bytes);
        tokio::runtime::Handle::current()
            .block_on(fetch)
            .map_err(|e| failed(e.to_string()))?;
        if let Some(expected) = checksum {
            let expected =
                Digest::parse(expected).map_err(|e| failed(format!("--checksum: {e}")))?;
            expected
                .verify(&Digest::of(&bytes), url.as_str())
                .map_err(|e| failed(e.to_string()))?;
        }
        std::fs::write(dir.path().join(&name), bytes).map_err(|e| failed(e.to_string()))?;
        names.push(name);
    }
    Ok((dir, names))
}

/// The stage's image so far as an image of the store (see [`remember`]).
fn intermediate(engine: &Arc<Engine>, state: &mut StageState<'_>) -> Result<Digest, BuildError> {
    remember(engine, &state.image, state.made)
}

/// `image` as an image of the store, noted in `made` for removal at the end unless it
/// was there before.
fn remember(
    engine: &Arc<Engine>,
    image: &Image,
    made: &mut Vec<Digest>,
) -> Result<Digest, BuildError> {
    let existed = engine
        .images()
        .resolve(Digest::of(&config_bytes(image)).as_str())
        .is_ok();
    let id = commit(engine, image, &[])?;
    if !existed {
        made.push(id.clone());
    }
    Ok(id)
}

/// Runs a RUN step's container to its end, reporting what it printed, and removes it;
/// its changes as a layer, or Docker's words for a command that failed.
fn run_container(
    engine: &Arc<Engine>,
    request: CreateRequest,
    command: &[String],
    progress: &dyn Fn(Progress),
) -> Result<Digest, BuildError> {
    let id = engine.create_container(None, request)?.id;
    progress(Progress::Running(id.chars().take(12).collect()));
    let layer = run_to_end(engine, &id, progress).and_then(|code| {
        if code != 0 {
            return Err(BuildError::Step(format!(
                "The command '{}' returned a non-zero code: {code}",
                command.join(" ")
            )));
        }
        Ok(engine.container_layer(&id, epoch())?)
    });
    let removed = engine.remove_container(&id, true);
    let layer = layer?;
    removed?;
    Ok(layer)
}

/// Starts the container, waits for it, and reports what it printed; its exit code.
fn run_to_end(
    engine: &Arc<Engine>,
    id: &str,
    progress: &dyn Fn(Progress),
) -> Result<i32, BuildError> {
    engine.start_container(id)?;
    let code = engine.wait_container(id, WaitCondition::NotRunning)?;
    let container = engine.container(id)?;
    let logged = berth_engine::logs::read_all(&engine.log_path(&container)).unwrap_or_default();
    for entry in logged {
        progress(Progress::Output(entry.log));
    }
    Ok(code)
}

/// RUN's environment: the image's, and ARG values unless an ENV of the same name is set.
fn run_environment(config: &Map<String, Value>, args: &BTreeMap<String, String>) -> Vec<String> {
    let env = environment_of(config);
    let mut out: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for (name, value) in args {
        if !env.iter().any(|(k, _)| k == name) {
            out.push(format!("{name}={value}"));
        }
    }
    out
}

/// What decides the filesystem of `image`: its layers' diff_ids.
fn filesystem_key(image: &Image) -> Digest {
    let ids = image
        .config
        .get("rootfs")
        .and_then(|rootfs| rootfs.get("diff_ids"))
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect::<Vec<_>>())
        .unwrap_or_default();
    key(&Digest::of(b"FROM"), &ids)
}

/// The run config's working directory, `/` when it names none.
fn working_dir(config: &Map<String, Value>) -> String {
    config
        .get("WorkingDir")
        .and_then(Value::as_str)
        .filter(|w| !w.is_empty())
        .unwrap_or("/")
        .to_string()
}

/// The `KEY=value` environment of a run config, as pairs.
fn environment_of(config: &Map<String, Value>) -> Vec<(String, String)> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn argv(command: &Command, shell: &[String]) -> Vec<String> {
    match command {
        Command::Exec(words) => words.clone(),
        Command::Shell(line) => {
            let mut argv = shell.to_vec();
            argv.push(line.clone());
            argv
        }
    }
}

/// Adds an uncompressed layer (whose digest is its diff_id) to the image.
fn add_layer(image: &mut Image, layer: Digest) {
    let rootfs = image
        .config
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    match rootfs["diff_ids"].as_array_mut() {
        Some(ids) => ids.push(json!(layer.as_str())),
        None => rootfs["diff_ids"] = json!([layer.as_str()]),
    }
    image.layers.push(LayerBlob {
        digest: layer,
        media_type: String::new(),
    });
}

fn record_history(image: &mut Image, created_by: &str, empty_layer: bool) {
    let mut entry = json!({"created": created(), "created_by": created_by});
    if empty_layer {
        entry["empty_layer"] = json!(true);
    }
    match image
        .config
        .get_mut("history")
        .and_then(Value::as_array_mut)
    {
        Some(history) => history.push(entry),
        None => {
            image.config.insert("history".into(), json!([entry]));
        }
    }
}

/// The build's time: `SOURCE_DATE_EPOCH` seconds, or zero.
fn epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn created() -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch());
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The image as an image of the store, tagged `tags`; its id.
fn commit(
    engine: &Arc<Engine>,
    image: &Image,
    tags: &[Reference],
) -> Result<Digest, berth_image::Error> {
    engine
        .images()
        .import(&config_bytes(image), &image.layers, tags)
}

/// The image's config as stored, dated at the build's epoch.
fn config_bytes(image: &Image) -> Vec<u8> {
    let mut config = image.config.clone();
    config.insert("created".into(), json!(created()));
    serde_json::to_vec(&Value::Object(config)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_checks_keep_docker_s_shape() {
        assert_eq!(go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration("500ms"), Some(500_000_000));
        assert_eq!(go_duration("5"), None);
        let options = [
            ("interval".to_string(), "5s".to_string()),
            ("retries".into(), "2".into()),
        ];
        let check = health_check(Some(&Command::Shell("true".into())), &options).unwrap();
        assert_eq!(
            check,
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64, "Retries": 2})
        );
        assert_eq!(health_check(None, &[]).unwrap(), json!({"Test": ["NONE"]}));
        assert!(health_check(None, &[("timeout".into(), "soon".into())]).is_err());
    }
}

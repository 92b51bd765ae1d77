//! `berth`: the one binary. It parses the command line, sets up logging and hands the
//! work to the library crates; errors come back here and are printed for a person.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

mod build;
mod build_progress;
mod cli;
mod commands;
mod compose;
mod containers;
mod credentials;
mod daemon;
mod exec;
mod listing;
mod objects;
mod oci;
mod pull;
mod push;
mod registry;
mod server;

/// `berth --version`: the crate version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BERTH_GIT_COMMIT"),
    ")"
);

/// jemalloc instead of glibc's malloc (decision 0024): a fifth of the API server's time
/// under load was glibc's malloc and free and the locks of its arenas.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its `malloc_conf`, read before the first allocation): freed pages
/// go back to the system after 1 s instead of 10 s, which keeps the agent's and the
/// server's RSS where glibc's malloc kept them; and one arena instead of four per core:
/// the server's hundred threads (tokio's blocking pool under load) spread its
/// long-lived objects over eight arenas' half-empty pages, 60–90 MB more RSS at
/// 150,000 pods for no measurable speed (issue 18). `MALLOC_CONF`'s prefixed name,
/// `_RJEM_MALLOC_CONF`, still overrides it.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &u8 = &b"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0];

/// Exit status for a command whose work has not landed yet (also clap's usage-error status).
const EXIT_NOT_IMPLEMENTED: u8 = 2;

fn main() -> ExitCode {
    if starts_containers(std::env::args()) {
        // Before anything else, so that the re-executed process does all the work once.
        if let Err(error) = berth_runtime::run_from_sealed_binary() {
            eprintln!("berth: error: {error}");
            return ExitCode::FAILURE;
        }
    }
    let matches = cli::Cli::command().get_matches();
    let path = command_path(&matches);
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    init_logging(&cli.log_level);
    match run(cli) {
        Ok(code) => code,
        Err(Outcome::NotImplemented) => {
            eprintln!("berth: not implemented yet: {path}");
            ExitCode::from(EXIT_NOT_IMPLEMENTED)
        }
        Err(Outcome::Failed(error)) => {
            eprintln!("berth: error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Whether the command line may start container processes (`daemon`, whose monitors do,
/// `oci create`, `oci run`, `oci exec`): those must run from a sealed binary
/// (CVE-2019-5736). A false match only costs one re-exec.
fn starts_containers(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.skip(1).collect();
    let daemon = args.iter().any(|a| a == "daemon");
    let mut words = args.iter();
    daemon
        || (words.any(|a| a == "oci")
            && words.any(|a| matches!(a.as_str(), "create" | "run" | "exec")))
}

/// How a command that did not succeed ended.
enum Outcome {
    /// The command exists in the tree but its work has not landed yet.
    NotImplemented,
    /// The command failed; the error carries its causes.
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Outcome {
    fn from(error: E) -> Self {
        Outcome::Failed(error.into())
    }
}

fn run(cli: cli::Cli) -> Result<ExitCode, Outcome> {
    tracing::debug!(command = ?cli.command, "dispatching");
    match cli.command {
        cli::Command::Oci(oci) => oci::run(*oci),
        cli::Command::Daemon(args) => daemon::run(&args, cli.host.as_deref()),
        cli::Command::Server(args) => server::run(args),
        cli::Command::ControllerManager(args) => server::controller_manager_alone(args),
        cli::Command::Kubeconfig(args) => server::kubeconfig(&args),
        cli::Command::Agent(args) => server::agent(args),
        cli::Command::Registry(args) => registry::run(args),
        cli::Command::Run(args) => containers::run(&args, cli.host.as_deref()),
        cli::Command::Ps(args) => listing::ps(&args, cli.host.as_deref()),
        cli::Command::Images(args) => listing::images(&args, cli.host.as_deref()),
        cli::Command::Stop(args) => commands::stop(&args, cli.host.as_deref()),
        cli::Command::Rm(args) => commands::rm(&args, cli.host.as_deref()),
        cli::Command::Logs(args) => commands::logs(&args, cli.host.as_deref()),
        cli::Command::Exec(args) => exec::run(&args, cli.host.as_deref()),
        cli::Command::Port(args) => commands::port(&args, cli.host.as_deref()),
        cli::Command::Start(args) => commands::start(&args, cli.host.as_deref()),
        cli::Command::Restart(args) => commands::restart(&args, cli.host.as_deref()),
        cli::Command::Kill(args) => commands::kill(&args, cli.host.as_deref()),
        cli::Command::Pause(args) => commands::pause(&args, cli.host.as_deref()),
        cli::Command::Unpause(args) => commands::unpause(&args, cli.host.as_deref()),
        cli::Command::Wait(args) => commands::wait(&args, cli.host.as_deref()),
        cli::Command::Inspect(args) => commands::inspect_objects(&args, cli.host.as_deref()),
        cli::Command::Tag(args) => commands::tag(&args, cli.host.as_deref()),
        cli::Command::Rmi(args) => commands::rmi(&args, cli.host.as_deref()),
        cli::Command::Version(_) => commands::version(cli.host.as_deref()),
        cli::Command::Network(command) => objects::network(command, cli.host.as_deref()),
        cli::Command::Volume(command) => objects::volume(command, cli.host.as_deref()),
        cli::Command::Load(args) => commands::load(&args, cli.host.as_deref()),
        cli::Command::Pull(args) => pull::pull(&args, cli.host.as_deref()),
        cli::Command::Push(args) => push::push(&args, cli.host.as_deref()),
        cli::Command::Build(args) => build::build(&args, cli.host.as_deref()),
        cli::Command::Compose(args) => compose::run(&args, cli.host.as_deref()),
        cli::Command::Login(args) => credentials::login(&args, cli.host.as_deref()),
        cli::Command::Logout(args) => credentials::logout(&args),
        cli::Command::Monitor(args) => Ok(ExitCode::from(
            berth_engine::run_monitor(&args.runtime_root, &args.dir, &args.id).clamp(0, 255) as u8,
        )),
        _ => Err(Outcome::NotImplemented),
    }
}

/// The async runtime every long-running command serves from: two workers, as the
/// machines Berth aims at have few cores to spare.
fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    async_runtime_named("tokio-runtime-worker")
}

/// An async runtime like [`async_runtime`] whose threads are named `name` (what `top -H`
/// and `perf` show them as).
fn async_runtime_named(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("start the async runtime of {name}"))
}

/// The words of the chosen subcommand, e.g. `network create`, for messages.
fn command_path(matches: &clap::ArgMatches) -> String {
    let mut words = Vec::new();
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        words.push(name);
        current = sub;
    }
    words.join(" ")
}

fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

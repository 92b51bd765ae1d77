//! `berth compose`: Compose projects (berth-compose reads them). `config` prints the
//! resolved model; running a project's services is still to come.

use std::process::ExitCode;

use crate::Outcome;
use crate::cli::{ComposeArgs, ComposeCommand};

/// `berth compose [-f FILE] [-p NAME] COMMAND`.
pub fn run(args: &ComposeArgs) -> Result<ExitCode, Outcome> {
    let dir = std::env::current_dir()?;
    let file = berth_compose::find(args.file.as_deref(), &dir)?;
    let mut loaded = berth_compose::load(&file, &|name| std::env::var(name).ok())?;
    for warning in &loaded.warnings {
        eprintln!("WARN[0000] {}: {warning}", file.display());
    }
    if let Some(name) = &args.project_name {
        loaded.name = name.clone();
    }
    match args.command {
        ComposeCommand::Config(_) => {
            print!("{}", berth_compose::config_yaml(&loaded)?);
            Ok(ExitCode::SUCCESS)
        }
        _ => Err(Outcome::NotImplemented),
    }
}

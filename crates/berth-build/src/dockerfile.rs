//! A Dockerfile read into stages of typed steps. The syntax is parse-dockerfile's (parser
//! directives, continuations, heredocs, JSON and shell forms); what is ours is the meaning:
//! which instructions and flags a build carries out, and an error naming the line for any
//! it does not. Words keep their `$VARIABLES`: the build expands them step by step, as the
//! ARG and ENV in force at each step say.

use parse_dockerfile::{
    Command as ParsedCommand, Flag, HealthcheckArguments, Instruction, Source, UnescapedString,
};

use crate::mounts::RunMount;

/// Why a Dockerfile cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile:{line}: {message}")]
pub struct DockerfileError {
    /// The line (from 1) of the instruction at fault.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed Dockerfile: the ARGs before the first FROM, then the stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM`, usable in `FROM` lines.
    pub global_args: Vec<String>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// One `FROM` and the steps after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The base image as written (`busybox:1.36`, `scratch`, `$BASE`, another stage).
    pub base: String,
    /// The stage's name (`AS name`), lowercased as Docker keeps it.
    pub name: Option<String>,
    /// `FROM --platform=…` as written (`$BUILDPLATFORM` and friends unexpanded).
    pub platform: Option<String>,
    /// The line of its `FROM`.
    pub line: usize,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// One instruction of a stage, with where it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Its line (from 1).
    pub line: usize,
    /// Its text, continuations joined, as build output shows it.
    pub text: String,
    /// What it does.
    pub kind: StepKind,
}

/// What a step does. Texts are as written: their variables are expanded when the step
/// runs.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// `RUN`: a command in a container of the image so far.
    Run {
        /// What it runs.
        command: Command,
        /// What it mounts (`--mount`).
        mounts: Vec<RunMount>,
        /// Its network (`--network=default|none|host`), the build's when None.
        network: Option<String>,
    },
    /// `COPY` and `ADD`: sources of the context or of a stage, or a here-document.
    Copy {
        /// Source paths, relative to the context (or the stage's root).
        sources: Vec<String>,
        /// A here-document written to `dest` instead (`COPY <<EOF /file`).
        inline: Option<String>,
        /// ADD: local tar archives are unpacked.
        extract: bool,
        /// Where they go.
        dest: String,
        /// The stage (or image) to copy from (`--from`).
        from: Option<String>,
        /// Owner (`--chown=user:group`).
        chown: Option<String>,
        /// Mode (`--chmod=0755`).
        chmod: Option<String>,
        /// ADD of a URL: the digest the download must have (`--checksum=sha256:…`).
        checksum: Option<String>,
    },
    /// `ENV`, raw text (`K=V ...` or the legacy `K V`).
    Env(String),
    /// `ARG`, raw text (`NAME[=default] ...`).
    Arg(String),
    /// `LABEL`, raw text (`K=V ...`).
    Label(String),
    /// `WORKDIR`.
    Workdir(String),
    /// `USER`.
    User(String),
    /// `EXPOSE` ports.
    Expose(Vec<String>),
    /// `VOLUME` paths.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    Stopsignal(String),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `SHELL`: the shell for later shell forms.
    Shell(Vec<String>),
    /// `MAINTAINER` (deprecated; kept as the image's author).
    Maintainer(String),
    /// `ONBUILD`: an instruction kept in the image, run by builds that start from it.
    Onbuild(String),
    /// `HEALTHCHECK`: the test (None for `NONE`) and its flags (`interval`, `retries`…).
    Healthcheck {
        /// The command, or None to turn the base image's check off.
        test: Option<Command>,
        /// Flag names without `--`, with their values.
        options: Vec<(String, String)>,
    },
}

/// A command in exec form (`["a", "b"]`) or shell form (`a b`, run by the SHELL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The words to exec.
    Exec(Vec<String>),
    /// A line for the shell.
    Shell(String),
}

impl Dockerfile {
    /// Reads `text`; syntax errors and instructions or flags a build does not carry out
    /// name their line.
    pub fn parse(text: &str) -> Result<Self, DockerfileError> {
        let parsed = parse_dockerfile::parse(text).map_err(|e| DockerfileError {
            line: e.line(),
            message: e.to_string(),
        })?;
        let lines = Lines::of(text);
        let global_args = parsed
            .global_args()
            .map(|arg| arg.arguments.value.to_string())
            .collect();
        let stages = parsed
            .stages()
            .map(|stage| {
                let from = stage.from;
                refuse_flags(&lines, from.from.span.start, &from.options, &["platform"])?;
                let steps = stage
                    .instructions
                    .iter()
                    .map(|instruction| step(&lines, text, instruction))
                    .collect::<Result<_, _>>()?;
                let platform = from
                    .options
                    .iter()
                    .find(|flag| flag.name.value == "platform")
                    .and_then(|flag| flag.value.as_ref())
                    .map(|value| value.value.to_string());
                Ok(Stage {
                    base: from.image.value.to_string(),
                    name: from.as_.as_ref().map(|(_, name)| name.value.to_lowercase()),
                    platform,
                    line: lines.line(from.from.span.start),
                    steps,
                })
            })
            .collect::<Result<_, DockerfileError>>()?;
        Ok(Self {
            global_args,
            stages,
        })
    }
}

/// Byte offsets of line starts, to name lines.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self(starts)
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset)
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> DockerfileError {
        DockerfileError {
            line: self.line(offset),
            message: message.into(),
        }
    }
}

fn step(lines: &Lines, text: &str, instruction: &Instruction<'_>) -> Result<Step, DockerfileError> {
    let start = keyword(instruction).map_or(0, |span| span.start);
    let error = |message: String| lines.error(start, message);
    let value = |s: &UnescapedString<'_>| s.value.to_string();
    let kind = match instruction {
        Instruction::Run(run) => {
            refuse_flags(lines, start, &run.options, &["mount", "network"])?;
            let parsed = command(&run.arguments).ok_or_else(|| error(unknown_form()))?;
            let command = match (&run.here_docs[..], parsed) {
                ([], parsed) => parsed,
                // `RUN <<EOF … EOF`: the document is the script the shell runs.
                ([script], Command::Shell(line)) if is_opener(&line) => {
                    Command::Shell(script.value.to_string())
                }
                _ => {
                    return Err(error(
                        "RUN with a heredoc fed to a command is not supported yet".into(),
                    ));
                }
            };
            let mut mounts = Vec::new();
            let mut network = None;
            for flag in &run.options {
                let value = flag.value.as_ref().map(value).unwrap_or_default();
                if flag.name.value == "mount" {
                    mounts.push(RunMount::parse(&value).map_err(&error)?);
                } else if matches!(value.as_str(), "default" | "none" | "host") {
                    network = Some(value);
                } else {
                    return Err(error(format!(
                        "unsupported RUN --network={value}: default, none or host"
                    )));
                }
            }
            StepKind::Run {
                command,
                mounts,
                network,
            }
        }
        Instruction::Copy(copy) => {
            refuse_flags(
                lines,
                start,
                &copy.options,
                &["from", "chown", "chmod", "link"],
            )?;
            copy_step(
                lines,
                start,
                &copy.options,
                &copy.src,
                value(&copy.dest),
                false,
            )?
        }
        Instruction::Add(add) => {
            refuse_flags(
                lines,
                start,
                &add.options,
                &["chown", "chmod", "link", "checksum"],
            )?;
            let step = copy_step(lines, start, &add.options, &add.src, value(&add.dest), true)?;
            if let StepKind::Copy { sources, .. } = &step {
                let remote = sources.iter().filter(|s| s.contains("://")).count();
                if let Some(other) = sources.iter().find(|s| s.contains("://") && !is_http(s)) {
                    return Err(error(format!(
                        "ADD of {other} is not supported yet: http and https URLs only"
                    )));
                }
                if remote > 0 && remote < sources.len() {
                    return Err(error(
                        "ADD of URLs together with local files is not supported yet".into(),
                    ));
                }
            }
            step
        }
        Instruction::Env(env) => StepKind::Env(value(&env.arguments)),
        Instruction::Arg(arg) => StepKind::Arg(value(&arg.arguments)),
        Instruction::Label(label) => StepKind::Label(value(&label.arguments)),
        Instruction::Workdir(workdir) => StepKind::Workdir(value(&workdir.arguments)),
        Instruction::User(user) => StepKind::User(value(&user.arguments)),
        Instruction::Expose(expose) => {
            StepKind::Expose(expose.arguments.iter().map(value).collect())
        }
        Instruction::Volume(volume) => StepKind::Volume(match &volume.arguments {
            parse_dockerfile::JsonOrStringArray::Json(paths) => {
                paths.value.iter().map(value).collect()
            }
            parse_dockerfile::JsonOrStringArray::String(paths) => paths.iter().map(value).collect(),
        }),
        Instruction::Stopsignal(signal) => StepKind::Stopsignal(value(&signal.arguments)),
        Instruction::Cmd(cmd) => {
            StepKind::Cmd(command(&cmd.arguments).ok_or_else(|| error(unknown_form()))?)
        }
        Instruction::Entrypoint(entrypoint) => StepKind::Entrypoint(
            command(&entrypoint.arguments).ok_or_else(|| error(unknown_form()))?,
        ),
        Instruction::Shell(shell) => StepKind::Shell(shell.arguments.iter().map(value).collect()),
        Instruction::Maintainer(maintainer) => StepKind::Maintainer(value(&maintainer.name)),
        Instruction::Healthcheck(check) => {
            let known = [
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ];
            refuse_flags(lines, start, &check.options, &known)?;
            let options = check
                .options
                .iter()
                .map(|flag| {
                    let value = flag.value.as_ref().map(value).unwrap_or_default();
                    (flag.name.value.to_string(), value)
                })
                .collect();
            let test = match &check.arguments {
                HealthcheckArguments::Cmd { arguments, .. } => {
                    Some(command(arguments).ok_or_else(|| error(unknown_form()))?)
                }
                HealthcheckArguments::None { .. } => None,
                _ => return Err(error(unknown_form())),
            };
            StepKind::Healthcheck { test, options }
        }
        Instruction::Onbuild(onbuild) => {
            let inner = &*onbuild.instruction;
            if matches!(
                inner,
                Instruction::Onbuild(_) | Instruction::From(_) | Instruction::Maintainer(_)
            ) {
                let name = instruction_text(text, keyword(inner).map_or(start, |s| s.start));
                let name = name
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_uppercase();
                return Err(error(format!("{name} isn't allowed as an ONBUILD trigger")));
            }
            // Checked now, run when a build starts from the image.
            let trigger = step(lines, text, inner)?;
            StepKind::Onbuild(trigger.text)
        }
        // The parser starts a new stage at every FROM; none is inside one.
        Instruction::From(_) => return Err(error("FROM inside a stage".into())),
        _ => return Err(error("this instruction is not supported yet".into())),
    };
    Ok(Step {
        line: lines.line(start),
        text: instruction_text(text, start),
        kind,
    })
}

fn copy_step(
    lines: &Lines,
    start: usize,
    options: &[Flag<'_>],
    parsed: &[Source<'_>],
    dest: String,
    extract: bool,
) -> Result<StepKind, DockerfileError> {
    let mut sources = Vec::new();
    let mut inline = None;
    for source in parsed {
        match source {
            Source::Path(path) => sources.push(path.value.to_string()),
            Source::HereDoc(doc) if inline.is_none() && parsed.len() == 1 => {
                if doc.expand && doc.value.contains('$') {
                    return Err(lines.error(
                        start,
                        "variables in a heredoc are not expanded yet: quote its delimiter (<<'EOF')",
                    ));
                }
                inline = Some(doc.value.to_string());
            }
            Source::HereDoc(_) => {
                return Err(
                    lines.error(start, "a heredoc among other sources is not supported yet")
                );
            }
            _ => return Err(lines.error(start, "a source form that is not supported yet")),
        }
    }
    let flag = |name: &str| {
        options
            .iter()
            .find(|f| f.name.value == name)
            .and_then(|f| f.value.as_ref())
            .map(|v| v.value.to_string())
    };
    Ok(StepKind::Copy {
        sources,
        inline,
        extract,
        dest,
        from: flag("from"),
        chown: flag("chown"),
        chmod: flag("chmod"),
        checksum: flag("checksum"),
    })
}

/// Whether ADD downloads `source`: an `http://` or `https://` URL.
pub(crate) fn is_http(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// Refuses any flag not in `supported`, naming it and the line.
fn refuse_flags(
    lines: &Lines,
    start: usize,
    options: &[Flag<'_>],
    supported: &[&str],
) -> Result<(), DockerfileError> {
    match options
        .iter()
        .find(|flag| !supported.contains(&flag.name.value.as_ref()))
    {
        Some(flag) => Err(lines.error(
            start,
            format!("the flag --{} is not supported yet", flag.name.value),
        )),
        None => Ok(()),
    }
}

/// A command in either form; None for a form the parser may add later.
fn command(parsed: &ParsedCommand<'_>) -> Option<Command> {
    match parsed {
        ParsedCommand::Exec(words) => Some(Command::Exec(
            words.value.iter().map(|w| w.value.to_string()).collect(),
        )),
        ParsedCommand::Shell(line) => Some(Command::Shell(line.value.to_string())),
        _ => None,
    }
}

/// Whether the shell line of a RUN with a heredoc is nothing but its opener (the parser
/// gives what follows `<<EOF`; empty when the document is the whole command).
fn is_opener(line: &str) -> bool {
    line.trim().is_empty()
}

fn unknown_form() -> String {
    "a command form that is not supported yet".into()
}

/// The instruction starting at `start` as one line: up to its last line's end, with
/// continuations joined.
fn instruction_text(text: &str, start: usize) -> String {
    let mut out = String::new();
    for (index, line) in text[start..].lines().enumerate() {
        let line = if index == 0 { line } else { line.trim_start() }.trim_end();
        match line.strip_suffix('\\') {
            Some(continued) => {
                out.push_str(continued.trim_end());
                out.push(' ');
            }
            None => {
                out.push_str(line);
                break;
            }
        }
    }
    out
}

/// The instruction's keyword, where it starts.
fn keyword(instruction: &Instruction<'_>) -> Option<std::ops::Range<usize>> {
    let span = match instruction {
        Instruction::Add(i) => i.add.span.clone(),
        Instruction::Arg(i) => i.arg.span.clone(),
        Instruction::Cmd(i) => i.cmd.span.clone(),
        Instruction::Copy(i) => i.copy.span.clone(),
        Instruction::Entrypoint(i) => i.entrypoint.span.clone(),
        Instruction::Env(i) => i.env.span.clone(),
        Instruction::Expose(i) => i.expose.span.clone(),
        Instruction::From(i) => i.from.span.clone(),
        Instruction::Healthcheck(i) => i.healthcheck.span.clone(),
        Instruction::Label(i) => i.label.span.clone(),
        Instruction::Maintainer(i) => i.maintainer.span.clone(),
        Instruction::Onbuild(i) => i.onbuild.span.clone(),
        Instruction::Run(i) => i.run.span.clone(),
        Instruction::Shell(i) => i.shell.span.clone(),
        Instruction::Stopsignal(i) => i.stopsignal.span.clone(),
        Instruction::User(i) => i.user.span.clone(),
        Instruction::Volume(i) => i.volume.span.clone(),
        Instruction::Workdir(i) => i.workdir.span.clone(),
        _ => return None,
    };
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_carry_typed_steps_with_their_lines() {
        let text = "ARG BASE=busybox\nFROM $BASE AS build\nRUN echo one \\\n    two\nCOPY --chown=1:1 a b /dest/\n\nFROM scratch\nCOPY --from=build /x /y\nCMD [\"/y\"]\n";
        let file = Dockerfile::parse(text).unwrap();
        assert_eq!(file.global_args, ["BASE=busybox"]);
        assert_eq!(file.stages.len(), 2);
        let build = &file.stages[0];
        assert_eq!(
            (build.base.as_str(), build.name.as_deref()),
            ("$BASE", Some("build"))
        );
        assert_eq!(build.steps[0].line, 3);
        assert_eq!(build.steps[0].text, "RUN echo one two");
        assert_eq!(
            build.steps[0].kind,
            StepKind::Run {
                command: Command::Shell("echo one \\\n    two".into()),
                mounts: vec![],
                network: None
            }
        );
        assert_eq!(
            build.steps[1].kind,
            StepKind::Copy {
                sources: vec!["a".into(), "b".into()],
                inline: None,
                extract: false,
                dest: "/dest/".into(),
                from: None,
                chown: Some("1:1".into()),
                chmod: None,
                checksum: None
            }
        );
        let last = &file.stages[1];
        assert_eq!(last.line, 7);
        assert_eq!(
            last.steps[1].kind,
            StepKind::Cmd(Command::Exec(vec!["/y".into()]))
        );
    }

    #[test]
    fn heredocs_and_health_checks_are_read() {
        let text = "FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\nHEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost\nHEALTHCHECK NONE\n";
        let file = Dockerfile::parse(text).unwrap();
        let steps = &file.stages[0].steps;
        assert_eq!(
            steps[0].kind,
            StepKind::Run {
                command: Command::Shell("echo one\necho two\n".into()),
                mounts: vec![],
                network: None
            }
        );
        assert_eq!(
            steps[1].kind,
            StepKind::Healthcheck {
                test: Some(Command::Shell("wget -q localhost".into())),
                options: vec![
                    ("interval".into(), "5s".into()),
                    ("retries".into(), "2".into())
                ],
            }
        );
        assert_eq!(
            steps[2].kind,
            StepKind::Healthcheck {
                test: None,
                options: vec![]
            }
        );
        let fed = Dockerfile::parse("FROM busybox\nRUN <<EOF python3\nx\nEOF\n").unwrap_err();
        assert!(fed.message.contains("fed to a command"), "{fed}");
    }

    #[test]
    fn errors_name_the_line() {
        let unknown = Dockerfile::parse("FROM busybox\nRUN true\nFROBNICATE now\n").unwrap_err();
        assert_eq!(unknown.line, 3, "{unknown}");
        let flag = Dockerfile::parse("FROM busybox\nRUN --security=insecure true\n").unwrap_err();
        assert_eq!(
            flag.to_string(),
            "Dockerfile:2: the flag --security is not supported yet"
        );
        let secret =
            Dockerfile::parse("FROM busybox\nRUN --mount=type=secret,id=x true\n").unwrap_err();
        assert_eq!(
            secret.to_string(),
            "Dockerfile:2: --mount=type=secret is not supported yet"
        );
        let git = Dockerfile::parse("FROM busybox\n\nADD git://example.com/x /x\n").unwrap_err();
        assert_eq!(git.line, 3);
        assert!(git.message.contains("http and https URLs only"), "{git}");
        assert!(Dockerfile::parse("RUN true\n").is_err());
    }
}

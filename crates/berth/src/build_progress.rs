//! `berth build`'s output, as BuildKit shows a build: a numbered entry per step with its
//! time or `CACHED`, what a RUN printed under its step, then the export. On a terminal
//! (`--progress tty`, or `auto` on one) the block is redrawn as it goes, the running step
//! counting up with its last lines of output beneath; otherwise (`plain`) every event is
//! a line of its own, as BuildKit's plain progress writes them. The daemon speaks the
//! classic builder's stream (`Step N/T : …`, ` ---> Using cache`, ` ---> <id>`); this
//! turns it into that display.

use std::io::Write;
use std::time::{Duration, Instant};

/// How the build is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A line per event.
    Plain,
    /// Redrawn in place on a terminal.
    Tty,
}

/// One step as shown.
struct Step {
    label: String,
    started: Instant,
    cached: bool,
    took: Option<Duration>,
    output: Vec<String>,
}

/// The build's display.
pub(crate) struct BuildDisplay {
    mode: Mode,
    started: Instant,
    steps: Vec<Step>,
    /// How many lines the last redraw wrote (tty).
    drawn: usize,
    /// A partial line of output waiting for its end.
    pending: String,
}

/// Lines of a running step's output kept beneath it on a terminal.
const TAIL: usize = 6;

impl BuildDisplay {
    pub(crate) fn new(mode: Mode) -> Self {
        Self {
            mode,
            started: Instant::now(),
            steps: Vec::new(),
            drawn: 0,
            pending: String::new(),
        }
    }

    /// Takes one `stream` message of the daemon.
    pub(crate) fn stream(&mut self, text: &str) -> std::io::Result<()> {
        self.pending.push_str(text);
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            self.line(line.trim_end_matches('\n'))?;
        }
        self.redraw()
    }

    fn line(&mut self, line: &str) -> std::io::Result<()> {
        if let Some(rest) = line.strip_prefix("Step ") {
            self.finish_step()?;
            let (count, text) = rest.split_once(" : ").unwrap_or((rest, ""));
            self.steps.push(Step {
                label: format!("[{count}] {text}"),
                started: Instant::now(),
                cached: false,
                took: None,
                output: Vec::new(),
            });
            return self.plain(&format!(
                "#{} {}",
                self.steps.len(),
                self.steps.last().map_or("", |s| &s.label)
            ));
        }
        if line == " ---> Using cache" {
            if let Some(step) = self.steps.last_mut() {
                step.cached = true;
            }
            return Ok(());
        }
        if line.starts_with(" ---> Running in ") {
            return Ok(());
        }
        if let Some(id) = line.strip_prefix(" ---> ")
            && id.len() == 12
        {
            return self.finish_step();
        }
        if let Some(id) = line.strip_prefix("Successfully built ") {
            self.finish_step()?;
            return self.export(&format!("writing image sha256:{id} done"));
        }
        if let Some(name) = line.strip_prefix("Successfully tagged ") {
            return self.export(&format!("naming to {name} done"));
        }
        let number = self.steps.len();
        let elapsed = self
            .steps
            .last()
            .map(|s| s.started.elapsed())
            .unwrap_or_default();
        if let Some(step) = self.steps.last_mut() {
            step.output.push(line.to_string());
        }
        self.plain(&format!("#{number} {:.3} {line}", elapsed.as_secs_f64()))
    }

    /// Ends the running step, if one is.
    fn finish_step(&mut self) -> std::io::Result<()> {
        let Some(step) = self.steps.last_mut().filter(|s| s.took.is_none()) else {
            return Ok(());
        };
        let took = step.started.elapsed();
        step.took = Some(took);
        let end = if step.cached {
            "CACHED".to_string()
        } else {
            format!("DONE {:.1}s", took.as_secs_f64())
        };
        let number = self.steps.len();
        self.plain(&format!("#{number} {end}\n"))
    }

    /// A line of the export (after the last step).
    fn export(&mut self, line: &str) -> std::io::Result<()> {
        let exporting = self
            .steps
            .last()
            .is_some_and(|s| s.label == "exporting to image");
        if !exporting {
            self.steps.push(Step {
                label: "exporting to image".into(),
                started: Instant::now(),
                cached: false,
                took: None,
                output: Vec::new(),
            });
            self.plain(&format!("#{} exporting to image", self.steps.len()))?;
        }
        if let Some(step) = self.steps.last_mut() {
            step.output.push(line.to_string());
        }
        self.plain(&format!("#{} {line}", self.steps.len()))
    }

    /// Ends the display once the daemon is done.
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(&rest)?;
        }
        self.finish_step()?;
        self.redraw()
    }

    /// Writes `line` in plain mode.
    fn plain(&self, line: &str) -> std::io::Result<()> {
        if self.mode != Mode::Plain {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()
    }

    /// Redraws the block in tty mode; the clock ticks with it.
    pub(crate) fn redraw(&mut self) -> std::io::Result<()> {
        if self.mode != Mode::Tty {
            return Ok(());
        }
        let done = self.steps.iter().filter(|s| s.took.is_some()).count();
        let total = self.steps.len();
        let finished = total > 0 && done == total;
        let mut block = vec![format!(
            "[+] Building {:.1}s ({done}/{total}){}",
            self.started.elapsed().as_secs_f64(),
            if finished { " FINISHED" } else { "" }
        )];
        for step in &self.steps {
            let took = step.took.unwrap_or_else(|| step.started.elapsed());
            let label = if step.cached {
                format!("CACHED {}", step.label)
            } else {
                step.label.clone()
            };
            block.push(format!(
                " => {:<60} {:>5.1}s",
                truncate(&label, 60),
                took.as_secs_f64()
            ));
            if step.took.is_none() {
                let tail = step.output.len().saturating_sub(TAIL);
                block.extend(
                    step.output[tail..]
                        .iter()
                        .map(|l| format!(" => => {}", truncate(l, 70))),
                );
            }
        }
        let mut out = std::io::stdout().lock();
        if self.drawn > 0 {
            write!(out, "\x1b[{}A\r\x1b[J", self.drawn)?;
        }
        for line in &block {
            writeln!(out, "{line}")?;
        }
        self.drawn = block.len();
        out.flush()
    }
}

/// At most `width` characters of `text`.
fn truncate(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_steps_become_numbered_entries() {
        let mut display = BuildDisplay::new(Mode::Tty);
        for text in [
            "Step 1/3 : FROM busybox\n",
            "Step 2/3 : RUN echo hi\n ---> Running in abc\n",
            "hi\n",
            " ---> 0123456789ab\nStep 3/3 : COPY a /a\n ---> Using cache\n ---> ba9876543210\n",
        ] {
            for line in text.lines() {
                display.line(line).unwrap();
            }
        }
        let labels: Vec<(&str, bool, bool)> = display
            .steps
            .iter()
            .map(|s| (s.label.as_str(), s.cached, s.took.is_some()))
            .collect();
        assert_eq!(
            labels,
            [
                ("[1/3] FROM busybox", false, true),
                ("[2/3] RUN echo hi", false, true),
                ("[3/3] COPY a /a", true, true)
            ]
        );
        assert_eq!(display.steps[1].output, ["hi"]);
    }
}

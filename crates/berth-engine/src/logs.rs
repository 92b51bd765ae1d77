//! Container logs in Docker's json-file format: one JSON object per line of output,
//! `{"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`, so the
//! files read the same as Docker's. With `--log-opt max-size` the file is rotated as
//! Docker rotates it: `LOG.1` is the newest old file, up to `max-file` files in all.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One line of a container's output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    /// The text, with its newline when it had one.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the monitor read it, RFC 3339 with nanoseconds.
    pub time: String,
}

/// Appends the lines of `chunk` from `stream` to the log.
pub(crate) fn append(log: &mut impl Write, stream: &str, chunk: &[u8]) -> std::io::Result<()> {
    let time = berth_runtime::state::now_rfc3339();
    for line in chunk.split_inclusive(|b| *b == b'\n') {
        let entry = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: stream.to_string(),
            time: time.clone(),
        };
        let mut text = serde_json::to_vec(&entry).unwrap_or_default();
        text.push(b'\n');
        log.write_all(&text)?;
    }
    Ok(())
}

/// `--log-opt max-size` and `max-file`, as the json-file driver reads them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rotation {
    max_size: u64,
    max_files: u32,
}

impl Rotation {
    /// The rotation a log config asks for; None when it asks for none. Unknown drivers
    /// and options, and bad sizes, are refused by name.
    pub(crate) fn of(config: &crate::model::LogConfig) -> crate::Result<Option<Self>> {
        let invalid = |m: String| crate::Error::Invalid(m);
        if !matches!(config.kind.as_str(), "" | "json-file") {
            return Err(invalid(format!(
                "logging driver {:?} is not supported: berth writes json-file logs",
                config.kind
            )));
        }
        let mut max_size = None;
        let mut max_files = 1;
        for (key, value) in &config.config {
            match key.as_str() {
                "max-size" if value != "-1" => {
                    max_size = Some(parse_size(value).filter(|s| *s > 0).ok_or_else(|| {
                        invalid(format!(
                            "invalid max-size {value:?}: want a size such as 10m"
                        ))
                    })?);
                }
                "max-size" => {}
                "max-file" => {
                    max_files = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        invalid(format!(
                            "invalid max-file {value:?}: want a count of at least 1"
                        ))
                    })?;
                }
                "compress" | "labels" | "env" | "tag" => {}
                other => {
                    return Err(invalid(format!(
                        "unknown log opt '{other}' for json-file log driver"
                    )));
                }
            }
        }
        if max_files > 1 && max_size.is_none() {
            return Err(invalid("max-file cannot be set without max-size".into()));
        }
        Ok(max_size.map(|max_size| Self {
            max_size,
            max_files,
        }))
    }
}

/// `10m`, `1k`, `512b`, `2g` or plain bytes, in 1024 multiples as Docker reads them.
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, scale) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1 << 10),
        'm' => (&lower[..lower.len() - 1], 1 << 20),
        'g' => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// The `n`th old file of the log at `path` (1 is the newest).
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// A log being written, rotated when it would pass its size limit.
pub(crate) struct LogWriter {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    rotation: Option<Rotation>,
}

impl LogWriter {
    pub(crate) fn open(path: &Path, rotation: Option<Rotation>) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
        })
    }

    /// Appends the lines of `chunk` from `stream`, rotating first wherever the next line
    /// would not fit.
    pub(crate) fn append(&mut self, stream: &str, chunk: &[u8]) -> std::io::Result<()> {
        for line in chunk.split_inclusive(|b| *b == b'\n') {
            let mut encoded = Vec::new();
            append(&mut encoded, stream, line)?;
            if let Some(rotation) = self.rotation
                && self.size > 0
                && self.size + encoded.len() as u64 > rotation.max_size
            {
                self.rotate(rotation)?;
            }
            self.file.write_all(&encoded)?;
            self.size += encoded.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self, rotation: Rotation) -> std::io::Result<()> {
        if rotation.max_files > 1 {
            for n in (1..rotation.max_files - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = std::fs::File::create(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The file written after `held` when the log at `current` was rotated since `held` was
/// opened: the next newer old file, or the current one; None while `held` is current, or
/// while a rotation is half done. A file rotated out of existence is followed by the
/// oldest one left.
pub fn next_file(held: &std::fs::File, current: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    let inode = |path: &Path| std::fs::metadata(path).ok().map(|m| m.ino());
    let held_meta = held.metadata().ok()?;
    if inode(current)? == held_meta.ino() {
        return None;
    }
    let old = rotated_files(current);
    let position = old
        .iter()
        .position(|path| inode(path) == Some(held_meta.ino()));
    let newer = match position {
        Some(0) => current.to_path_buf(),
        Some(i) => old[i - 1].clone(),
        // Deleted: rotated past max-file while we were reading it.
        None if held_meta.nlink() == 0 => old.last().cloned().unwrap_or(current.to_path_buf()),
        // Being renamed right now: look again on the next round.
        None => return None,
    };
    std::fs::File::open(newer).ok()
}

/// The rotated files of the log at `current`, newest first. A rotation renames them one
/// by one, so a gap of a missing number is stepped over.
fn rotated_files(current: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut misses = 0;
    for n in 1.. {
        let path = rotated(current, n);
        if path.exists() {
            files.push(path);
            misses = 0;
        } else {
            misses += 1;
            if misses > 2 {
                break;
            }
        }
    }
    files
}

/// Every entry of the log at `path`, its rotated files first, oldest to newest.
pub fn read_all(path: &Path) -> std::io::Result<Vec<LogEntry>> {
    let mut entries = Vec::new();
    for old in rotated_files(path).iter().rev() {
        entries.extend(read_from(old, 0)?.0);
    }
    entries.extend(read_from(path, 0)?.0);
    Ok(entries)
}

/// Every entry of the log at `path` from byte `offset` on, and the offset after them.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<LogEntry>, u64)> {
    use std::io::{Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = std::io::BufReader::new(file);
    let mut entries = Vec::new();
    let mut position = offset;
    let mut line = String::new();
    // Only whole lines: the monitor may be writing the next one.
    while reader.read_line(&mut line)? > 0 && line.ends_with('\n') {
        position += line.len() as u64;
        if let Ok(entry) = serde_json::from_str(&line) {
            entries.push(entry);
        }
        line.clear();
    }
    Ok((entries, position))
}

/// Follows a container's log from `offset` of the file `log` and sends each batch of
/// entries until the run that was current when following began has ended and the log
/// is drained, or the receiver is gone. Polls every 20 ms. Shared by `docker logs -f`
/// and `kubectl logs -f`.
pub async fn follow(
    engine: std::sync::Arc<crate::Engine>,
    container: crate::Container,
    log: std::fs::File,
    offset: u64,
    batches: tokio::sync::mpsc::Sender<Vec<LogEntry>>,
) {
    let exits = container.state.exits;
    let current = engine.log_path(&container);
    let mut log = log;
    let mut offset = offset;
    let mut ended = false;
    loop {
        // Whether the run had ended before this read: then what it finds is all there is.
        ended = ended
            || engine.container(&container.id).map_or(true, |c| {
                c.state.exits > exits || (exits > 0 && c.state.status != crate::Status::Running)
            });
        let path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&log)
        ));
        let Ok((entries, next)) = read_from(&path, offset) else {
            return;
        };
        offset = next;
        if !entries.is_empty() {
            if batches.send(entries).await.is_err() {
                return;
            }
            continue;
        }
        if let Some(newer) = next_file(&log, &current) {
            // The monitor rotated the log: what we hold is complete, go on in the next one.
            (log, offset) = (newer, 0);
            continue;
        }
        if ended {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut file = std::fs::File::create(&path).unwrap();
        append(&mut file, "stdout", b"one\ntwo\nthr").unwrap();
        let (entries, offset) = read_from(&path, 0).unwrap();
        let texts: Vec<&str> = entries.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(texts, ["one\n", "two\n", "thr"]);
        file.write_all(b"{\"log\":\"partial").unwrap();
        assert_eq!(read_from(&path, offset).unwrap().0, vec![]);
    }

    #[test]
    fn logs_rotate_at_their_size_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let config = crate::model::LogConfig {
            kind: "json-file".into(),
            config: [
                ("max-size".to_string(), "200".to_string()),
                ("max-file".to_string(), "3".to_string()),
            ]
            .into(),
        };
        let rotation = Rotation::of(&config).unwrap();
        let mut writer = LogWriter::open(&path, rotation).unwrap();
        for i in 0..20 {
            writer
                .append("stdout", format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(rotated(&path, 2).exists() && !rotated(&path, 3).exists());
        for file in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            assert!(std::fs::metadata(&file).unwrap().len() <= 200, "{file:?}");
        }
        let texts: Vec<String> = read_all(&path)
            .unwrap()
            .into_iter()
            .map(|e| e.log)
            .collect();
        let last = texts.last().unwrap().clone();
        assert_eq!(last, "line 19\n");
        let numbers: Vec<u32> = texts
            .iter()
            .map(|t| t[5..].trim().parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(numbers[0] > 0, "the oldest lines went");
    }

    #[test]
    fn log_options_are_checked() {
        let config = |pairs: &[(&str, &str)]| crate::model::LogConfig {
            kind: String::new(),
            config: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        assert_eq!(Rotation::of(&config(&[])).unwrap(), None);
        assert!(Rotation::of(&config(&[("max-size", "1x")])).is_err());
        assert!(Rotation::of(&config(&[("max-file", "3")])).is_err());
        assert!(Rotation::of(&config(&[("max-sise", "1m")])).is_err());
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("512b"), Some(512));
    }
}

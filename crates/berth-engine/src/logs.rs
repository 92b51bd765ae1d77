//! Container logs in Docker's json-file format: one JSON object per line of output,
//! `{"log":"text\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`, so the
//! files read the same as Docker's.

use std::io::{BufRead, Write};
use std::path::Path;

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
}

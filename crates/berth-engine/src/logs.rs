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
    let time = timestamp(std::time::SystemTime::now());
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

/// RFC 3339 UTC with nanoseconds, as Docker stamps log lines.
pub fn timestamp(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(86400));
    let rem = secs.rem_euclid(86400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// The civil date of a day count from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_with_nanoseconds() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.000000005Z");
    }

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

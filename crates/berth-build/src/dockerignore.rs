//! `.dockerignore`: which files of a build context a client leaves out of what it sends,
//! as Docker's patternmatcher decides — one pattern per line (`#` comments, a leading `/`
//! ignored), Go's `filepath.Match` syntax with `**` for any number of directories, `!`
//! for an exception, the last matching line deciding, and a path left out when it or any
//! directory above it matches.

use std::io::Write;
use std::path::Path;

use glob::{MatchOptions, Pattern};

/// The rules of one `.dockerignore`.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    rules: Vec<(Pattern, bool)>,
}

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl DockerIgnore {
    /// The rules of `text`; a line that is not a valid pattern is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
            let pattern =
                Pattern::new(pattern).map_err(|e| format!(".dockerignore: {line}: {e}"))?;
            rules.push((pattern, exception));
        }
        Ok(Self { rules })
    }

    /// Whether `path` (relative to the context, `/`-separated) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (pattern, exception) in &self.rules {
            let parents = path.match_indices('/').map(|(i, _)| &path[..i]);
            if std::iter::once(path)
                .chain(parents)
                .any(|candidate| pattern.matches_with(candidate, OPTIONS))
            {
                excluded = !exception;
            }
        }
        excluded
    }

    /// Whether some exception could bring back a path below an excluded directory.
    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(_, exception)| *exception)
    }
}

/// The build context at `dir` as a tar, without what its `.dockerignore` leaves out; the
/// Dockerfile (at `dockerfile`, relative to `dir`) is always sent. `extra` is one more
/// file (name, content): a Dockerfile from outside the context.
pub fn context_archive(
    dir: &Path,
    dockerfile: &str,
    extra: Option<(&str, &[u8])>,
) -> Result<Vec<u8>, String> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => DockerIgnore::parse(&text)?,
        Err(_) => DockerIgnore::default(),
    };
    let mut archive = tar::Builder::new(Vec::new());
    archive.follow_symlinks(false);
    append_tree(&mut archive, dir, "", &ignore, dockerfile)?;
    if let Some((name, data)) = extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        archive
            .append_data(&mut header, name, data)
            .map_err(|e| e.to_string())?;
    }
    let mut bytes = archive.into_inner().map_err(|e| e.to_string())?;
    bytes.flush().map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn append_tree(
    archive: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    prefix: &str,
    ignore: &DockerIgnore,
    dockerfile: &str,
) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let excluded = ignore.excludes(&relative) && relative != dockerfile;
        if !excluded {
            archive
                .append_path_with_name(entry.path(), &relative)
                .map_err(|e| format!("{relative}: {e}"))?;
        }
        if is_dir && (!excluded || ignore.has_exceptions()) {
            append_tree(archive, &entry.path(), &relative, ignore, dockerfile)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_decide_as_docker_s_do() {
        let ignore = DockerIgnore::parse(
            "# comment\n*.log\n/build\n**/secret*\n!important.log\ndocs/*.md\n",
        )
        .unwrap();
        assert!(ignore.excludes("debug.log"));
        assert!(
            !ignore.excludes("important.log"),
            "the later exception wins"
        );
        assert!(!ignore.excludes("sub/debug.log"), "* does not cross /");
        assert!(
            ignore.excludes("build/out/app"),
            "below an excluded directory"
        );
        assert!(ignore.excludes("a/b/secret.txt"));
        assert!(ignore.excludes("secret.txt"), "** matches no directory too");
        assert!(ignore.excludes("docs/readme.md"));
        assert!(!ignore.excludes("docs/sub/readme.md"));
        assert!(!ignore.excludes("src/main.rs"));
        assert!(DockerIgnore::parse("[unclosed\n").is_err());
    }
}

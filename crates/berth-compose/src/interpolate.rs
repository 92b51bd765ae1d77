//! Compose's interpolation, as the compose-spec defines it: `$VAR` and `${VAR}`,
//! `${VAR:-default}` and `${VAR-default}`, `${VAR:+alternative}` and `${VAR+alternative}`,
//! `${VAR:?error}` and `${VAR?error}`, and `$$` for a literal `$`. Values come from the
//! environment, then the project's `.env` file. Unlike a Dockerfile's words nothing is
//! split or unquoted: YAML has done that already.

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `${VAR:?message}` with VAR unset (or empty).
    #[error("required variable {name} is missing a value: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The file's message.
        message: String,
    },
    /// A `${` without its `}`, or a form the spec does not define.
    #[error("invalid interpolation format for {0:?}")]
    Invalid(String),
}

/// `text` with its variables replaced through `lookup`.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end =
                closing_brace(braced).ok_or_else(|| InterpolationError::Invalid(text.into()))?;
            out.push_str(&expand(&braced[..end], lookup, text)?);
            rest = &braced[end + 1..];
        } else {
            let name_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_end == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&after[..name_end]).unwrap_or_default());
            }
            rest = &after[name_end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Where the `}` closing a `${` is, nested `${…}` in a default skipped.
fn closing_brace(text: &str) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The inside of `${…}`.
fn expand(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    whole: &str,
) -> Result<String, InterpolationError> {
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, modifier) = inner.split_at(name_end);
    if name.is_empty() {
        return Err(InterpolationError::Invalid(whole.into()));
    }
    let value = lookup(name);
    let (colon, operator, word) = match modifier.strip_prefix(':') {
        Some(rest) => (true, rest.chars().next(), rest.get(1..).unwrap_or("")),
        None => (
            false,
            modifier.chars().next(),
            modifier.get(1..).unwrap_or(""),
        ),
    };
    let set = match colon {
        true => value.as_deref().is_some_and(|v| !v.is_empty()),
        false => value.is_some(),
    };
    match operator {
        None => Ok(value.unwrap_or_default()),
        Some('-') if set => Ok(value.unwrap_or_default()),
        Some('-') => interpolate(word, lookup),
        Some('+') if set => interpolate(word, lookup),
        Some('+') => Ok(String::new()),
        Some('?') if set => Ok(value.unwrap_or_default()),
        Some('?') => Err(InterpolationError::Required {
            name: name.into(),
            message: interpolate(word, lookup)?,
        }),
        Some(_) => Err(InterpolationError::Invalid(whole.into())),
    }
}

/// The `KEY=value` lines of a `.env` file (comments, blank lines and `export ` skipped;
/// a value in quotes loses them).
pub fn dotenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
                .unwrap_or(value);
            Some((key.trim().to_string(), unquoted.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "TAG" => Some("1.2".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_as_the_compose_spec_says() {
        let run = |text| interpolate(text, &lookup).unwrap();
        assert_eq!(run("web:${TAG}"), "web:1.2");
        assert_eq!(run("web:$TAG-x"), "web:1.2-x");
        assert_eq!(run("${MISSING:-latest}"), "latest");
        assert_eq!(run("${EMPTY:-x}|${EMPTY-x}"), "x|");
        assert_eq!(run("${TAG:+set}${MISSING+set}"), "set");
        assert_eq!(run("${MISSING:-${TAG}}"), "1.2");
        assert_eq!(
            run("cost: $$5 and 'quotes' stay"),
            "cost: $5 and 'quotes' stay"
        );
        assert_eq!(
            interpolate("${MISSING:?give a port}", &lookup),
            Err(InterpolationError::Required {
                name: "MISSING".into(),
                message: "give a port".into()
            })
        );
        assert!(interpolate("${TAG", &lookup).is_err());
    }

    #[test]
    fn dotenv_files_read_as_compose_reads_them() {
        let pairs = dotenv("# comment\nTAG=2\nexport NAME=\"web app\"\n\nQUOTED='x'\n");
        assert_eq!(
            pairs,
            [
                ("TAG".to_string(), "2".to_string()),
                ("NAME".into(), "web app".into()),
                ("QUOTED".into(), "x".into())
            ]
        );
    }
}

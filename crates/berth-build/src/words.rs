//! The Dockerfile's shell-like words, as BuildKit's `shell.Lex` reads them: variables
//! (`$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alternative}`,
//! `${VAR+alternative}`) expanded outside single quotes, quotes removed, backslash
//! escapes honoured, and the text split on unquoted whitespace.

/// Why a word could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordError {
    /// A quote or `${` that is never closed.
    #[error("unterminated {0}")]
    Unterminated(&'static str),
    /// A `${…}` form this reader does not know.
    #[error("unsupported modifier ({0}) in substitution")]
    Modifier(String),
}

/// `text` split into words, variables expanded through `lookup`.
pub fn words(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, WordError> {
    Lexer::new(text, lookup).words()
}

/// `text` as one word (whitespace kept), variables expanded and quotes removed.
pub fn word(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, WordError> {
    let mut lexer = Lexer::new(text, lookup);
    lexer.keep_spaces = true;
    Ok(lexer.words()?.concat())
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    keep_spaces: bool,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            chars: text.chars().peekable(),
            lookup,
            keep_spaces: false,
        }
    }

    fn words(&mut self) -> Result<Vec<String>, WordError> {
        let mut words = Vec::new();
        let mut current = String::new();
        let mut started = false;
        while let Some(c) = self.chars.next() {
            match c {
                c if c.is_whitespace() && !self.keep_spaces => {
                    if started {
                        words.push(std::mem::take(&mut current));
                        started = false;
                    }
                    continue;
                }
                '\'' => loop {
                    match self.chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err(WordError::Unterminated("single quote")),
                    }
                },
                '"' => self.double_quoted(&mut current)?,
                '\\' => {
                    if let Some(next) = self.chars.next() {
                        current.push(next);
                    }
                }
                '$' => current.push_str(&self.variable()?),
                c => current.push(c),
            }
            started = true;
        }
        if started {
            words.push(current);
        }
        Ok(words)
    }

    fn double_quoted(&mut self, out: &mut String) -> Result<(), WordError> {
        loop {
            match self.chars.next() {
                Some('"') => return Ok(()),
                Some('\\') => match self.chars.next() {
                    Some(c @ ('"' | '\\' | '$')) => out.push(c),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => return Err(WordError::Unterminated("double quote")),
                },
                Some('$') => out.push_str(&self.variable()?),
                Some(c) => out.push(c),
                None => return Err(WordError::Unterminated("double quote")),
            }
        }
    }

    /// What follows a `$`: a name, `{…}`, or the `$` itself.
    fn variable(&mut self) -> Result<String, WordError> {
        if self.chars.peek() == Some(&'{') {
            self.chars.next();
            return self.braced();
        }
        let mut name = String::new();
        while let Some(&c) = self.chars.peek() {
            if !(c.is_ascii_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.chars.next();
        }
        if name.is_empty() {
            return Ok("$".into());
        }
        Ok((self.lookup)(&name).unwrap_or_default())
    }

    fn braced(&mut self) -> Result<String, WordError> {
        let mut name = String::new();
        loop {
            match self.chars.next() {
                Some('}') => return Ok((self.lookup)(&name).unwrap_or_default()),
                Some('?') => {
                    self.until_brace()?;
                    return Err(WordError::Modifier("?".into()));
                }
                Some(c @ (':' | '-' | '+')) => {
                    let colon = c == ':';
                    let modifier = if colon { self.chars.next() } else { Some(c) };
                    let word = self.until_brace()?;
                    let value = (self.lookup)(&name);
                    let set = if colon {
                        value.as_deref().is_some_and(|v| !v.is_empty())
                    } else {
                        value.is_some()
                    };
                    return match modifier {
                        Some('-') => Ok(if set { value.unwrap_or_default() } else { word }),
                        Some('+') => Ok(if set { word } else { String::new() }),
                        other => Err(WordError::Modifier(format!(
                            "{}{}",
                            if colon { ":" } else { "" },
                            other.map(String::from).unwrap_or_default()
                        ))),
                    };
                }
                Some(c) => name.push(c),
                None => return Err(WordError::Unterminated("${")),
            }
        }
    }

    /// The word of a `${NAME:-word}` up to its closing brace, itself expanded.
    fn until_brace(&mut self) -> Result<String, WordError> {
        let mut out = String::new();
        loop {
            match self.chars.next() {
                Some('}') => return Ok(out),
                Some('$') => out.push_str(&self.variable()?),
                Some('\\') => out.extend(self.chars.next()),
                Some(c) => out.push(c),
                None => return Err(WordError::Unterminated("${")),
            }
        }
    }
}

/// `KEY=value` words (ENV, ARG, LABEL) as pairs; a word without `=` has no value.
pub fn pairs(words: Vec<String>) -> Vec<(String, Option<String>)> {
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((key, value)) => (key.to_string(), Some(value.to_string())),
            None => (word, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "NAME" => Some("berth".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn variables_expand_as_the_dockerfile_reference_says() {
        let expand = |text| word(text, &lookup).unwrap();
        assert_eq!(expand("$NAME/${NAME}"), "berth/berth");
        assert_eq!(expand("${MISSING:-fallback}"), "fallback");
        assert_eq!(expand("${EMPTY:-fallback}"), "fallback");
        assert_eq!(expand("${EMPTY-fallback}"), "");
        assert_eq!(expand("${NAME:+set}|${MISSING:+set}"), "set|");
        assert_eq!(expand("${MISSING:-$NAME}"), "berth");
        assert_eq!(expand(r"\$NAME '$NAME' $"), "$NAME $NAME $");
        assert_eq!(expand("a  b"), "a  b");
    }

    #[test]
    fn words_split_on_unquoted_whitespace_and_lose_their_quotes() {
        let split = |text| words(text, &lookup).unwrap();
        assert_eq!(
            split(r#"A=1 B="two words" C='$NAME' D=$NAME"#),
            ["A=1", "B=two words", "C=$NAME", "D=berth"]
        );
        assert_eq!(split(r#"say\ hi "\"quoted\"""#), ["say hi", "\"quoted\""]);
        assert_eq!(
            words("\"open", &lookup),
            Err(WordError::Unterminated("double quote"))
        );
        assert_eq!(
            words("${NAME?oops}", &lookup),
            Err(WordError::Modifier("?".into()))
        );
        assert_eq!(
            pairs(split("A=1 B")),
            [
                ("A".to_string(), Some("1".to_string())),
                ("B".to_string(), None)
            ]
        );
    }
}

//! Image references as people type them (`busybox`, `busybox:1.36`,
//! `docker.io/library/busybox`, `registry.local:5000/team/app:v1`), kept in Docker's
//! familiar form so that `docker images` shows `busybox`, not `docker.io/library/busybox`.

use crate::{Error, Result};

/// A repository name and a tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The repository in familiar form: `busybox`, `team/app`, `registry.local:5000/app`.
    pub repository: String,
    /// The tag; `latest` when none was given.
    pub tag: String,
}

impl Reference {
    /// Parses and normalises a reference; digests (`@sha256:…`) are not tags and are
    /// refused here.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::Invalid {
            what: "reference format".into(),
            reason: format!("{text:?}: {reason}"),
        };
        if text.contains('@') {
            return Err(invalid("a digest reference names content, not a tag"));
        }
        let last_slash = text.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match text[last_slash..].rfind(':') {
            Some(i) => (&text[..last_slash + i], &text[last_slash + i + 1..]),
            None => (text, "latest"),
        };
        let repository = repository
            .strip_prefix("docker.io/library/")
            .or_else(|| repository.strip_prefix("docker.io/"))
            .or_else(|| repository.strip_prefix("index.docker.io/library/"))
            .unwrap_or(repository);
        let parts: Vec<&str> = repository.split('/').collect();
        // Only a registry host (a first part followed by more) may carry a `:port`.
        let valid_repository = parts.iter().enumerate().all(|(i, part)| {
            let (name, port) = match part.split_once(':') {
                Some((host, port)) if i == 0 && parts.len() > 1 => (host, Some(port)),
                _ => (*part, None),
            };
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        });
        if !valid_repository {
            return Err(invalid(
                "repository name must be lowercase letters, digits and . _ - /",
            ));
        }
        let valid_tag = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid_tag {
            return Err(invalid("tag must be 1-128 letters, digits and . _ -"));
        }
        Ok(Self {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl Reference {
    /// The registry (`host[:port]`, `docker.io` by default) and the repository's path in
    /// it (`library/busybox` for Docker Hub's official images), as Docker splits them: a
    /// first part is a registry when it has a `.` or `:` or is `localhost`.
    pub fn registry_and_path(&self) -> (String, String) {
        match self.repository.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            Some(_) => ("docker.io".to_string(), self.repository.clone()),
            None => (
                "docker.io".to_string(),
                format!("library/{}", self.repository),
            ),
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_to_the_familiar_form() {
        let parse = |s| Reference::parse(s).unwrap().to_string();
        assert_eq!(parse("busybox"), "busybox:latest");
        assert_eq!(parse("docker.io/library/busybox:1.36"), "busybox:1.36");
        assert_eq!(
            parse("registry.local:5000/team/app"),
            "registry.local:5000/team/app:latest"
        );
        assert_eq!(
            parse("registry.local:5000/team/app:v1"),
            "registry.local:5000/team/app:v1"
        );
        let split = |s| Reference::parse(s).unwrap().registry_and_path();
        assert_eq!(
            split("busybox"),
            ("docker.io".into(), "library/busybox".into())
        );
        assert_eq!(split("team/app"), ("docker.io".into(), "team/app".into()));
        assert_eq!(
            split("127.0.0.1:5000/app"),
            ("127.0.0.1:5000".into(), "app".into())
        );
        assert_eq!(split("localhost/a/b"), ("localhost".into(), "a/b".into()));
        assert!(Reference::parse("Busybox").is_err());
        assert!(Reference::parse("app@sha256:abc").is_err());
        assert!(Reference::parse("app:bad/tag").is_err());
        assert!(Reference::parse("").is_err());
    }
}

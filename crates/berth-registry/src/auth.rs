//! Basic authentication from an htpasswd file, as distribution's `auth.htpasswd` does:
//! bcrypt hashes only (what `htpasswd -B` writes; other schemes are refused when the file
//! is read, naming the line), every request checked, a 401 with a `Basic` challenge
//! otherwise. bcrypt is slow by design, so credentials that passed once are remembered
//! in memory (by their SHA-256) and later requests with them cost a hash, not a bcrypt.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use axum::http::HeaderValue;
use base64::Engine as _;
use berth_image::Digest;

/// The users an htpasswd file lets in.
pub struct Htpasswd {
    users: HashMap<String, String>,
    passed: Mutex<HashSet<Digest>>,
}

impl Htpasswd {
    /// Reads `path`: `user:hash` lines, the hashes bcrypt's (`$2a$`, `$2b$`, `$2y$`).
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("{}:{}: not user:hash", path.display(), number + 1))?;
            if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
                return Err(format!(
                    "{}:{}: only bcrypt hashes are supported (htpasswd -B)",
                    path.display(),
                    number + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Self {
            users,
            passed: Mutex::new(HashSet::new()),
        })
    }

    /// Whether `authorization` (`Basic base64(user:password)`) names a user of the file
    /// with its password.
    pub fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(encoded) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let key = Digest::of(&decoded);
        if self.passed.lock().expect("passed").contains(&key) {
            return true;
        }
        let Some((user, password)) = std::str::from_utf8(&decoded)
            .ok()
            .and_then(|t| t.split_once(':'))
        else {
            return false;
        };
        let allowed = self
            .users
            .get(user)
            .is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false));
        if allowed {
            self.passed.lock().expect("passed").insert(key);
        }
        allowed
    }
}

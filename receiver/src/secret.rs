//! The shared secrets a receiver accepts, and how a presented secret is checked against them.
//!
//! PassFort sends its shared secret twice: as `Authorization: Bearer S` and as the `secret` field
//! of every webhook. Both are checked against a [`SecretSet`], which holds one or more accepted
//! secrets so that a secret can be rotated without refusing a single delivery: accept the new and
//! the previous one, change the secret in PassFort, then drop the previous one.
//!
//! Only SHA-256 digests of the secrets are kept. A presented secret is hashed and its digest is
//! compared with **every** accepted digest in constant time ([`subtle::ConstantTimeEq`]), so the
//! time taken tells an attacker neither how many leading bytes matched, nor how long the secret
//! is, nor which of the accepted secrets matched.

use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use subtle::{Choice, ConstantTimeEq};

/// Why a set of secrets could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// No secret was given: a receiver that accepts nothing would answer 401 to everything.
    #[error("no webhook secret was given")]
    Empty,
    /// An empty string was given as a secret: it would make the check meaningless.
    #[error("a webhook secret must not be empty")]
    EmptySecret,
}

/// The environment variable holding the current shared secret.
pub const SECRET_ENV: &str = "PASSFORT_WEBHOOK_SECRET";
/// The environment variable holding the previous shared secret, accepted during a rotation.
pub const PREVIOUS_SECRET_ENV: &str = "PASSFORT_WEBHOOK_SECRET_PREVIOUS";
/// Every environment variable that may hold a webhook secret: what a child process (the
/// `exec:` sink) must never inherit.
pub const SECRET_ENV_VARS: [&str; 2] = [SECRET_ENV, PREVIOUS_SECRET_ENV];

/// Why the secrets could not be read from the environment or a secret file.
#[derive(Debug, thiserror::Error)]
pub enum SecretSourceError {
    /// No secret in the environment or the secret file.
    #[error("no webhook secret: set {SECRET_ENV} (and optionally {PREVIOUS_SECRET_ENV}) or pass --secret-file PATH")]
    NoSecret,
    /// The secret file could not be read.
    #[error("cannot read the secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A secret is unusable.
    #[error("{0}")]
    Secret(#[from] SecretError),
}

/// The secrets a receiver accepts (the current one, and during a rotation the previous ones).
///
/// `Debug` and `Display` show only how many secrets there are, never the secrets.
///
/// ```
/// use passfort_receiver::SecretSet;
/// let secrets = SecretSet::new(["new-secret", "old-secret"]).unwrap();
/// assert!(secrets.accepts(b"old-secret"));
/// assert!(!secrets.accepts(b"guess"));
/// assert_eq!(format!("{secrets:?}"), "SecretSet { secrets: 2 }");
/// ```
#[derive(Clone)]
pub struct SecretSet {
    digests: Vec<[u8; 32]>,
}

impl SecretSet {
    /// Accepts each of `secrets`. Fails when there is none or one is empty.
    pub fn new<I, S>(secrets: I) -> Result<Self, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut digests = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                return Err(SecretError::EmptySecret);
            }
            digests.push(digest(secret));
        }
        if digests.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self { digests })
    }

    /// Reads the accepted secrets the way every binary built on this crate does: from
    /// `secret_file` (first line, or every non-empty line for a rotation) or
    /// `PASSFORT_WEBHOOK_SECRET`, plus `PASSFORT_WEBHOOK_SECRET_PREVIOUS` if set. Secrets never
    /// come from a command-line argument, where any user of the machine could read them.
    pub fn from_env(secret_file: Option<&Path>) -> Result<Self, SecretSourceError> {
        let mut secrets: Vec<String> = Vec::new();
        if let Some(path) = secret_file {
            let text = std::fs::read_to_string(path).map_err(|source| SecretSourceError::File {
                path: path.to_path_buf(),
                source,
            })?;
            secrets.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        } else if let Ok(secret) = std::env::var(SECRET_ENV) {
            if !secret.is_empty() {
                secrets.push(secret);
            }
        }
        if secrets.is_empty() {
            return Err(SecretSourceError::NoSecret);
        }
        if let Ok(previous) = std::env::var(PREVIOUS_SECRET_ENV) {
            if !previous.is_empty() {
                secrets.push(previous);
            }
        }
        Ok(Self::new(secrets)?)
    }

    /// Accepts one secret.
    pub fn single(secret: impl AsRef<[u8]>) -> Result<Self, SecretError> {
        Self::new([secret])
    }

    /// Whether `candidate` is one of the accepted secrets, in time that depends only on the
    /// candidate's length (which the sender chose) and the number of accepted secrets.
    pub fn accepts(&self, candidate: &[u8]) -> bool {
        let presented = digest(candidate);
        let mut any = Choice::from(0u8);
        for accepted in &self.digests {
            any |= accepted.ct_eq(&presented);
        }
        bool::from(any)
    }

    /// How many secrets are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Always false: a set is never empty (see [`SecretSet::new`]).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSet")
            .field("secrets", &self.digests.len())
            .finish()
    }
}

impl fmt::Display for SecretSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} accepted secret(s)", self.digests.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_listed_secret_and_nothing_else() {
        let set = SecretSet::new(["current", "previous"]).unwrap();
        assert!(set.accepts(b"current"));
        assert!(set.accepts(b"previous"));
        assert!(!set.accepts(b"curren"));
        assert!(!set.accepts(b"current "));
        assert!(!set.accepts(b""));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn refuses_an_empty_set_or_an_empty_secret() {
        assert_eq!(
            SecretSet::new(Vec::<String>::new()).unwrap_err(),
            SecretError::Empty
        );
        assert_eq!(
            SecretSet::new(["ok", ""]).unwrap_err(),
            SecretError::EmptySecret
        );
    }

    #[test]
    fn never_prints_a_secret() {
        let set = SecretSet::single("hunter2-very-secret").unwrap();
        let shown = format!("{set:?} {set} {:#?}", set);
        assert!(!shown.contains("hunter2"));
    }
}

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

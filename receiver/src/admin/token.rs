//! Who may act from the admin page: the admin token, checked in constant time.
//!
//! Reading the page is open to whoever reaches the admin address (it is meant to be private);
//! changing the queue (retry, drop, replay) needs the token configured with
//! `PASSFORT_ADMIN_TOKEN` (or a token file), sent as `Authorization: Bearer TOKEN` on every
//! action. A header and never a cookie: a browser attaches cookies to a request another site
//! makes, but never this header, so no cross-site request can act. Without a configured token
//! every action is refused: an admin address reachable by mistake cannot change anything.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// The environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "PASSFORT_ADMIN_TOKEN";

/// The shortest token accepted: shorter ones can be guessed over the network.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a configured token is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    /// Fewer than [`MIN_TOKEN_LEN`] characters.
    #[error("the admin token must have at least {MIN_TOKEN_LEN} characters")]
    TooShort,
    /// A character a header cannot carry unchanged (space, control, non-ASCII).
    #[error("the admin token may only contain visible ASCII characters (no spaces)")]
    BadCharacter,
}

/// Why the admin token could not be read from the environment or a token file.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenSourceError {
    /// The token file could not be read.
    #[error("cannot read the admin token file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token is unusable (the message never contains it).
    #[error("{ADMIN_TOKEN_ENV}: {0}")]
    Token(#[from] AdminTokenError),
}

/// The token that unlocks the admin actions. Keeps only a SHA-256 digest, so the token itself
/// is not in memory to leak through a debug print, and so the comparison takes the same time
/// whatever the length of what was sent.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(********)")
    }
}

impl AdminToken {
    /// The token, if it is long enough and fits in a header.
    pub fn new(token: &str) -> Result<Self, AdminTokenError> {
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::BadCharacter);
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(AdminTokenError::TooShort);
        }
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Reads the token the way every binary built on this crate does: the first non-empty line
    /// of `token_file`, or `PASSFORT_ADMIN_TOKEN`; never a command-line argument. `None` when
    /// neither is set (the admin page is then read-only). A token that is set but unusable is
    /// an error, not a silently read-only page.
    pub fn from_env(token_file: Option<&Path>) -> Result<Option<Self>, AdminTokenSourceError> {
        let token = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    AdminTokenSourceError::File {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
                let line = text.lines().map(str::trim).find(|l| !l.is_empty());
                Some(line.unwrap_or_default().to_owned())
            }
            None => std::env::var(ADMIN_TOKEN_ENV).ok(),
        };
        Ok(token.map(|token| Self::new(&token)).transpose()?)
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// Whether the admin actions are open, and to whom.
#[derive(Debug, Clone, Default)]
pub enum Access {
    /// No token configured: the page is read-only and every action answers 403.
    #[default]
    ReadOnly,
    /// Actions need this token.
    Token(AdminToken),
}

/// Why an action was refused; nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token is configured, so no action is possible.
    #[error("admin actions are disabled: start the receiver with PASSFORT_ADMIN_TOKEN (or --admin-token-file) to enable them")]
    Disabled,
    /// No `Authorization: Bearer …` header.
    #[error("this action needs the admin token in an Authorization: Bearer header")]
    Missing,
    /// A token was sent and it is not the admin token (or several were sent).
    #[error("wrong admin token")]
    Wrong,
}

impl Refusal {
    /// The status code: 403 when actions are off, 401 when the token is missing or wrong.
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Disabled => StatusCode::FORBIDDEN,
            Refusal::Missing | Refusal::Wrong => StatusCode::UNAUTHORIZED,
        }
    }

    /// The short name scripts and the page switch on (`disabled`, `missing`, `wrong`).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Disabled => "disabled",
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            Json(json!({ "error": self.to_string(), "token": self.code() })),
        )
            .into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"passfort-receiver admin\""),
            );
        }
        response
    }
}

impl Access {
    /// Lets an action through when `headers` carry the token in exactly one
    /// `Authorization: Bearer …` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Access::Token(token) = self else {
            return Err(Refusal::Disabled);
        };
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(Refusal::Missing);
        };
        if values.next().is_some() {
            return Err(Refusal::Wrong);
        }
        let value = value.as_bytes();
        let presented = match value.split_first_chunk::<7>() {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest,
            _ => return Err(Refusal::Wrong),
        };
        if token.matches(presented) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "correct-horse-battery-staple";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn only_the_token_in_one_bearer_header_passes() {
        let access = Access::Token(AdminToken::new(TOKEN).unwrap());
        assert_eq!(
            access.check(&headers(&[&format!("Bearer {TOKEN}")])),
            Ok(())
        );
        assert_eq!(
            access.check(&headers(&[&format!("bearer {TOKEN}")])),
            Ok(())
        );
        assert_eq!(access.check(&headers(&[])), Err(Refusal::Missing));
        assert_eq!(access.check(&headers(&[TOKEN])), Err(Refusal::Wrong));
        assert_eq!(
            access.check(&headers(&[&format!("Bearer {TOKEN}x")])),
            Err(Refusal::Wrong)
        );
        assert_eq!(
            access.check(&headers(&[&format!("Basic {TOKEN}")])),
            Err(Refusal::Wrong)
        );
        let right = format!("Bearer {TOKEN}");
        assert_eq!(
            access.check(&headers(&[&right, &right])),
            Err(Refusal::Wrong),
            "two headers are refused, even both right"
        );
    }

    #[test]
    fn without_a_token_every_action_is_refused() {
        let access = Access::ReadOnly;
        assert_eq!(
            access.check(&headers(&[&format!("Bearer {TOKEN}")])),
            Err(Refusal::Disabled)
        );
        assert_eq!(Refusal::Disabled.status(), StatusCode::FORBIDDEN);
        assert_eq!(Refusal::Wrong.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn weak_or_unsendable_tokens_are_refused_and_never_printed() {
        assert_eq!(
            AdminToken::new("short").err(),
            Some(AdminTokenError::TooShort)
        );
        assert_eq!(
            AdminToken::new("has a space in the middle").err(),
            Some(AdminTokenError::BadCharacter)
        );
        assert_eq!(
            AdminToken::new("ünïcödé-token-long-enough").err(),
            Some(AdminTokenError::BadCharacter)
        );
        let token = AdminToken::new(TOKEN).unwrap();
        assert!(!format!("{token:?}").contains(TOKEN));
    }
}

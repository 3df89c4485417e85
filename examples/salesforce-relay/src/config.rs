//! What the relay needs to know about the Salesforce org, read from the environment.
//!
//! Secrets come from the environment, never from a flag (flags show up in `ps` and shell
//! history), and [`ClientSecret`] never prints its value, so a `{:?}` of the configuration is
//! safe to log.

use std::fmt;
use std::time::Duration;

/// Base URL of the Salesforce login server (`https://login.salesforce.com`, a My Domain URL, or
/// `https://test.salesforce.com` for a sandbox).
pub const LOGIN_URL_ENV: &str = "SALESFORCE_LOGIN_URL";
/// The connected app's consumer key.
pub const CLIENT_ID_ENV: &str = "SALESFORCE_CLIENT_ID";
/// The connected app's consumer secret.
pub const CLIENT_SECRET_ENV: &str = "SALESFORCE_CLIENT_SECRET";
/// Optional: the Apex REST path webhooks are posted to, below the org's `instance_url`.
pub const TARGET_PATH_ENV: &str = "SALESFORCE_TARGET_PATH";

/// Where webhooks go when `SALESFORCE_TARGET_PATH` is not set: the `@RestResource` URL mapping
/// `/passfort/webhooks` of the Apex class in this example's README.
pub const DEFAULT_TARGET_PATH: &str = "/services/apexrest/passfort/webhooks";

/// The OAuth token endpoint, below the login URL.
pub const TOKEN_PATH: &str = "/services/oauth2/token";

/// How long one request to Salesforce may take before the attempt counts as failed.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the Salesforce configuration is unusable. Messages name the variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{var} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What is wrong (never the value of a secret).
        reason: String,
    },
}

/// The connected app's consumer secret. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret read from the environment or a vault.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the token request's form body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

impl fmt::Display for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to reach and authenticate to the Salesforce org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceConfig {
    /// Login server base URL, without a trailing slash.
    pub login_url: String,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret.
    pub client_secret: ClientSecret,
    /// The Apex REST path, starting with `/`.
    pub target_path: String,
    /// Limit for one request to Salesforce (token or webhook), measured on the relay's clock.
    pub request_timeout: Duration,
}

impl SalesforceConfig {
    /// A configuration posting to [`DEFAULT_TARGET_PATH`]; fails when the login URL is not an
    /// absolute `http(s)` URL or a value is empty.
    pub fn new(
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Result<Self, ConfigError> {
        let login_url = login_url.into();
        let client_id = client_id.into();
        if login_url.is_empty() {
            return Err(ConfigError::Missing(LOGIN_URL_ENV));
        }
        if !(login_url.starts_with("https://") || login_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                var: LOGIN_URL_ENV,
                reason: "expected an absolute https:// URL".into(),
            });
        }
        if client_id.is_empty() {
            return Err(ConfigError::Missing(CLIENT_ID_ENV));
        }
        if client_secret.expose().is_empty() {
            return Err(ConfigError::Missing(CLIENT_SECRET_ENV));
        }
        Ok(Self {
            login_url: login_url.trim_end_matches('/').to_owned(),
            client_id,
            client_secret,
            target_path: DEFAULT_TARGET_PATH.to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// Posts webhooks to `path` below the instance URL instead of the default.
    pub fn with_target_path(mut self, path: impl Into<String>) -> Result<Self, ConfigError> {
        let path = path.into();
        if !path.starts_with('/') {
            return Err(ConfigError::Invalid {
                var: TARGET_PATH_ENV,
                reason: "must start with '/'".into(),
            });
        }
        self.target_path = path;
        Ok(self)
    }

    /// Sets the limit for one request to Salesforce.
    pub fn with_request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// Reads `SALESFORCE_LOGIN_URL`, `SALESFORCE_CLIENT_ID`, `SALESFORCE_CLIENT_SECRET` and the
    /// optional `SALESFORCE_TARGET_PATH` from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// [`SalesforceConfig::from_env`] with any source of variables (tests, a vault).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |var: &'static str| {
            lookup(var)
                .filter(|value| !value.is_empty())
                .ok_or(ConfigError::Missing(var))
        };
        let config = Self::new(
            required(LOGIN_URL_ENV)?,
            required(CLIENT_ID_ENV)?,
            ClientSecret::new(required(CLIENT_SECRET_ENV)?),
        )?;
        match lookup(TARGET_PATH_ENV).filter(|value| !value.is_empty()) {
            Some(path) => config.with_target_path(path),
            None => Ok(config),
        }
    }

    /// The OAuth 2.0 token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.login_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |var| map.get(var).cloned()
    }

    const FULL: [(&str, &str); 3] = [
        (LOGIN_URL_ENV, "https://example.my.salesforce.com/"),
        (CLIENT_ID_ENV, "consumer-key"),
        (CLIENT_SECRET_ENV, "consumer-secret-value"),
    ];

    #[test]
    fn reads_the_environment_with_the_default_path() {
        let config = SalesforceConfig::from_lookup(lookup(&FULL)).unwrap();
        assert_eq!(config.login_url, "https://example.my.salesforce.com");
        assert_eq!(
            config.token_url(),
            "https://example.my.salesforce.com/services/oauth2/token"
        );
        assert_eq!(config.target_path, DEFAULT_TARGET_PATH);
        assert_eq!(config.client_secret.expose(), "consumer-secret-value");
    }

    #[test]
    fn takes_a_target_path_and_rejects_a_relative_one() {
        let mut vars = FULL.to_vec();
        vars.push((TARGET_PATH_ENV, "/services/apexrest/kyc"));
        let config = SalesforceConfig::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(config.target_path, "/services/apexrest/kyc");
        vars.pop();
        vars.push((TARGET_PATH_ENV, "services/apexrest/kyc"));
        assert!(matches!(
            SalesforceConfig::from_lookup(lookup(&vars)),
            Err(ConfigError::Invalid {
                var: TARGET_PATH_ENV,
                ..
            })
        ));
    }

    #[test]
    fn names_the_missing_variable() {
        for missing in [LOGIN_URL_ENV, CLIENT_ID_ENV, CLIENT_SECRET_ENV] {
            let vars: Vec<_> = FULL
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert_eq!(
                SalesforceConfig::from_lookup(lookup(&vars)),
                Err(ConfigError::Missing(missing))
            );
        }
        let mut vars = FULL.to_vec();
        vars[0] = (LOGIN_URL_ENV, "login.salesforce.com");
        assert!(matches!(
            SalesforceConfig::from_lookup(lookup(&vars)),
            Err(ConfigError::Invalid {
                var: LOGIN_URL_ENV,
                ..
            })
        ));
    }

    #[test]
    fn never_shows_the_client_secret() {
        let config = SalesforceConfig::from_lookup(lookup(&FULL)).unwrap();
        let shown = format!("{config:?} {}", config.client_secret);
        assert!(!shown.contains("consumer-secret-value"), "{shown}");
        assert!(shown.contains("ClientSecret(***)"));
    }
}

//! What a broker sink (`nats://`, `amqp://`, `redis://`) reads from its `--sink` URL, and the
//! one place its password is held.
//!
//! The password comes from the URL's user part or, when the URL has none, from
//! [`SINK_PASSWORD_ENV`] (so that it need not sit in a command line or a unit file). It never
//! reaches a log line, an error, `/status` or the database: the URL is only ever shown through
//! [`crate::redact::redact_url`], the broker clients are given the password apart from any URL
//! they might echo, and every error a broker sink returns goes through `BrokerUrl::scrub`.

use super::SinkError;
use std::fmt;

/// The environment variable a broker sink takes its password from when its URL carries none.
pub const SINK_PASSWORD_ENV: &str = "PASSFORT_SINK_PASSWORD";

/// A broker password. Shown as `***` by `Debug`; read only with [`Password::expose`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Password(String);

impl Password {
    /// The password itself, for the broker client's credentials and nothing else.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A broker sink's URL, taken apart (user, password and path percent-decoded).
#[derive(Clone)]
pub(crate) struct BrokerUrl {
    /// The URL as logs and errors show it: without a password.
    pub(crate) shown: String,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Password>,
    /// The path without its leading `/`, percent-decoded.
    pub(crate) path: String,
    query: Vec<(String, String)>,
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl BrokerUrl {
    /// Parses `raw`, whose scheme must be `scheme`. The password is the URL's, else
    /// `PASSFORT_SINK_PASSWORD`'s (when set and not empty).
    pub(crate) fn parse(raw: &str, scheme: &str) -> Result<Self, SinkError> {
        Self::parse_with(raw, scheme, std::env::var(SINK_PASSWORD_ENV).ok())
    }

    /// [`BrokerUrl::parse`] with the environment's password given.
    pub(crate) fn parse_with(
        raw: &str,
        scheme: &str,
        env_password: Option<String>,
    ) -> Result<Self, SinkError> {
        let shown = crate::redact::redact_url(raw);
        let invalid = |reason: String| SinkError::InvalidUrl {
            url: shown.clone(),
            reason,
        };
        // `url` reports what is wrong without echoing the URL, so its message is safe to show.
        let url = url::Url::parse(raw).map_err(|e| invalid(e.to_string()))?;
        if url.scheme() != scheme {
            return Err(invalid(format!("expected a {scheme}:// URL")));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host".to_owned()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid("not UTF-8 once percent-decoded".to_owned()))
        };
        let username = Some(decode(url.username())?).filter(|u| !u.is_empty());
        let password = match url.password() {
            Some(p) => Some(decode(p)?),
            None => env_password,
        }
        .filter(|p| !p.is_empty())
        .map(Password);
        let path = decode(url.path().strip_prefix('/').unwrap_or(url.path()))?;
        let query = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(Self {
            shown,
            host,
            port: url.port(),
            username,
            password,
            path,
            query,
        })
    }

    /// The last value of the query parameter `key`, if given.
    #[cfg_attr(not(any(feature = "amqp", feature = "redis")), allow(dead_code))]
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The query parameters no sink reads: named in an error rather than silently ignored.
    pub(crate) fn reject_params_except(&self, known: &[&str]) -> Result<(), SinkError> {
        match self
            .query
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(self.invalid(format!(
                "unknown parameter {k:?} (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))),
            None => Ok(()),
        }
    }

    /// An [`SinkError::InvalidUrl`] for this URL.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> SinkError {
        SinkError::InvalidUrl {
            url: self.shown.clone(),
            reason: reason.into(),
        }
    }

    /// `text` (a broker client's error, say) with every occurrence of the password, as given or
    /// percent-encoded, replaced by `***`, and on one line: the last guard before a message
    /// reaches a log line, the database or `/status`.
    pub(crate) fn scrub(&self, text: impl fmt::Display) -> String {
        let mut text = text.to_string().replace(['\n', '\r'], " ");
        if let Some(password) = &self.password {
            let plain = password.expose();
            let encoded =
                percent_encoding::utf8_percent_encode(plain, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            for form in [plain, encoded.as_str()] {
                if !form.is_empty() {
                    text = text.replace(form, "***");
                }
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_url_apart_and_never_shows_the_password() {
        let url = BrokerUrl::parse_with(
            "amqp://app:p%40ss%2Fw0rd@rabbit.internal:5673/%2f?exchange=ex&routing_key=k",
            "amqp",
            Some("from-env".into()),
        )
        .unwrap();
        assert_eq!(url.host, "rabbit.internal");
        assert_eq!(url.port, Some(5673));
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_ref().unwrap().expose(), "p@ss/w0rd");
        assert_eq!(url.path, "/");
        assert_eq!(url.param("exchange"), Some("ex"));
        assert_eq!(url.param("routing_key"), Some("k"));
        assert_eq!(url.param("nope"), None);
        for shown in [
            url.shown.clone(),
            format!("{url:?}"),
            format!("{:?}", url.password),
        ] {
            assert!(
                !shown.contains("p%40ss") && !shown.contains("p@ss"),
                "{shown}"
            );
        }
        assert_eq!(
            url.scrub("auth failed for p@ss/w0rd (p%40ss%2Fw0rd)\nagain"),
            "auth failed for *** (***) again"
        );
        assert!(url.reject_params_except(&["exchange"]).is_err());
        assert!(url
            .reject_params_except(&["exchange", "routing_key"])
            .is_ok());
    }

    #[test]
    fn the_environment_gives_the_password_only_when_the_url_has_none() {
        let url = BrokerUrl::parse_with("redis://127.0.0.1:6379/2?stream=s", "redis", None)
            .expect("parses");
        assert!(url.password.is_none());
        assert_eq!(url.path, "2");
        let url = BrokerUrl::parse_with("redis://127.0.0.1/0", "redis", Some("env-pw".into()))
            .expect("parses");
        assert_eq!(url.password.unwrap().expose(), "env-pw");
        let url = BrokerUrl::parse_with("redis://:url-pw@h/0", "redis", Some("env-pw".into()))
            .expect("parses");
        assert_eq!(url.password.unwrap().expose(), "url-pw");
        assert_eq!(url.username, None);
    }

    #[test]
    fn refuses_what_is_not_a_broker_url_without_echoing_it() {
        for raw in [
            "nats://",
            "redis://:hunter2@/0",
            "amqp://u:hunter2@host:99999/",
        ] {
            let err = BrokerUrl::parse_with(raw, raw.split(':').next().unwrap(), None)
                .err()
                .unwrap_or_else(|| panic!("{raw} parsed"))
                .to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(BrokerUrl::parse_with("nats://h/s", "redis", None).is_err());
    }
}

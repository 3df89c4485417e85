//! The "Webhook config" form as JSON: what `GET /api/config` shows (secret masked) and what
//! `PUT /api/config` may change (any subset of the fields), validated whole before anything
//! changes.

use serde::{Deserialize, Serialize};

use crate::account::{AccountSettings, EnabledEvents, Secret};
use crate::event::EventType;

/// What `GET /api/config` shows in place of a secret that is set. Sending it back in a `PUT`
/// keeps the secret, so a script can read, edit and write the config without knowing it.
pub const MASK: &str = "********";

/// Longest shared secret accepted.
pub const MAX_SECRET_LEN: usize = 1024;

/// The config as `GET /api/config` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigView {
    /// "Webhooks enabled".
    pub enabled: bool,
    /// "Shared secret", masked: [`MASK`] when set, empty when not.
    pub secret: String,
    /// "Endpoint".
    pub endpoint: String,
    /// "Enabled events", known ones in PassFort's order, deprecated last.
    pub enabled_events: Vec<String>,
    /// Batching on or off.
    pub batching: bool,
}

impl ConfigView {
    /// The view of `settings`, secret masked.
    pub fn from_settings(settings: &AccountSettings) -> Self {
        Self {
            enabled: settings.enabled,
            secret: if settings.secret.expose().is_empty() {
                String::new()
            } else {
                MASK.to_owned()
            },
            endpoint: settings.endpoint.clone(),
            enabled_events: enabled_list(&settings.enabled_events),
            batching: settings.batching,
        }
    }
}

/// The enabled events as a list of wire strings.
pub fn enabled_list(events: &EnabledEvents) -> Vec<String> {
    match events {
        EnabledEvents::All => EventType::KNOWN
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        EnabledEvents::Only(set) => set.iter().map(|e| e.as_str().to_owned()).collect(),
    }
}

/// A `PUT /api/config` body: a field left out keeps its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigUpdate {
    /// "Webhooks enabled".
    pub enabled: Option<bool>,
    /// "Shared secret"; [`MASK`] keeps the current one.
    pub secret: Option<String>,
    /// "Endpoint": an absolute `http://` or `https://` URL.
    pub endpoint: Option<String>,
    /// "Enabled events": event strings (unknown ones allowed; PassFort adds events).
    pub enabled_events: Option<Vec<String>>,
    /// Batching on or off.
    pub batching: Option<bool>,
}

/// The settings a valid update leads to.
#[derive(Debug, Clone)]
pub struct NextConfig {
    /// "Webhooks enabled".
    pub enabled: bool,
    /// "Shared secret".
    pub secret: Secret,
    /// "Endpoint".
    pub endpoint: String,
    /// "Enabled events".
    pub enabled_events: EnabledEvents,
    /// Batching on or off.
    pub batching: bool,
}

impl ConfigUpdate {
    /// Reads a request body; the error is the message for a 400.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(
                "expected a JSON object with any of enabled, secret, endpoint, \
                        enabled_events, batching"
                    .into(),
            );
        }
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("invalid config: {e}"))?;
        // serde would also read a struct from a positional array: the API takes objects only.
        if !value.is_object() {
            return Err(
                "invalid config: expected a JSON object with any of enabled, secret, \
                        endpoint, enabled_events, batching"
                    .into(),
            );
        }
        serde_json::from_value(value).map_err(|e| format!("invalid config: {e}"))
    }

    /// Merges the update into `current` and checks the result; the error is the message for a
    /// 400, and nothing has changed.
    pub fn apply_to(&self, current: &AccountSettings) -> Result<NextConfig, String> {
        let secret = match &self.secret {
            Some(secret) if secret == MASK => current.secret.clone(),
            Some(secret) => {
                check_secret(secret)?;
                Secret::new(secret.clone())
            }
            None => current.secret.clone(),
        };
        let endpoint = match &self.endpoint {
            Some(endpoint) => {
                check_endpoint(endpoint)?;
                endpoint.clone()
            }
            None => current.endpoint.clone(),
        };
        let enabled_events = match &self.enabled_events {
            Some(events) => {
                for event in events {
                    check_event_name(event)?;
                }
                EnabledEvents::only(events.iter().map(|e| EventType::parse(e)))
            }
            None => current.enabled_events.clone(),
        };
        let enabled = self.enabled.unwrap_or(current.enabled);
        if enabled && secret.expose().is_empty() {
            return Err(
                "set a shared secret before enabling webhooks: PassFort sends it in \
                        the Authorization header and in every body"
                    .into(),
            );
        }
        Ok(NextConfig {
            enabled,
            secret,
            endpoint,
            enabled_events,
            batching: self.batching.unwrap_or(current.batching),
        })
    }
}

fn check_secret(secret: &str) -> Result<(), String> {
    if secret.is_empty() {
        return Err("the shared secret must not be empty".into());
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(format!(
            "the shared secret is longer than {MAX_SECRET_LEN} characters"
        ));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the shared secret must be printable ASCII without spaces: it is sent \
                    in the Authorization header"
                .into(),
        );
    }
    Ok(())
}

/// The engine's own rule (absolute `http(s)` URL with a host), checked before anything changes.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e| format!("invalid endpoint {endpoint:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.authority().is_some() => Ok(()),
        _ => Err(format!(
            "invalid endpoint {endpoint:?}: expected an absolute http:// or https:// URL"
        )),
    }
}

/// Event strings are PassFort's upper-case names; anything else is almost surely a typo.
pub fn check_event_name(event: &str) -> Result<(), String> {
    let valid = !event.is_empty()
        && event.len() <= 100
        && event
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid event {event:?}: event names are upper-case letters, digits and '_', \
             e.g. CHECK_COMPLETED"
        ))
    }
}

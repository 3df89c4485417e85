//! A relay between PassFort webhooks and Salesforce.
//!
//! Salesforce refuses PassFort's webhooks with 401: it reads PassFort's
//! `Authorization: Bearer <shared secret>` header as an attempt to log in to Salesforce.
//! PassFort's advice is an intermediary; this is one, built on `passfort-receiver`:
//!
//! 1. [`relay`]: the receiver verifies both PassFort secrets, stores each new webhook durably,
//!    deduplicates and answers 200 at once;
//! 2. [`forward`]: a worker forwards each stored webhook, in order, to the org's Apex REST
//!    endpoint, without PassFort's secret or header, and retries with back-off (never skipping
//!    one) until Salesforce answers 2xx;
//! 3. [`token`]: it authenticates with the OAuth 2.0 client-credentials flow, caching the token
//!    and renewing it when Salesforce answers 401 `INVALID_SESSION_ID`;
//! 4. [`config`]: the org is configured from the environment.
//!
//! The binary (`salesforce-relay`) only parses flags and calls [`relay::serve`]. See the
//! example's README for the Salesforce side (connected app, Apex class).

#![warn(missing_docs)]

pub mod config;
pub mod forward;
pub mod relay;
pub mod token;

pub use config::{ClientSecret, ConfigError, SalesforceConfig};
pub use forward::{ForwardError, Forwarder};
pub use relay::{retry_policy, serve, Relay, RelayError, ServeConfig};
pub use token::{AccessToken, TokenError, TokenSource};

//! `--state PATH`: the sandbox's settings, queue and back-off in one JSON file, replaced atomically
//! (write a temporary file, flush it to disk, rename) so a crash leaves the old or the new
//! snapshot, never half of one. The file holds the shared secret, so it is created readable by
//! its owner only.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SandboxError;
use crate::account::{AccountSettings, EnabledEvents};
use crate::event::{EventType, Webhook};
use crate::snapshot::DeliverySnapshot;

/// The `format` value of a state file this version reads and writes.
pub const FORMAT: &str = "passfort-sim-sandbox/1";

/// The settings part of the state file (the secret in clear: the file is the secret's store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedConfig {
    /// "Webhooks enabled".
    pub enabled: bool,
    /// "Shared secret".
    pub secret: String,
    /// "Endpoint".
    pub endpoint: String,
    /// "Enabled events".
    pub enabled_events: Vec<EventType>,
    /// Batching on or off.
    pub batching: bool,
}

impl SavedConfig {
    /// The saved form of `settings`.
    pub fn from_settings(settings: &AccountSettings) -> Self {
        Self {
            enabled: settings.enabled,
            secret: settings.secret.expose().to_owned(),
            endpoint: settings.endpoint.clone(),
            enabled_events: match &settings.enabled_events {
                EnabledEvents::All => EventType::KNOWN.to_vec(),
                EnabledEvents::Only(set) => set.iter().cloned().collect(),
            },
            batching: settings.batching,
        }
    }
}

/// Everything `--state` keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// Always [`FORMAT`].
    pub format: String,
    /// The settings.
    pub config: SavedConfig,
    /// The queue, head first, without secrets (they are added when a request is built).
    pub queue: Vec<Webhook>,
    /// The rest of the delivery state (failed attempts at the head, next retry, last processed,
    /// recent failures, totals), its own queue left empty: `queue` above is the one kept. Absent
    /// in files written before it existed; those restart with the head due at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySnapshot>,
}

impl SavedState {
    /// A snapshot in the current format.
    pub fn new(config: SavedConfig, queue: Vec<Webhook>) -> Self {
        Self {
            format: FORMAT.to_owned(),
            config,
            queue,
            delivery: None,
        }
    }

    /// The same with the engine's delivery state, so a restart keeps the back-off. The
    /// snapshot's own queue is dropped: `queue` is the one kept.
    pub fn with_delivery(mut self, mut delivery: DeliverySnapshot) -> Self {
        delivery.queue = Vec::new();
        self.delivery = Some(delivery);
        self
    }

    /// The delivery state to restore, with `queue` as its queue; `None` for a file written
    /// before the delivery state was kept.
    pub fn delivery_with_queue(&self) -> Option<DeliverySnapshot> {
        self.delivery.clone().map(|mut delivery| {
            delivery.queue = self.queue.clone();
            delivery
        })
    }
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The file at `path` (not touched until [`StateFile::load`] or [`StateFile::save`]).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> SandboxError {
        SandboxError::StateFile {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// The saved state, or `None` when the file does not exist yet. A file that exists but
    /// cannot be read is an error: starting empty would silently drop its queue.
    pub fn load(&self) -> Result<Option<SavedState>, SandboxError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let state: SavedState = serde_json::from_str(&text)
            .map_err(|e| self.error(format!("not a sandbox state file: {e}")))?;
        if state.format != FORMAT {
            return Err(self.error(format!(
                "format {:?} is not {FORMAT:?}, the one this version reads",
                state.format
            )));
        }
        Ok(Some(state))
    }

    /// Replaces the file with `state`, atomically and durably.
    pub fn save(&self, state: &SavedState) -> Result<(), SandboxError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| self.error(e))?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .ok_or_else(|| self.error("the path names no file"))?;
        let mut temp_name = name.to_owned();
        temp_name.push(".tmp");
        let temp = dir.join(temp_name);
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp).map_err(|e| self.error(e))?;
        // `mode` only applies when the file is created: a temporary file left over from
        // elsewhere keeps its mode, and the rename would publish the secret with it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| self.error(e))?;
        }
        file.write_all(&bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| self.error(e))?;
        drop(file);
        fs::rename(&temp, &self.path).map_err(|e| self.error(e))?;
        // Make the rename itself durable; not every platform can open a directory.
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

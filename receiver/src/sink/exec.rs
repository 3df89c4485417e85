//! `exec:COMMAND`: runs `sh -c COMMAND` per webhook with its JSON on stdin, without the
//! webhook secrets in the child's environment.

use crate::handler::{Handler, HandlerError, Job};
use crate::secret::SECRET_ENV_VARS;
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

/// Runs `sh -c COMMAND` per webhook with its JSON on stdin; exit status 0 is success.
#[derive(Debug, Clone)]
pub struct ExecSink {
    command: String,
}

impl ExecSink {
    /// A sink running `command` through `sh -c`.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
        }
    }
}

#[async_trait]
impl Handler for ExecSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::piped())
            .env("PASSFORT_WEBHOOK_ID", &job.webhook.id)
            .env("PASSFORT_WEBHOOK_EVENT", &job.webhook.event)
            .kill_on_drop(true);
        for var in SECRET_ENV_VARS {
            command.env_remove(var);
        }
        command.env_remove(crate::admin::ADMIN_TOKEN_ENV);
        let mut child = command.spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = job.webhook.to_json_string();
            // A command that does not read its stdin is not an error.
            let _ = stdin.write_all(body.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
            drop(stdin);
        }
        let status = child.wait().await?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("command exited with {status}").into())
        }
    }
}

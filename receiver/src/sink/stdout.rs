//! `stdout`: one JSON line per webhook on standard output, flushed before it counts as done.

use crate::handler::{Handler, HandlerError, Job};
use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

/// Writes one JSON line per webhook to standard output.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutSink;

#[async_trait]
impl Handler for StdoutSink {
    async fn handle(&self, job: &Job) -> Result<(), HandlerError> {
        let mut line = job.webhook.to_json_string();
        line.push('\n');
        let mut out = tokio::io::stdout();
        out.write_all(line.as_bytes()).await?;
        out.flush().await?;
        Ok(())
    }
}

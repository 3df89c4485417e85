//! Every tracing event of the test process, at every level, captured as the text a log file
//! would hold, so that the secret scan reads the log lines the receiver really writes.
//!
//! One process-wide subscriber (the receiver's store task and sqlx's threads log too, not only
//! the test's thread). Runs that read the capture hold [`LogCapture`]'s lock, so that two runs in
//! one test binary never clear each other's lines.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tracing_subscriber::fmt::MakeWriter;

/// What every captured log holds first, proving the capture is live.
pub const CANARY: &str = "conformance log capture is live";

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

struct Installed {
    buffer: Buffer,
    exclusive: Mutex<()>,
}

static INSTALLED: OnceLock<Result<Installed, String>> = OnceLock::new();

/// Exclusive use of the process's log capture.
pub struct LogCapture {
    buffer: Buffer,
    _exclusive: MutexGuard<'static, ()>,
}

/// Installs the capturing subscriber (once per process) and takes exclusive use of it, with an
/// empty buffer. Fails when another global subscriber was installed first: the scan would then
/// read nothing, so it must not pretend to pass.
pub fn capture() -> Result<LogCapture, String> {
    let installed = INSTALLED.get_or_init(|| {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .map(|()| Installed {
                buffer,
                exclusive: Mutex::new(()),
            })
            .map_err(|e| format!("cannot install the log capture: {e}"))
    });
    let installed = installed.as_ref().map_err(Clone::clone)?;
    let exclusive = installed
        .exclusive
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    installed.buffer.lock().clear();
    tracing::info!("{CANARY}");
    Ok(LogCapture {
        buffer: installed.buffer.clone(),
        _exclusive: exclusive,
    })
}

impl LogCapture {
    /// Everything logged since [`capture`], as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock()).into_owned()
    }
}

//! The real `passfort-receiver` binary as a child process: found (or built) next to the test
//! executable, started on port 0, waited for on its readiness line, killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the binary prints on standard error once both addresses are bound.
pub const READY_PREFIX: &str = "passfort-receiver ready listen=";

/// How long a start may take at most before the test gives up (an upper bound, not a wait).
pub const START_LIMIT: Duration = Duration::from_secs(120);

/// Why the binary could not be found, built or started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// An I/O error spawning or talking to a process.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// `cargo build` failed.
    #[error("building a workspace binary failed ({0})")]
    Build(String),
    /// The binary exited or went quiet before its readiness line.
    #[error("passfort-receiver did not become ready: {0}")]
    NotReady(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProcessError {
    let context = context.into();
    move |source| ProcessError::Io { context, source }
}

/// `target/<profile>/`: the directory the running test executable's `deps/` sits in.
fn profile_dir() -> Result<PathBuf, ProcessError> {
    let exe = std::env::current_exe().map_err(io("cannot locate the test executable"))?;
    let deps = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let profile = if deps.ends_with("deps") {
        deps.parent().map(Path::to_path_buf).unwrap_or(deps)
    } else {
        deps
    };
    Ok(profile)
}

/// The `passfort-receiver` binary of this build: `target/<profile>/passfort-receiver`, built
/// with the same `cargo` that runs the tests when it is missing (as escargot does).
///
/// An existing binary is used as it is: `cargo test --workspace` builds it fresh; after editing
/// the receiver, run `cargo build -p passfort-receiver` before `cargo test -p
/// passfort-conformance`.
pub fn receiver_binary() -> Result<PathBuf, ProcessError> {
    workspace_binary("passfort-receiver", "passfort-receiver")
}

/// The `passfort-sim` binary of this build, found or built like [`receiver_binary`].
pub fn simulator_binary() -> Result<PathBuf, ProcessError> {
    workspace_binary("passfort-sender-sim", "passfort-sim")
}

fn workspace_binary(package: &str, bin: &str) -> Result<PathBuf, ProcessError> {
    let profile = profile_dir()?;
    let binary = profile.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        return Ok(binary);
    }
    let target_dir = profile
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| profile.clone());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|root| root.join("Cargo.toml"))
        .unwrap_or_default();
    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "-p", package, "--bin", bin])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir);
    if profile.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .map_err(io(format!("cannot run cargo to build {bin}")))?;
    if !status.success() || !binary.is_file() {
        return Err(ProcessError::Build(format!(
            "{status}; expected {}",
            binary.display()
        )));
    }
    Ok(binary)
}

/// How to start the receiver.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--database`.
    pub database: String,
    /// `--sink`.
    pub sink: String,
    /// `PASSFORT_WEBHOOK_SECRET`.
    pub secret: String,
    /// Extra flags.
    pub args: Vec<String>,
}

/// A running `passfort-receiver serve`.
pub struct ReceiverProcess {
    process: Spawned,
    /// The public address (webhook path and `/healthz`).
    pub listen: SocketAddr,
    /// The admin address (`/metrics`, `/status`).
    pub admin: SocketAddr,
}

impl ReceiverProcess {
    /// Starts `passfort-receiver serve` on ports 0 and waits for its readiness line.
    pub fn start(binary: &Path, options: &Options) -> Result<Self, ProcessError> {
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--database", &options.database, "--sink", &options.sink])
            .args(&options.args)
            .env("PASSFORT_WEBHOOK_SECRET", &options.secret);
        let (mut child, output, ready_rx) = spawn_reading(binary, command)?;
        let line = match ready_rx.recv_timeout(START_LIMIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let seen = output.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
                return Err(ProcessError::NotReady(format!(
                    "no readiness line; output:\n{seen}"
                )));
            }
        };
        let field = |name: &str| -> Result<SocketAddr, ProcessError> {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(name))
                .and_then(|addr| addr.parse().ok())
                .ok_or_else(|| {
                    ProcessError::NotReady(format!("unreadable readiness line {line:?}"))
                })
        };
        let listen = field("listen=")?;
        let admin = field("admin=")?;
        Ok(Self {
            process: Spawned { child, output },
            listen,
            admin,
        })
    }

    /// The webhook URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/webhooks/passfort", self.listen)
    }

    /// `GET /status` on the admin address.
    pub fn status_url(&self) -> String {
        format!("http://{}/status", self.admin)
    }

    /// The process id (to signal it without waiting, e.g. while its file operations hang).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Kills the process with SIGKILL (no clean-up of any kind) and reaps it.
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        self.process.kill()
    }

    /// Every line the process wrote so far (stdout and stderr).
    pub fn output(&self) -> Vec<String> {
        self.process.output()
    }
}

/// A child process and the lines it wrote; killed when dropped.
struct Spawned {
    child: Child,
    output: Lines,
}

impl Spawned {
    fn kill(&mut self) -> Result<(), ProcessError> {
        self.child
            .kill()
            .map_err(io("cannot SIGKILL the process"))?;
        self.child.wait().map_err(io("cannot reap the process"))?;
        Ok(())
    }

    fn output(&self) -> Vec<String> {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every line a child process wrote (stdout and stderr), as its readers collect them.
type Lines = Arc<Mutex<Vec<String>>>;

/// Spawns `command` (`RUST_LOG=debug`, stdout and stderr piped) and reads both streams, line by
/// line, into a shared list; each readiness line (`passfort-receiver ready …`) is also sent on
/// the channel.
fn spawn_reading(
    binary: &Path,
    mut command: Command,
) -> Result<(Child, Lines, mpsc::Receiver<String>), ProcessError> {
    let mut child = command
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(format!("cannot start {}", binary.display())))?;
    let output = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, ready_rx) = mpsc::channel::<String>();
    let streams: Vec<Box<dyn std::io::Read + Send>> = vec![
        Box::new(
            child
                .stdout
                .take()
                .ok_or_else(|| ProcessError::NotReady("no stdout pipe".into()))?,
        ),
        Box::new(
            child
                .stderr
                .take()
                .ok_or_else(|| ProcessError::NotReady("no stderr pipe".into()))?,
        ),
    ];
    for stream in streams {
        let output = output.clone();
        let ready_tx = ready_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("passfort-receiver ready ") {
                    let _ = ready_tx.send(line.clone());
                }
                output.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
    Ok((child, output, ready_rx))
}

/// A running `passfort-receiver work`: a worker in its own process.
pub struct WorkerProcess {
    process: Spawned,
}

impl WorkerProcess {
    /// Starts `passfort-receiver work --database DATABASE --sink SINK ARGS…` with `env` added
    /// to its environment. Does not wait for anything: a worker that refuses to start exits,
    /// which [`WorkerProcess::wait`] reports.
    pub fn start(
        binary: &Path,
        database: &str,
        sink: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, ProcessError> {
        let mut command = Command::new(binary);
        command
            .arg("work")
            .args(["--database", database, "--sink", sink])
            .args(args)
            .envs(env.iter().copied());
        let (child, output, _ready) = spawn_reading(binary, command)?;
        Ok(Self {
            process: Spawned { child, output },
        })
    }

    /// Waits (polling, at most `limit`) for the process to exit, and returns its status; the
    /// process is killed if it outlives `limit`.
    pub fn wait(&mut self, limit: Duration) -> Result<std::process::ExitStatus, ProcessError> {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self
                .process
                .child
                .try_wait()
                .map_err(io("cannot wait for the worker"))?
            {
                // The readers may still be draining the pipes: let them finish.
                let drained = std::time::Instant::now();
                while Arc::strong_count(&self.process.output) > 1
                    && drained.elapsed() < Duration::from_secs(5)
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Ok(status);
            }
            if started.elapsed() > limit {
                let _ = self.process.kill();
                return Err(ProcessError::NotReady(format!(
                    "the worker did not exit within {limit:?}; output:\n{}",
                    self.output().join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process with SIGKILL (no clean-up of any kind) and reaps it.
    pub fn kill(&mut self) -> Result<(), ProcessError> {
        self.process.kill()
    }

    /// Every line the process wrote so far (stdout and stderr).
    pub fn output(&self) -> Vec<String> {
        self.process.output()
    }
}

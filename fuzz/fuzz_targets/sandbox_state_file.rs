//! The sandbox's `--state` file, loaded from arbitrary bytes the way `passfort-sim serve
//! --state` does at start (`Sandbox::open`: read, check the format, restore settings, queue and
//! back-off). A file that is not a valid state must be refused with an error naming it, never
//! a panic, and a file that loads must be saved back the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passfort_sender_sim::sandbox::{Sandbox, SandboxOptions, StateFile};
use passfort_sender_sim::transport::FnTransport;
use passfort_sender_sim::{SimClock, TransportError};
use passfort_clock::VirtualClock;
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("passfort-fuzz-state-{}.json", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let options = SandboxOptions {
        state: Some(path.clone()),
        seed: 1,
        ..SandboxOptions::default()
    };
    let clock = SimClock::from(VirtualClock::starting_at(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
    ));
    let transport = FnTransport(|_| Err(TransportError::Refused("fuzz".into())));
    if let Ok(sandbox) = Sandbox::open(options, clock, transport) {
        // Loaded and saved back at once: the saved file loads again.
        let again = StateFile::new(path.clone()).load();
        assert!(matches!(again, Ok(Some(_))), "a loaded state saved unreadable: {again:?}");
        drop(sandbox);
    }
});

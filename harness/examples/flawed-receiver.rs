//! A receiver with one chosen flaw, served on loopback, for measuring how long `passfort-harness`
//! takes to judge it on the real clock (the figures in the harness README). It is the same
//! receiver the harness's own tests use (`tests/receivers/`).
//!
//! ```sh
//! cargo run --release -p passfort-harness --example flawed-receiver -- slow-singles
//! # prints the webhook URL and the observe file, then serves until Ctrl-C
//! ```
//!
//! Flaws: `none`, `slow-singles` (answers every single webhook after 11 s), `never-processes`
//! (answers 200, processes nothing), `loses-1-in-50`. The shared secret is
//! `receivers::SECRET`.

#[path = "../tests/receivers/mod.rs"]
mod receivers;

use std::time::Duration;

use receivers::Flaw;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flaw = match std::env::args().nth(1).as_deref() {
        Some("none") => Flaw::None,
        Some("slow-singles") => Flaw::SlowOnSingles(Duration::from_secs(11)),
        Some("never-processes") => Flaw::NeverProcesses,
        Some("loses-1-in-50") => Flaw::LosesOneIn(50),
        other => {
            eprintln!(
                "usage: flawed-receiver none|slow-singles|never-processes|loses-1-in-50 \
                 (got {other:?})"
            );
            return std::process::ExitCode::from(2);
        }
    };
    let receiver = receivers::start(flaw).await;
    println!("url {}", receiver.url);
    println!("observe {}", receiver.observe.display());
    println!("secret-env PASSFORT_WEBHOOK_SECRET={}", receivers::SECRET);
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}

//! A progress bar per scenario while a run goes on, so a person watching a 1 000-webhook storm
//! sees it move; hidden when the harness runs inside another program's tests.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where the bars of one run are drawn.
#[derive(Debug, Clone)]
pub struct Bars {
    multi: Option<MultiProgress>,
}

impl Bars {
    /// Bars on standard error (hidden by indicatif itself when it is not a terminal).
    pub fn on_stderr() -> Self {
        Self {
            multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// No bars at all: for library use and tests.
    pub fn hidden() -> Self {
        Self { multi: None }
    }

    /// A new bar for the scenario `id`.
    pub fn start(&self, id: &str) -> Progress {
        let bar = match &self.multi {
            Some(multi) => multi.add(ProgressBar::new(0)),
            None => ProgressBar::hidden(),
        };
        let style = ProgressStyle::with_template(
            "{spinner} {prefix:<28} [{bar:30}] {pos:>5}/{len:<5} {elapsed:>4} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(id.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar }
    }
}

/// One scenario's bar. Scenarios set its length to the number of requests they will make.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar drawn nowhere.
    pub fn hidden() -> Self {
        Self {
            bar: ProgressBar::hidden(),
        }
    }

    /// Announces how many steps the scenario will take.
    pub fn set_length(&self, steps: u64) {
        self.bar.set_length(steps);
    }

    /// Adds `steps` more to the length (for work discovered on the way, like retries).
    pub fn add_length(&self, steps: u64) {
        self.bar.inc_length(steps);
    }

    /// Counts `steps` done.
    pub fn inc(&self, steps: u64) {
        self.bar.inc(steps);
    }

    /// Moves to an absolute position.
    pub fn set_position(&self, position: u64) {
        self.bar.set_position(position);
    }

    /// Says what the scenario is doing now.
    pub fn say(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    /// Leaves the bar on screen with the scenario's result (its status label).
    pub fn finish(&self, label: &str) {
        self.bar.disable_steady_tick();
        self.bar.finish_with_message(label.to_owned());
    }
}

//! Cargo-style status lines and one spinner per running stage.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kentongan_image::{Outcome, Reporter, Stage, StageKey};

/// A right-aligned verb and a message on stderr, e.g. `       Wrote out/kentongan.iso`.
pub fn status(verb: &str, message: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("\x1b[1;32m{verb:>12}\x1b[0m {message}");
    } else {
        eprintln!("{verb:>12} {message}");
    }
}

pub struct StageProgress {
    quiet: bool,
    /// Spinners only on a terminal; elsewhere one summary line per stage.
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<Stage, ProgressBar>>,
}

impl StageProgress {
    pub fn new(quiet: bool) -> StageProgress {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        StageProgress {
            quiet,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    pub fn finish(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }

    fn line(&self, verb: &str, message: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(format!("\x1b[1;32m{verb:>12}\x1b[0m {message}"));
            }
            None => status(verb, message),
        }
    }
}

impl Reporter for StageProgress {
    fn stage_started(&self, stage: Stage, key: &StageKey) {
        let Some(multi) = &self.multi else { return };
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.cyan} {prefix:>14.bold} [{elapsed:>4}] {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(stage.name());
        bar.set_message(format!("key {}", key.short()));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(stage, bar);
        }
    }

    fn stage_output(&self, stage: Stage, line: &str) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(bar) = bars.get(&stage) {
                let shown = if line.chars().all(|c| c.is_ascii_digit()) {
                    format!("{line}%")
                } else {
                    line.chars().take(100).collect()
                };
                bar.set_message(shown);
            }
        }
    }

    fn stage_finished(&self, stage: Stage, outcome: Outcome, elapsed: Duration) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(&stage) {
                bar.finish_and_clear();
            }
        }
        match outcome {
            Outcome::Hit => self.line("Cached", stage.name()),
            Outcome::Built => self.line(
                "Built",
                &format!("{} in {:.1}s", stage.name(), elapsed.as_secs_f64()),
            ),
            Outcome::Skipped => {}
        }
    }
}

//! The wizard on the console: drawing a page with ratatui, the key loop, and the install's
//! progress and outcome screens.

use std::io;

use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::ExecutableCommand;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Terminal;

use super::{tr, wrapped, Action, Wizard, BODY_ROWS};
use crate::facts::Facts;
use crate::install::{self, Reporter, Runner, Source, Step, Target};
use crate::validate::Language;

type Term = Terminal<CrosstermBackend<io::Stdout>>;

pub(super) fn draw<B: Backend>(
    term: &mut Terminal<B>,
    title: &str,
    lines: Vec<Line<'static>>,
    message: &[String],
    help: &str,
) -> io::Result<()> {
    // The body is as tall as its lines (at least 10 rows); the problems get the rest, which
    // three long Indonesian sentences need.
    let body_rows = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX).max(10);
    term.draw(|f| {
        let [body, msg, foot] = Layout::vertical([
            Constraint::Length(body_rows),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let block = Block::default()
            .borders(Borders::ALL)
            .title(title.to_owned());
        f.render_widget(Paragraph::new(lines).block(block), body);
        let msg_lines: Vec<Line> = message.iter().map(|m| Line::from(m.clone())).collect();
        f.render_widget(Paragraph::new(msg_lines).wrap(Wrap { trim: true }), msg);
        f.render_widget(Paragraph::new(help.to_owned()), foot);
    })?;
    Ok(())
}

struct Progress<'a, B: Backend> {
    term: &'a mut Terminal<B>,
    lang: Language,
    done: Vec<String>,
}

impl<B: Backend> Reporter for Progress<'_, B> {
    fn step_started(&mut self, step: &Step) {
        let mut lines: Vec<Line<'static>> =
            self.done.iter().map(|d| Line::from(d.clone())).collect();
        lines.push(Line::from(format!("  … {}", step.label(self.lang))));
        let title = tr(
            self.lang,
            ("Kentongan — memasang", "Kentongan — installing"),
        );
        let _ = draw(self.term, title, lines, &[], "");
    }
    fn step_finished(&mut self, step: &Step, skipped: bool) {
        let mark = if skipped { "-" } else { "✓" };
        self.done
            .push(format!("  {mark} {}", step.label(self.lang)));
    }
}

/// How the wizard installs: where, from what, and with which runner.
pub struct Setup {
    pub target_root: Option<std::path::PathBuf>,
    pub source: Option<std::path::PathBuf>,
}

/// Runs the wizard on the terminal; returns the installed plan, or `None` when the operator
/// quit.
pub fn run(facts: Facts, setup: &Setup, runner: &mut dyn Runner) -> io::Result<Option<String>> {
    enable_raw_mode()?;
    io::stdout().execute(EnterAlternateScreen)?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let result = event_loop(&mut term, facts, setup, runner);
    let _ = disable_raw_mode();
    let _ = io::stdout().execute(LeaveAlternateScreen);
    result
}

fn event_loop(
    term: &mut Term,
    facts: Facts,
    setup: &Setup,
    runner: &mut dyn Runner,
) -> io::Result<Option<String>> {
    let mut w = Wizard::new(facts);
    loop {
        draw(term, &w.title(), w.lines(), &w.message, w.help())?;
        let Event::Key(key) = event::read()? else {
            continue;
        };
        match w.key(key) {
            Action::None => {}
            Action::Quit => return Ok(None),
            Action::Install(plan) => {
                let target = match &setup.target_root {
                    Some(root) => Target::Directory { root: root.clone() },
                    None => Target::Disk {
                        device: plan.disk.device.clone(),
                        mount: install::DEFAULT_MOUNT.into(),
                    },
                };
                let source = match (&setup.source, &target) {
                    (Some(d), _) => Source::Directory(d.clone()),
                    (None, Target::Directory { .. }) => Source::Nothing,
                    (None, Target::Disk { .. }) => Source::LiveLayers(install::LIVE_LAYERS.into()),
                };
                let lang = w.lang();
                let mut progress = Progress {
                    term,
                    lang,
                    done: Vec::new(),
                };
                let outcome = install::run(&plan, target, source, runner, &mut progress);
                let done = progress.done;
                let (title, mut lines) =
                    match &outcome {
                        Ok(()) => (
                            tr(lang, ("Kentongan — selesai", "Kentongan — done")),
                            vec![Line::from(tr(lang, (
                            "Terpasang. Lepaskan CD/USB lalu tekan Enter untuk memulai ulang.",
                            "Installed. Remove the CD/USB stick and press Enter to restart.",
                        )))],
                        ),
                        Err(e) => (
                            tr(lang, ("Kentongan — gagal", "Kentongan — failed")),
                            failure_lines(lang, e),
                        ),
                    };
                // The outcome first; the steps done fill what is left of the page.
                let room = BODY_ROWS.saturating_sub(lines.len());
                let skip = done.len().saturating_sub(room);
                lines.extend(done.into_iter().skip(skip).map(Line::from));
                draw(term, title, lines, &[], "Enter")?;
                loop {
                    if let Event::Key(k) = event::read()? {
                        if k.kind == KeyEventKind::Press && k.code == KeyCode::Enter {
                            break;
                        }
                    }
                }
                return match outcome {
                    Ok(()) => Ok(Some(plan.summary(lang))),
                    Err(e) => Err(io::Error::other(e.to_string())),
                };
            }
        }
    }
}

/// The failure screen: the step by its label, then the cause and the hint. Cause and hint
/// stay English: they quote commands, paths and the tools' own output, and the same text is
/// in the log for whoever helps the operator.
pub(super) fn failure_lines(lang: Language, e: &install::StepError) -> Vec<Line<'static>> {
    let label = install::STEPS
        .iter()
        .find(|s| s.name == e.step)
        .map_or(e.step, |s| s.label(lang));
    let mut lines = wrapped(
        &match lang {
            Language::Id => format!("Langkah \"{label}\" ({}) gagal:", e.step),
            Language::En => format!("Step \"{label}\" ({}) failed:", e.step),
        },
        0,
    );
    lines.extend(wrapped(&e.cause, 2));
    let hint = tr(lang, ("Saran:", "What to do:"));
    lines.extend(wrapped(&format!("{hint} {}", e.hint), 0));
    lines.push(Line::from(tr(
        lang,
        (
            "Perbaiki penyebabnya lalu jalankan pemasangan lagi (dimulai dari awal).",
            "Fix the cause and run the installer again (it starts over).",
        ),
    )));
    lines.push(Line::from(""));
    lines
}

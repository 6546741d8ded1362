//! `kentongan-pbx forward …`, `dnd …` and `settings show`: an extension's call forwarding and
//! do not disturb, stored in the database (one transaction per change); a running daemon sees
//! the change within a second (it re-reads the settings when another process commits).

use std::io::Write as _;

use clap::Subcommand;
use serde::Serialize;

use kentongan_pbx::config::Config;
use kentongan_pbx::store::{Extension, ForwardKind, SettingsWrite, Store};

use crate::{fail, open_store, parse_ext, Failure};

#[derive(Subcommand)]
pub enum ForwardCommand {
    /// Forward KIND (all, busy, no-answer) calls of EXTENSION to NUMBER.
    Set {
        extension: String,
        kind: String,
        number: String,
    },
    /// Stop forwarding KIND calls (every kind when KIND is left out).
    Clear {
        extension: String,
        kind: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// An extension's forwarding, DND, call waiting and written settings.
    Show {
        extension: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Shown {
    extension: String,
    forward_all: Option<String>,
    forward_busy: Option<String>,
    forward_no_answer: Option<String>,
    dnd: bool,
    call_waiting: bool,
    forward_no_answer_seconds: u32,
    pickup_group: Option<String>,
}

const DB_HINT: &str = "check `storage.database`";

fn existing(store: &Store, s: &str) -> Result<Extension, Failure> {
    let ext = parse_ext(s)?;
    if !store.user_exists(&ext.0).map_err(|e| fail(e, DB_HINT))? {
        return Err(fail(
            anyhow::anyhow!("extension {ext} does not exist"),
            "list extensions with `kentongan-pbx user list`; add one with `user add`",
        ));
    }
    Ok(ext)
}

fn kind(s: &str) -> Result<ForwardKind, Failure> {
    ForwardKind::parse(s).ok_or_else(|| {
        fail(
            anyhow::anyhow!("{s:?} is not a kind of forward"),
            "use all (every call), busy, or no-answer (also when no phone is registered)",
        )
    })
}

fn change(store: &mut Store, w: SettingsWrite) -> Result<(), Failure> {
    store.change_settings(&w).map_err(|e| fail(e, DB_HINT))
}

pub fn forward(config: &Config, command: ForwardCommand) -> Result<(), Failure> {
    let mut store = open_store(config)?;
    match command {
        ForwardCommand::Set {
            extension,
            kind: k,
            number,
        } => {
            let ext = existing(&store, &extension)?;
            let kind = kind(&k)?;
            let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
            let target = Extension::parse(&number).filter(|_| digits);
            let target =
                match target {
                    Some(t) if store.user_exists(&t.0).map_err(|e| fail(e, DB_HINT))? => t,
                    _ => return Err(fail(
                        anyhow::anyhow!("{number:?} is not an extension of this PBX"),
                        "forward to an existing extension's number (see `kentongan-pbx user list`)",
                    )),
                };
            if target == ext {
                return Err(fail(
                    anyhow::anyhow!("extension {ext} cannot forward to itself"),
                    "give another extension's number",
                ));
            }
            change(
                &mut store,
                SettingsWrite::Forward {
                    extension: ext.clone(),
                    kind,
                    target: Some(target.0.clone()),
                },
            )?;
            eprintln!("Forwarding {kind} calls of {ext} to {target}");
        }
        ForwardCommand::Clear { extension, kind: k } => {
            let ext = existing(&store, &extension)?;
            let kinds = match k {
                Some(k) => vec![kind(&k)?],
                None => ForwardKind::ALL.to_vec(),
            };
            for kind in &kinds {
                change(
                    &mut store,
                    SettingsWrite::Forward {
                        extension: ext.clone(),
                        kind: *kind,
                        target: None,
                    },
                )?;
            }
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            eprintln!("Cleared forwarding ({}) of {ext}", names.join(", "));
        }
    }
    Ok(())
}

pub fn dnd(config: &Config, state: &str, extension: &str) -> Result<(), Failure> {
    let on = match state {
        "on" => true,
        "off" => false,
        other => {
            return Err(fail(
                anyhow::anyhow!("{other:?} is neither on nor off"),
                "e.g. `kentongan-pbx --config FILE dnd on 201`",
            ))
        }
    };
    let mut store = open_store(config)?;
    let ext = existing(&store, extension)?;
    change(
        &mut store,
        SettingsWrite::Dnd {
            extension: ext.clone(),
            on,
        },
    )?;
    eprintln!("Do not disturb {state} for {ext}");
    Ok(())
}

pub fn settings(config: &Config, command: SettingsCommand) -> Result<(), Failure> {
    let SettingsCommand::Show { extension, json } = command;
    let store = open_store(config)?;
    let ext = existing(&store, &extension)?;
    let s = store.call_settings(&ext).map_err(|e| fail(e, DB_HINT))?;
    let written = config.extension_settings.iter().find(|e| e.number == ext.0);
    let shown = Shown {
        forward_no_answer_seconds: config.forward_no_answer_seconds(&ext.0),
        pickup_group: written.and_then(|w| w.pickup_group.clone()),
        extension: ext.0,
        forward_all: s.forward_all,
        forward_busy: s.forward_busy,
        forward_no_answer: s.forward_no_answer,
        dnd: s.dnd,
        call_waiting: !s.call_waiting_off,
    };
    let mut out = std::io::stdout().lock();
    let io_fail = |e: std::io::Error| fail(e, "standard output was closed");
    if json {
        let text = serde_json::to_string_pretty(&shown).unwrap_or_default();
        writeln!(out, "{text}").map_err(io_fail)?;
    } else {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "extension\t{}\nforward all\t{}\nforward busy\t{}\nforward no-answer\t{} (after {} s)\ndnd\t{}\ncall waiting\t{}\npickup group\t{}",
            shown.extension,
            show(&shown.forward_all),
            show(&shown.forward_busy),
            show(&shown.forward_no_answer),
            shown.forward_no_answer_seconds,
            if shown.dnd { "on" } else { "off" },
            if shown.call_waiting { "on" } else { "off" },
            show(&shown.pickup_group),
        )
        .map_err(io_fail)?;
    }
    Ok(())
}

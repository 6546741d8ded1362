//! `kentongan-pbx recordings list [--json]`: the stored call recordings with their CDR's call
//! id, time and parties, oldest first.

use std::io::Write as _;

use clap::Subcommand;

use kentongan_pbx::config::Config;

use crate::{fail, open_store, Failure};

#[derive(Subcommand)]
pub enum RecordingsCommand {
    /// Every stored recording (stereo WAV: caller left, callee right), oldest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &Config, command: RecordingsCommand) -> Result<(), Failure> {
    let store = open_store(config)?;
    let io = |e: std::io::Error| fail(e, "could not write to standard output");
    match command {
        RecordingsCommand::List { json } => {
            let list = store
                .recordings()
                .map_err(|e| fail(e, "check `storage.database`"))?;
            let mut out = std::io::stdout().lock();
            if json {
                let s = serde_json::to_string_pretty(&list).unwrap_or_default();
                writeln!(out, "{s}").map_err(io)?;
            } else {
                writeln!(
                    out,
                    "id\tstart_ms\tduration_ms\tcaller\tcallee\ttrunk\tnumber\tcall_id\tpath"
                )
                .map_err(io)?;
                for r in list {
                    // The Call-ID came from a phone: shown escaped, so it cannot break the table.
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        r.id,
                        r.start_ms,
                        r.duration_ms,
                        r.caller.escape_debug(),
                        r.callee.escape_debug(),
                        r.trunk.as_deref().unwrap_or("-"),
                        r.number.as_deref().unwrap_or("-").escape_debug(),
                        r.call_id.escape_debug(),
                        r.path
                    )
                    .map_err(io)?;
                }
            }
        }
    }
    Ok(())
}

//! `kentongan-pbx voicemail list|play|delete`: an extension's stored messages. `play` copies
//! a message's WAV out (written under a temporary name, then renamed); `delete` removes the
//! row, then the file. A running daemon sees a deletion within a second. `queue` shows the
//! voicemail mails the daemon has not yet delivered.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use kentongan_pbx::config::Config;
use kentongan_pbx::store::{Store, VoicemailMessage};

use crate::{fail, open_store, parse_ext, Failure};

#[derive(Subcommand)]
pub enum VoicemailCommand {
    /// The messages in EXTENSION's mailbox, oldest first.
    List {
        extension: String,
        #[arg(long)]
        json: bool,
    },
    /// Writes message ID of EXTENSION's mailbox to the WAV file OUT.
    Play {
        extension: String,
        id: i64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Deletes message ID of EXTENSION's mailbox.
    Delete { extension: String, id: i64 },
    /// Voicemail mails not yet taken by the relay: tries so far, next try, last error.
    Queue {
        #[arg(long)]
        json: bool,
    },
}

const DB_HINT: &str = "check `storage.database`";

fn message(store: &Store, ext: &str, id: i64) -> Result<VoicemailMessage, Failure> {
    store
        .voicemail_message(ext, id)
        .map_err(|e| fail(e, DB_HINT))?
        .ok_or_else(|| {
            fail(
                anyhow::anyhow!("mailbox {ext} has no message {id}"),
                format!("list the messages with `kentongan-pbx voicemail list {ext}`"),
            )
        })
}

fn copy_atomically(from: &Path, to: &Path) -> std::io::Result<()> {
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "voicemail.wav".into());
    let tmp = to.with_file_name(format!(".{name}.tmp"));
    let done = std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, to));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

pub fn run(config: &Config, command: VoicemailCommand) -> Result<(), Failure> {
    let store = open_store(config)?;
    let io = |e: std::io::Error| fail(e, "could not write to standard output");
    match command {
        VoicemailCommand::List { extension, json } => {
            let ext = parse_ext(&extension)?;
            let list = store.voicemail_list(&ext.0).map_err(|e| fail(e, DB_HINT))?;
            let mut out = std::io::stdout().lock();
            if json {
                let s = serde_json::to_string_pretty(&list).unwrap_or_default();
                writeln!(out, "{s}").map_err(io)?;
            } else {
                writeln!(out, "id\tstatus\treceived_ms\tduration_ms\tcaller").map_err(io)?;
                for m in list {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}",
                        m.id, m.status, m.received_ms, m.duration_ms, m.caller
                    )
                    .map_err(io)?;
                }
            }
        }
        VoicemailCommand::Play { extension, id, out } => {
            let ext = parse_ext(&extension)?;
            let m = message(&store, &ext.0, id)?;
            copy_atomically(Path::new(&m.path), &out).map_err(|e| {
                fail(
                    anyhow::anyhow!("could not copy {} to {}: {e}", m.path, out.display()),
                    "give --out a path in a writable folder, e.g. --out /tmp/message.wav",
                )
            })?;
            eprintln!("Wrote {}", out.display());
        }
        VoicemailCommand::Queue { json } => {
            let queue = store.mail_queue().map_err(|e| fail(e, DB_HINT))?;
            let mut out = std::io::stdout().lock();
            if json {
                let s = serde_json::to_string_pretty(&queue).unwrap_or_default();
                writeln!(out, "{s}").map_err(io)?;
            } else {
                writeln!(
                    out,
                    "id\tmailbox\tto\tattempts\tnext_attempt_ms\tlast_error"
                )
                .map_err(io)?;
                for m in queue {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        m.id,
                        m.mailbox,
                        m.to,
                        m.attempts,
                        m.next_attempt_ms,
                        m.last_error.as_deref().unwrap_or("-")
                    )
                    .map_err(io)?;
                }
            }
        }
        VoicemailCommand::Delete { extension, id } => {
            let ext = parse_ext(&extension)?;
            if !store
                .delete_voicemail(&ext.0, id)
                .map_err(|e| fail(e, DB_HINT))?
            {
                return Err(message(&store, &ext.0, id)
                    .err()
                    .unwrap_or_else(|| fail(anyhow::anyhow!("message {id} vanished"), DB_HINT)));
            }
            eprintln!("Deleted message {id} of mailbox {ext}");
        }
    }
    Ok(())
}

//! `kentongan-pbx conference …`: rooms and members as the running daemon mirrors them, and
//! the operator's kick/mute/lock, left in the database for the daemon (within a second).

use std::io::Write as _;
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde::Serialize;

use kentongan_pbx::config::Config;
use kentongan_pbx::store::{ConferenceMemberRow, Store};

use crate::{fail, open_store, Failure};

#[derive(Subcommand)]
pub enum ConferenceCommand {
    /// Rooms and their members: talking, muted, admin.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Hang up a member (MEMBER is the number `conference list` shows).
    Kick { room: String, member: i64 },
    /// Mute a member, or unmute a muted one.
    Mute { room: String, member: i64 },
    /// Let nobody else in.
    Lock { room: String },
    /// Let members in again.
    Unlock { room: String },
}

#[derive(Serialize)]
struct RoomRow<'a> {
    number: &'a str,
    name: &'a str,
    locked: bool,
    max_members: u32,
    members: Vec<ConferenceMemberRow>,
}

pub fn run(config: &Config, command: ConferenceCommand) -> Result<(), Failure> {
    let store = open_store(config)?;
    let db = |e| fail(e, "check `storage.database`");
    let out = std::io::stdout();
    let mut out = out.lock();
    let io_fail = |e: std::io::Error| fail(e, "standard output was closed");
    match command {
        ConferenceCommand::List { json } => {
            let members = store.conference_members().map_err(db)?;
            let locked = store.locked_rooms().map_err(db)?;
            let rooms: Vec<RoomRow> = config
                .conferences
                .iter()
                .map(|r| RoomRow {
                    number: &r.number,
                    name: &r.name,
                    locked: locked.contains(&r.number),
                    max_members: r.max_members,
                    members: members
                        .iter()
                        .filter(|m| m.room == r.number)
                        .cloned()
                        .collect(),
                })
                .collect();
            if json {
                let s = serde_json::to_string_pretty(&rooms).unwrap_or_default();
                writeln!(out, "{s}").map_err(io_fail)?;
            } else {
                for r in rooms {
                    let lock = if r.locked { ", locked" } else { "" };
                    writeln!(
                        out,
                        "{}\t{}\t{}/{} members{lock}",
                        r.number,
                        r.name,
                        r.members.len(),
                        r.max_members
                    )
                    .map_err(io_fail)?;
                    for m in r.members {
                        let mut flags = Vec::new();
                        if m.talking {
                            flags.push("talking");
                        }
                        if m.muted {
                            flags.push("muted");
                        }
                        if m.admin {
                            flags.push("admin");
                        }
                        writeln!(out, "  {}\t{}\t{}", m.member, m.extension, flags.join(","))
                            .map_err(io_fail)?;
                    }
                }
            }
        }
        ConferenceCommand::Kick { room, member } => {
            send(config, &store, &room, "kick", Some(member))?;
            eprintln!("member {member} of room {room} hung up");
        }
        ConferenceCommand::Mute { room, member } => {
            send(config, &store, &room, "mute", Some(member))?;
            eprintln!("member {member} of room {room}: mute toggled");
        }
        ConferenceCommand::Lock { room } => {
            send(config, &store, &room, "lock", None)?;
            eprintln!("room {room} locked");
        }
        ConferenceCommand::Unlock { room } => {
            send(config, &store, &room, "unlock", None)?;
            eprintln!("room {room} unlocked");
        }
    }
    Ok(())
}

/// Leaves a command for the daemon and waits (3 s at most) until it has carried it out.
fn send(
    config: &Config,
    store: &Store,
    room: &str,
    action: &str,
    member: Option<i64>,
) -> Result<(), Failure> {
    let db = |e| fail(e, "check `storage.database`");
    if !config.conferences.iter().any(|r| r.number == room) {
        let rooms: Vec<&str> = config
            .conferences
            .iter()
            .map(|r| r.number.as_str())
            .collect();
        return Err(fail(
            anyhow::anyhow!("there is no conference room {room:?}"),
            format!("rooms in this configuration: {}", rooms.join(", ")),
        ));
    }
    if let Some(m) = member {
        let members = store.conference_members().map_err(db)?;
        if !members.iter().any(|x| x.member == m && x.room == room) {
            return Err(fail(
                anyhow::anyhow!("room {room} has no member {m}"),
                "see the members with `kentongan-pbx conference list`",
            ));
        }
    }
    let id = store
        .add_conference_command(room, action, member)
        .map_err(db)?;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if !store.conference_command_pending(id).map_err(db)? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(fail(
        anyhow::anyhow!("the daemon did not take the command within 3 seconds"),
        "is kentongan-pbx running on this database? (`systemctl status kentongan-pbx`); the command stays queued and is carried out when it starts",
    ))
}

//! `report savings --month YYYY-MM [--json]`: the month's answered trunk calls from the CDR,
//! each priced against the dearest route that could have carried it (kentongan-lcr's
//! `savings`), per trunk and in total. Months are the appliance's local months.

use std::io::Write as _;

use clap::Subcommand;
use kentongan_pbx::config::Config;
use kentongan_pbx::lcr_admin;

use crate::trunk_cli::lcr_fail;
use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// What least-cost routing saved in a month, per trunk.
    Savings {
        /// The month, e.g. 2026-11.
        #[arg(long)]
        month: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn report(config: &Config, command: ReportCommand) -> Result<(), Failure> {
    let ReportCommand::Savings { month, json } = command;
    let store = crate::open_store(config)?;
    let (report, skipped) = lcr_admin::savings_report(config, &store, &month).map_err(lcr_fail)?;
    let mut stdout = std::io::stdout().lock();
    let text = if json {
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    } else {
        report.to_text()
    };
    stdout
        .write_all(text.as_bytes())
        .map_err(|e| crate::fail(e, "check where the output goes"))?;
    if skipped > 0 {
        eprintln!(
            "warning: {skipped} call(s) left out: their trunk is no [[trunk]] now, or their number or class does not parse"
        );
    }
    Ok(())
}

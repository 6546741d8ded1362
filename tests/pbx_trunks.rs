//! The trunk and least-cost routing commands of kentongan-pbx, run as an operator would:
//! `trunk list`, `lcr explain`, `lcr import` (all or nothing, errors by line) and
//! `mikrotik-script`, against a real configuration file. No network peers needed.

#[path = "fixtures/pbx/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Output;

use harness::pbx_binary;

struct Office {
    dir: PathBuf,
    config: PathBuf,
}

const RATES: &str = "\
# trunk,prefix,rate_per_minute,connect_fee,increment_seconds[,days,from,to]
provider,+62,650,0,60
cheapvoip,+628,400,150,1
goip-telkomsel,+62811,200,0,60
goip-telkomsel,+62812,200,0,60
";

impl Office {
    fn new(test: &str) -> Office {
        let dir =
            std::env::temp_dir().join(format!("kentongan-trunks-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("pbx.toml");
        let text = format!(
            r#"[sip]
domain = "pbx.local"
listen = ["udp:192.168.88.10:5060", "tcp:192.168.88.10:5060", "tls:192.168.88.10:5061"]
[rtp]
ports = "10000-10999"
[storage]
database = "{db}"
[firewall]
trusted = ["192.168.88.0/24"]

[[trunk]]
name = "provider"
kind = "provider"
address = "sip.provider.example:5060"
register = true
username = "office1"
password = "provider-secret-771"
max_channels = 30
caller_id = "+62215550100"

[[trunk]]
name = "cheapvoip"
kind = "provider"
address = "127.0.0.1:5090"

[[trunk]]
name = "goip-telkomsel"
kind = "gateway"
username = "goip1"
password = "goip-secret-552"
max_channels = 4
operator = "telkomsel"

[lcr]
rates = "{rates}"
country = "62"
area_code = "21"

[[did]]
number = "+62215550100"
to = "700"
trunk = "provider"

[[calling_rights]]
name = "direksi"
allow = ["emergency", "internal", "local", "national", "mobile", "tollfree", "international"]
max_call_minutes = 60
"#,
            db = dir.join("pbx.db").display(),
            rates = dir.join("rates.csv").display(),
        );
        std::fs::write(&config, text).expect("config");
        Office { dir, config }
    }

    fn cli(&self, args: &[&str]) -> Output {
        std::process::Command::new(pbx_binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run kentongan-pbx")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn rates_file(&self) -> PathBuf {
        self.dir.join("rates.csv")
    }
}

impl Drop for Office {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn trunk_list_shows_trunks_and_never_a_password() {
    let o = Office::new("list");
    let text = o.ok(&["trunk", "list"]);
    assert!(
        text.contains("provider\tprovider\tsip.provider.example:5060\t0/30\t-\tnot registered\t-"),
        "{text}"
    );
    assert!(
        text.contains("goip-telkomsel\tgateway\t-\t0/4\ttelkomsel\tnot registered\t-"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&o.ok(&["trunk", "list", "--json"])).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(3), "{json}");
    assert_eq!(json[0]["name"], "provider");
    assert_eq!(json[0]["username"], "office1");
    assert_eq!(json[2]["operator"], "telkomsel");
    for out in [
        o.cli(&["trunk", "list"]),
        o.cli(&["trunk", "list", "--json"]),
        o.cli(&["check-config"]),
    ] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains("provider-secret-771") && !all.contains("goip-secret-552"),
            "{all}"
        );
    }
}

#[test]
fn lcr_import_then_explain_ranks_the_cheapest_route_first() {
    let o = Office::new("explain");
    let incoming = o.dir.join("new-rates.csv");
    write(&incoming, RATES);
    let said = o.ok(&["lcr", "import", incoming.to_str().expect("utf-8 path")]);
    assert!(said.contains("imported 4 rates for 3 trunks"), "{said}");
    assert_eq!(
        std::fs::read_to_string(o.rates_file()).ok().as_deref(),
        Some(RATES)
    );

    // A Telkomsel mobile: the Telkomsel SIM gateway is cheapest (200/min vs 150 + 400/min).
    let json: serde_json::Value = serde_json::from_str(&o.ok(&[
        "lcr",
        "explain",
        "0812-3456-7890",
        "--at",
        "mon 10:00",
        "--json",
    ]))
    .expect("json");
    assert_eq!(json["number"], "+6281234567890", "{json}");
    assert_eq!(json["class"], "mobile", "{json}");
    assert_eq!(json["operator"], "telkomsel", "{json}");
    let ranked: Vec<&str> = json["routes"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["trunk"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        ranked,
        ["goip-telkomsel", "cheapvoip", "provider"],
        "{json}"
    );

    // A Jakarta landline dialled without the area code: local, and the gateway cannot carry it.
    let text = o.ok(&["lcr", "explain", "5550123", "--at", "tue 09:00"]);
    assert!(text.contains("+62215550123"), "{text}");
    assert!(text.contains("local"), "{text}");
    // An emergency number is always allowed and never priced.
    let json: serde_json::Value =
        serde_json::from_str(&o.ok(&["lcr", "explain", "112", "--json"])).expect("json");
    assert_eq!(json["class"], "emergency", "{json}");

    let bad = o.cli(&["lcr", "explain", "08x", "--at", "mon 10:00"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("\nhint: "),
        "{err}"
    );
}

#[test]
fn a_bad_rates_file_is_refused_by_line_and_the_loaded_one_stays() {
    let o = Office::new("import");
    write(&o.rates_file(), RATES);
    let bad = o.dir.join("bad.csv");
    write(
        &bad,
        "provider,+62,650,0,60\nnosuchtrunk,+62,100,0,60\nprovider,+6221,300,0,0\n",
    );
    let out = o.cli(&["lcr", "import", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("increment_seconds"), "{err}");
    assert!(err.contains("\nhint: "), "{err}");
    assert_eq!(
        std::fs::read_to_string(o.rates_file()).ok().as_deref(),
        Some(RATES),
        "the loaded rates changed"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&o.dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_trunk_tables_name_the_key() {
    let o = Office::new("badconfig");
    let base = std::fs::read_to_string(&o.config).expect("config");
    for (edit, key) in [
        (
            base.replace("kind = \"gateway\"", "kind = \"modem\""),
            "trunk[2].kind",
        ),
        (
            base.replace(
                "address = \"127.0.0.1:5090\"",
                "address = \"127.0.0.1:99999\"",
            ),
            "trunk[1].address",
        ),
        (
            base.replace("\"tollfree\", \"international\"", "\"tollfree\", \"intl\""),
            "calling_rights[0].allow[6]",
        ),
        (
            base.replace("trunk = \"provider\"", "trunk = \"nope\""),
            "did[0].trunk",
        ),
        (
            base.replace("max_channels = 4", "max_chanels = 4"),
            "trunk[2].max_chanels",
        ),
    ] {
        write(&o.config, &edit);
        let out = o.cli(&["check-config"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}: {err}");
        assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
    }
}

#[test]
fn mikrotik_script_forwards_sip_and_rtp_to_the_pbx() {
    let o = Office::new("mikrotik");
    let script = o.ok(&["mikrotik-script"]);
    assert!(
        script.contains("/ip firewall service-port set sip disabled=yes"),
        "{script}"
    );
    assert!(script.contains("192.168.88.10"), "{script}");
    assert!(script.contains("192.168.88.0/24"), "{script}");
    assert!(script.contains("10000-10999"), "{script}");
    assert!(script.contains("5061"), "{script}");
    let other = o.ok(&["mikrotik-script", "--pbx-address", "10.0.0.5"]);
    assert!(other.contains("to-addresses=10.0.0.5"), "{other}");
}

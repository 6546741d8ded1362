//! The steps that write the installed system's configuration from the plan: network, host
//! name, the PBX's config and first extensions, the root password. Files only; the steps that
//! copy, partition or boot are in the parent module.

/// The systemd-networkd file for the plan's network.
use std::fmt::Write as _;

use std::path::PathBuf;

use super::{fail, io, Fail, Install, LIVE_ONLY};
use crate::validate::{AdminCredential, InstallPlan, Ipv4Plan, Ipv6Plan};

pub fn networkd_file(plan: &InstallPlan) -> String {
    let n = &plan.network;
    let mut s =
        String::from("# Written by kentongan-setup from the first-boot answers.\n[Match]\n");
    match &n.interface {
        Some(name) => {
            let _ = writeln!(s, "Name={name}");
        }
        None => s.push_str("Type=ether\n"),
    }
    s.push_str("\n[Network]\n");
    let dhcp4 = matches!(n.ipv4, Ipv4Plan::Dhcp);
    let _ = writeln!(
        s,
        "DHCP={}",
        match (dhcp4, &n.ipv6) {
            (true, Ipv6Plan::Auto) => "yes",
            (true, _) => "ipv4",
            (false, Ipv6Plan::Auto) => "ipv6",
            (false, _) => "no",
        }
    );
    let _ = writeln!(
        s,
        "IPv6AcceptRA={}",
        if matches!(n.ipv6, Ipv6Plan::Auto) {
            "yes"
        } else {
            "no"
        }
    );
    if matches!(n.ipv6, Ipv6Plan::Off) {
        s.push_str("LinkLocalAddressing=no\n");
    }
    if let Ipv4Plan::Static { address, gateway } = &n.ipv4 {
        let _ = writeln!(s, "Address={address}");
        if let Some(g) = gateway {
            let _ = writeln!(s, "Gateway={g}");
        }
    }
    if let Ipv6Plan::Static { address, gateway } = &n.ipv6 {
        let _ = writeln!(s, "Address={address}");
        if let Some(g) = gateway {
            let _ = writeln!(s, "Gateway={g}");
        }
    }
    for d in &n.dns {
        let _ = writeln!(s, "DNS={d}");
    }
    if !plan.domain.is_empty() {
        let _ = writeln!(s, "Domains={}", plan.domain);
    }
    s
}

/// Sets `key = value` in `[table]` of a TOML text, keeping every other line (comments,
/// other keys) as it is: replaces the key's line (and the rest of a `[ … ]` value spread
/// over several lines), else adds the line at the end of the table, else adds the table.
/// `value` must be a TOML value, quoted as needed.
pub fn set_toml_key(text: &str, table: &str, key: &str, value: &str) -> String {
    let line = format!("{key} = {value}");
    let header = format!("[{table}]");
    let mut out: Vec<String> = Vec::new();
    let mut in_table = false;
    let mut done = false;
    let mut skipping_array = false;
    for l in text.lines() {
        let t = l.trim();
        if skipping_array {
            if t.starts_with(']') || t.ends_with(']') {
                skipping_array = false;
            }
            continue;
        }
        if t.starts_with('[') {
            if in_table && !done {
                // The table ends: the key goes after its last non-blank line.
                let at = out
                    .iter()
                    .rposition(|o| !o.trim().is_empty())
                    .map_or(out.len(), |p| p + 1);
                out.insert(at, line.clone());
                done = true;
            }
            in_table = t == header;
        }
        let is_key = t
            .split_once('=')
            .is_some_and(|(k, _)| k.trim() == key && !t.starts_with('#'));
        if in_table && !done && is_key {
            let rest = t.split_once('=').map(|(_, v)| v.trim()).unwrap_or_default();
            // A multi-line array: drop its continuation lines too.
            skipping_array = rest.starts_with('[') && !rest.contains(']');
            out.push(line.clone());
            done = true;
            continue;
        }
        out.push(l.to_owned());
    }
    if !done && in_table {
        let at = out
            .iter()
            .rposition(|o| !o.trim().is_empty())
            .map_or(out.len(), |p| p + 1);
        out.insert(at, line);
    } else if !done {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push(header);
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// The image's pbx.toml with the answers that belong there: `[sip] domain`,
/// `[firewall] trusted` (the networks that reach SSH and admin ports and are never banned)
/// and, when the file has a `[voicemail]` table, its `language` (the wizard's). A file
/// without `[voicemail]` gets none: voicemail stays off as written. Comments and other keys
/// stay; the result is checked with the PBX's own validator.
pub fn pbx_config(
    existing: Option<&str>,
    sip_domain: &str,
    trusted: &[crate::net::Cidr],
    language: crate::validate::Language,
) -> Result<String, String> {
    let text = existing.unwrap_or("# Written by kentongan-setup.\n");
    let text = set_toml_key(text, "sip", "domain", &format!("\"{sip_domain}\""));
    let text = if text.lines().any(|l| l.trim() == "[voicemail]") {
        set_toml_key(
            &text,
            "voicemail",
            "language",
            &format!("\"{}\"", language.code()),
        )
    } else {
        text
    };
    let list: Vec<String> = trusted.iter().map(|c| format!("\"{c}\"")).collect();
    let text = set_toml_key(
        &text,
        "firewall",
        "trusted",
        &format!("[{}]", list.join(", ")),
    );
    kentongan_pbx::config::Config::from_toml(&text).map_err(|e| e.to_string())?;
    Ok(text)
}

pub(super) fn configure(i: &mut Install) -> Result<(), Fail> {
    let plan = i.plan;
    let fqdn = plan.fqdn();
    i.write("etc/hostname", &format!("{}\n", plan.hostname))?;
    i.write(
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{fqdn} {}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
            plan.hostname
        ),
    )?;
    i.write(
        "etc/systemd/network/10-kentongan.network",
        &networkd_file(plan),
    )?;
    if !i.path("usr/lib/systemd/systemd-resolved").exists() && !plan.network.dns.is_empty() {
        let mut r = format!("# Written by kentongan-setup.\nsearch {}\n", plan.domain);
        for d in &plan.network.dns {
            let _ = writeln!(r, "nameserver {d}");
        }
        i.write("etc/resolv.conf", &r)?;
    }

    let localtime = i.path("etc/localtime");
    let _ = std::fs::remove_file(&localtime);
    if let Some(dir) = localtime.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::os::unix::fs::symlink(format!("/usr/share/zoneinfo/{}", plan.timezone), &localtime)
        .map_err(io(&localtime))?;
    i.write("etc/timezone", &format!("{}\n", plan.timezone))?;

    let pbx_path = i.path("etc/kentongan/pbx.toml");
    let existing = std::fs::read_to_string(&pbx_path).ok();
    let pbx = pbx_config(
        existing.as_deref(),
        &plan.sip_domain,
        &plan.trusted,
        plan.language,
    )
    .map_err(|e| {
        fail(
            format!("the PBX configuration would be invalid: {e}"),
            "fix /etc/kentongan/pbx.toml in the image's overlay",
        )
    })?;
    i.write("etc/kentongan/pbx.toml", &pbx)?;

    i.write(
        "etc/kentongan/installed.toml",
        &format!(
            "# Written by kentongan-setup: the first-boot answers, without secrets.\nlanguage = \"{}\"\nhostname = \"{}\"\ndomain = \"{}\"\ntimezone = \"{}\"\nsip_domain = \"{}\"\n",
            plan.language.code(),
            plan.hostname,
            plan.domain,
            plan.timezone,
            plan.sip_domain
        ),
    )?;
    i.write(
        "etc/default/grub",
        "# Written by kentongan-setup.\nGRUB_DEFAULT=0\nGRUB_TIMEOUT=2\nGRUB_DISTRIBUTOR=Kentongan\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=tty0 console=ttyS0,115200n8\"\nGRUB_TERMINAL=\"console serial\"\nGRUB_SERIAL_COMMAND=\"serial --speed=115200\"\n",
    )?;
    // Each installed machine gets its own identity on first boot.
    i.write("etc/machine-id", "")?;
    let _ = std::fs::remove_file(i.path("var/lib/dbus/machine-id"));
    for rel in LIVE_ONLY {
        let _ = std::fs::remove_file(i.path(rel));
    }
    Ok(())
}

/// Hashes the admin password as SHA-512 crypt with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    // 100 000 rounds: about 0.1 s on the appliance, 20× the library default. Unit tests run
    // unoptimised, where that would take seconds.
    const ROUNDS: usize = if cfg!(test) { 1_000 } else { 100_000 };
    let params = sha_crypt::Sha512Params::new(ROUNDS).map_err(|e| format!("{e:?}"))?;
    sha_crypt::sha512_simple(password, &params).map_err(|e| format!("{e:?}"))
}

/// Replaces root's hash in a shadow file's text (adds a root line when there is none).
pub fn shadow_with_root_hash(shadow: &str, hash: &str) -> String {
    let mut found = false;
    let mut out: Vec<String> = shadow
        .lines()
        .map(|l| {
            let mut fields: Vec<&str> = l.split(':').collect();
            if fields.first() == Some(&"root") && fields.len() >= 2 {
                found = true;
                fields[1] = hash;
                fields.join(":")
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !found {
        out.insert(0, format!("root:{hash}::0:99999:7:::"));
    }
    out.join("\n") + "\n"
}

pub(super) fn admin_password(i: &mut Install) -> Result<(), Fail> {
    let hash = match &i.plan.admin {
        AdminCredential::Hash(h) => h.clone(),
        AdminCredential::Password(p) => hash_password(p.expose())
            .map_err(|e| fail(format!("could not hash the password: {e}"), "run again"))?,
    };
    let path = i.path("etc/shadow");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let text = shadow_with_root_hash(&old, &hash);
    // Write beside and rename so a crash never leaves a half-written shadow file; keep its
    // mode (0640, group shadow) or make it private.
    let tmp = i.path("etc/shadow.kentongan-new");
    if let Some(dir) = tmp.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    let perms = std::fs::metadata(&path)
        .map(|m| m.permissions())
        .unwrap_or_else(|_| std::os::unix::fs::PermissionsExt::from_mode(0o600));
    std::fs::set_permissions(&tmp, perms).map_err(io(&tmp))?;
    if let Ok(meta) = std::fs::metadata(&path) {
        use std::os::unix::fs::MetadataExt;
        let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
    }
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

pub(super) fn extensions(i: &mut Install) -> Result<(), Fail> {
    if i.plan.extensions.is_empty() {
        return Ok(());
    }
    let cfg_text = std::fs::read_to_string(i.path("etc/kentongan/pbx.toml")).unwrap_or_default();
    let db = kentongan_pbx::config::Config::from_toml(&cfg_text)
        .map(|c| c.database)
        .unwrap_or_else(|_| PathBuf::from("/var/lib/kentongan/pbx.db"));
    let rel = db.strip_prefix("/").unwrap_or(&db);
    let path = i.root().join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let hint = "check the PBX database path in /etc/kentongan/pbx.toml";
    let store = kentongan_pbx::store::Store::open(&path).map_err(|e| fail(e, hint))?;
    for e in &i.plan.extensions {
        let Some(ext) = kentongan_pbx::store::Extension::parse(&e.number) else {
            return Err(fail(
                format!("extension {} is not valid for the PBX", e.number),
                hint,
            ));
        };
        // A rerun into the same directory replaces what an earlier attempt added.
        let _ = store.remove_user(&ext);
        store
            .add_user(&ext, &e.name, &i.plan.sip_domain, e.password.expose())
            .map_err(|err| fail(err, hint))?;
    }
    Ok(())
}

//! The default ISO that scripts/build made (from a cold cache under CI): its boot records,
//! layers, checksums, manifest and SBOM.

use std::process::Command;

use kentongan_e2e::{appliance_iso, out_dir, run, squashfs_cat};

#[test]
fn iso_boots_under_bios_and_uefi_from_cd_and_usb() {
    let iso = appliance_iso();
    let report = run(Command::new("xorriso")
        .arg("-indev")
        .arg(&iso)
        .args(["-report_el_torito", "plain"]));
    assert!(
        report.contains("El Torito boot img :   1  BIOS"),
        "no BIOS El Torito image:\n{report}"
    );
    assert!(
        report.contains("UEFI"),
        "no UEFI El Torito image:\n{report}"
    );
    assert!(
        report.contains("/boot/grub/i386-pc/eltorito.img"),
        "{report}"
    );
    // Hybrid: an MBR and a GPT with the EFI system partition, for USB sticks.
    let table = run(Command::new("xorriso")
        .arg("-indev")
        .arg(&iso)
        .args(["-report_system_area", "plain"]));
    assert!(
        table.contains("MBR partition"),
        "no MBR partition table:\n{table}"
    );
    assert!(table.contains("GPT"), "no GPT:\n{table}");
}

/// The EFI system partition carries Debian's signed chain: shim (signed through Microsoft's
/// UEFI CA) as the removable-media loader, and GRUB signed with Debian's key beside it.
#[test]
fn esp_holds_the_signed_boot_chain() {
    let iso = appliance_iso();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let esp = tmp.path().join("efi.img");
    run(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/boot/grub/efi.img"])
        .arg(&esp));
    let listing = run(Command::new("mdir")
        .args(["-b", "-i"])
        .arg(&esp)
        .arg("::/EFI/BOOT"));
    for (file, signer) in [
        ("BOOTX64.EFI", "Microsoft Corporation UEFI CA"),
        ("grubx64.efi", "Debian Secure Boot"),
        ("mmx64.efi", "Debian Secure Boot"),
    ] {
        assert!(
            listing.to_lowercase().contains(&file.to_lowercase()),
            "{file} missing from the ESP:\n{listing}"
        );
        let out = tmp.path().join(file);
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&esp)
            .arg(format!("::/EFI/BOOT/{file}"))
            .arg(&out));
        let bytes = std::fs::read(&out).unwrap_or_default();
        assert!(
            bytes.windows(signer.len()).any(|w| w == signer.as_bytes()),
            "{file} carries no signature chaining to `{signer}` ({} bytes)",
            bytes.len()
        );
    }
}

#[test]
fn iso_holds_the_stacked_layers_and_a_serial_console_entry() {
    let iso = appliance_iso();
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("xorriso")
        .arg("-osirrox")
        .arg("on")
        .arg("-indev")
        .arg(&iso)
        .args(["-extract", "/live"])
        .arg(tmp.path().join("live"))
        .args(["-extract", "/boot/grub/grub.cfg"])
        .arg(tmp.path().join("grub.cfg")));
    let live = tmp.path().join("live");
    let module = std::fs::read_to_string(live.join("filesystem.module")).unwrap_or_default();
    assert_eq!(module, "00-base.squashfs\n50-overlay.squashfs\n");
    for file in [
        "00-base.squashfs",
        "50-overlay.squashfs",
        "vmlinuz",
        "initrd.img",
    ] {
        assert!(live.join(file).is_file(), "/live/{file} missing");
    }
    let grub = std::fs::read_to_string(tmp.path().join("grub.cfg")).unwrap_or_default();
    assert!(
        grub.contains("console=tty0 console=ttyS0,115200n8"),
        "{grub}"
    );
    assert!(grub.contains("terminal_output console serial"), "{grub}");

    // The overlay layer carries the rendered templates; the base layer does not.
    let overlay = live.join("50-overlay.squashfs");
    assert_eq!(squashfs_cat(&overlay, "etc/hostname"), "kentongan\n");
    // The firewall is rendered at boot by the shipped binary from the shipped pbx.toml, by a
    // unit that runs before the network is up; run that binary here on that config.
    let unit = squashfs_cat(&overlay, "etc/systemd/system/kentongan-firewall.service");
    assert!(
        unit.contains("firewall apply --lockdown-on-error"),
        "{unit}"
    );
    assert!(
        unit.contains("Before=network-pre.target kentongan-pbx.service"),
        "{unit}"
    );
    let enabled = run(Command::new("unsquashfs")
        .arg("-l")
        .arg(&overlay)
        .arg("etc/systemd/system/sysinit.target.wants"));
    assert!(enabled.contains("kentongan-firewall.service"), "{enabled}");
    let pbx = tmp.path().join("kentongan-pbx");
    let binary = Command::new("unsquashfs")
        .arg("-cat")
        .arg(&overlay)
        .arg("usr/sbin/kentongan-pbx")
        .output()
        .unwrap_or_else(|e| panic!("unsquashfs: {e}"));
    assert!(binary.status.success() && !binary.stdout.is_empty());
    std::fs::write(&pbx, &binary.stdout).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&pbx, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let config = tmp.path().join("pbx.toml");
    std::fs::write(&config, squashfs_cat(&overlay, "etc/kentongan/pbx.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ruleset = run(Command::new(&pbx)
        .arg("--config")
        .arg(&config)
        .args(["firewall", "render"]));
    assert!(ruleset.contains("table inet kentongan {"), "{ruleset}");
    assert!(ruleset.contains("policy drop;"), "{ruleset}");
    let checked = Command::new("nft")
        .args(["--check", "--file", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut nft| {
            use std::io::Write;
            nft.stdin
                .take()
                .map(|mut i| i.write_all(ruleset.as_bytes()));
            nft.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("nft: {e}"));
    assert!(
        checked.status.success(),
        "nft rejects the shipped ruleset: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let base = live.join("00-base.squashfs");
    assert_eq!(squashfs_cat(&base, "etc/hostname"), "localhost\n");
    // The recipe's path_exclude took effect: no sound or GPU modules, and no perl.
    let listing = run(Command::new("unsquashfs").arg("-l").arg(&base));
    for absent in ["/kernel/sound/", "/kernel/drivers/gpu/", "/usr/share/perl/"] {
        assert!(
            !listing.contains(absent),
            "the base layer still has {absent}"
        );
    }
    assert!(
        listing.contains("/kernel/drivers/net/ethernet/"),
        "NIC drivers were excluded"
    );
}

#[test]
fn sha256sums_verify() {
    let out = out_dir();
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap_or_default();
    for name in [
        "kentongan-0.1.0-amd64.iso",
        "manifest.json",
        "kentongan-0.1.0-amd64.spdx.json",
    ] {
        assert!(
            sums.contains(&format!("  {name}\n")),
            "SHA256SUMS lacks {name}:\n{sums}"
        );
    }
    run(Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&out));
}

#[test]
fn manifest_records_stages_packages_and_crates() {
    let text = std::fs::read_to_string(out_dir().join("manifest.json")).unwrap_or_default();
    let manifest: kentongan_image::Manifest =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("manifest.json: {e}"));
    let stages: Vec<&str> = manifest.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "base-rootfs",
            "binaries",
            "overlays",
            "base-layer",
            "overlay-layer",
            "iso"
        ]
    );
    assert!(manifest.stages.iter().all(|s| s.key.len() == 64));
    for wanted in ["linux-image-amd64", "live-boot", "systemd", "nftables"] {
        let found = manifest.debian_packages.iter().find(|p| p.name == wanted);
        assert!(
            found.is_some_and(|p| !p.version.is_empty()),
            "manifest lacks {wanted} with a version"
        );
    }
    assert!(
        !manifest.rust_crates.is_empty(),
        "manifest lists no Rust crates"
    );
}

#[test]
fn sbom_is_spdx_and_lists_kernel_and_crates() {
    let text = std::fs::read_to_string(out_dir().join("kentongan-0.1.0-amd64.spdx.json"))
        .unwrap_or_default();
    let sbom: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("SBOM: {e}"));
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    assert_eq!(sbom["dataLicense"], "CC0-1.0");
    let packages = sbom["packages"].as_array().cloned().unwrap_or_default();
    let purls: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(purls
        .iter()
        .any(|p| p.starts_with("pkg:deb/debian/linux-image-amd64@")));
    assert!(
        purls.iter().any(|p| p.starts_with("pkg:cargo/")),
        "no Rust crates in the SBOM"
    );
    let ids: std::collections::HashSet<&str> = packages
        .iter()
        .filter_map(|p| p["SPDXID"].as_str())
        .collect();
    assert_eq!(ids.len(), packages.len(), "SPDX ids are not unique");
    let relationships = sbom["relationships"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        relationships.len(),
        packages.len(),
        "every package is related to the image"
    );
}

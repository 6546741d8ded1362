//! Two builds of the appliance from different caches give the same bytes: the second is fully
//! cold (an empty cache, nothing shared with the first, mmdebstrap included), so anything whose
//! owner, mode or content depends on the order things happened in the chroot shows. A third
//! build with nothing changed must hit the cache.

use std::path::Path;
use std::process::Command;

use kentongan_e2e::{appliance_iso, out_dir, run};
use kentongan_image::{build, BuildOptions, Outcome, Recipe, Silent, Stage};

/// `unsquashfs -lls` of each layer in `iso`, for naming the file that differs.
fn layer_listings(iso: &Path, work: &Path) -> Vec<(String, String)> {
    kentongan_image::iso::LAYERS
        .iter()
        .map(|layer| {
            let out = work.join(layer);
            let _ = std::fs::remove_file(&out);
            run(Command::new("xorriso")
                .args(["-osirrox", "on", "-indev"])
                .arg(iso)
                .arg("-extract")
                .arg(format!("/live/{layer}"))
                .arg(&out));
            let listing = Command::new("unsquashfs")
                .args(["-lls", "-d", ""])
                .arg(&out)
                .output()
                .unwrap_or_else(|e| panic!("unsquashfs: {e}"));
            (
                (*layer).to_owned(),
                String::from_utf8_lossy(&listing.stdout).into_owned(),
            )
        })
        .collect()
}

/// The lines of the two listings that differ, at most a screenful.
fn listing_diff(a: &str, b: &str) -> String {
    let a_lines: std::collections::BTreeSet<&str> = a.lines().collect();
    let b_lines: std::collections::BTreeSet<&str> = b.lines().collect();
    let mut out: Vec<String> = a_lines
        .difference(&b_lines)
        .map(|l| format!("- {l}"))
        .chain(b_lines.difference(&a_lines).map(|l| format!("+ {l}")))
        .collect();
    out.sort_by(|x, y| {
        x[2..]
            .split_whitespace()
            .last()
            .cmp(&y[2..].split_whitespace().last())
    });
    out.truncate(40);
    out.join("\n")
}

fn sha256(path: &Path) -> String {
    kentongan_image::hash::sha256_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_second_cold_build_is_bit_identical_and_a_third_is_all_cache_hits() {
    let first_iso = appliance_iso();
    let first_manifest = std::fs::read(out_dir().join("manifest.json")).unwrap_or_default();
    let scratch = tempfile::Builder::new()
        .prefix("kentongan-repro")
        .tempdir_in("/var/tmp")
        .unwrap_or_else(|e| panic!("{e}"));
    let cache = scratch.path().join("cache");

    let recipe =
        Recipe::load(Path::new("image-recipes/appliance.toml")).unwrap_or_else(|e| panic!("{e}"));
    let options = BuildOptions {
        out_dir: scratch.path().join("out"),
        cache_dir: cache,
    };
    let second = build(&recipe, &options, &Silent).unwrap_or_else(|e| panic!("second build: {e}"));
    let outcome = |out: &kentongan_image::BuildOutput, stage| {
        out.outcomes
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, o)| *o)
    };
    for stage in [
        Stage::BaseRootfs,
        Stage::BaseLayer,
        Stage::OverlayLayer,
        Stage::Iso,
    ] {
        assert_eq!(
            outcome(&second, stage),
            Some(Outcome::Built),
            "{stage} was not rebuilt"
        );
    }
    if sha256(&second.iso) != sha256(&first_iso) {
        let work = scratch.path().join("layers");
        std::fs::create_dir_all(&work).unwrap_or_else(|e| panic!("{e}"));
        let first = layer_listings(&first_iso, &work.join("first"));
        let second_listing = layer_listings(&second.iso, &work.join("second"));
        let report: Vec<String> = first
            .iter()
            .zip(&second_listing)
            .filter(|((_, a), (_, b))| a != b)
            .map(|((layer, a), (_, b))| format!("{layer}:\n{}", listing_diff(a, b)))
            .collect();
        panic!(
            "the ISO differs between two cold builds of the same inputs; unsquashfs -lls shows:\n{}",
            if report.is_empty() {
                "no difference in the layers' listings (file contents or the ISO's own layout differ)".to_owned()
            } else {
                report.join("\n")
            }
        );
    }
    let second_manifest = std::fs::read(options.out_dir.join("manifest.json")).unwrap_or_default();
    assert_eq!(second_manifest, first_manifest, "manifest.json differs");

    let third = build(&recipe, &options, &Silent).unwrap_or_else(|e| panic!("third build: {e}"));
    assert_eq!(outcome(&third, Stage::Iso), Some(Outcome::Hit));
    assert!(
        third.outcomes.iter().all(|(_, o)| *o != Outcome::Built),
        "a no-op rebuild built something: {:?}",
        third.outcomes
    );
    assert_eq!(sha256(&third.iso), sha256(&first_iso));
}

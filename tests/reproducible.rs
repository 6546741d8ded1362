//! Two builds of the appliance from different caches give the same bytes. To fit CI, the
//! second build shares only the base root filesystem (mmdebstrap's output) with the first;
//! every stage after it runs cold. A third build with nothing changed must hit the cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use kentongan_e2e::{appliance_iso, out_dir, run};
use kentongan_image::{build, BuildOptions, Outcome, Recipe, Silent, Stage};

fn first_cache() -> PathBuf {
    let cache = std::env::var_os("KENTONGAN_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(kentongan_image::Cache::default_dir);
    assert!(
        cache.join("entries/base-rootfs").is_dir(),
        "{} holds no base-rootfs entry: run scripts/build first (scripts/test does)",
        cache.display()
    );
    cache
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
    std::fs::create_dir_all(cache.join("entries")).unwrap_or_else(|e| panic!("{e}"));
    // Entries never change once committed, so hard links share them safely.
    run(Command::new("cp")
        .arg("-al")
        .arg(first_cache().join("entries/base-rootfs"))
        .arg(cache.join("entries/base-rootfs")));

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
    assert_eq!(outcome(&second, Stage::BaseRootfs), Some(Outcome::Hit));
    for stage in [Stage::BaseLayer, Stage::OverlayLayer, Stage::Iso] {
        assert_eq!(
            outcome(&second, stage),
            Some(Outcome::Built),
            "{stage} was not rebuilt"
        );
    }
    assert_eq!(
        sha256(&second.iso),
        sha256(&first_iso),
        "the ISO differs between two builds of the same inputs"
    );
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

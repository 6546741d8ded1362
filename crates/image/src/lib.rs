//! The Kentongan image builder: a recipe plus overlays becomes a hybrid BIOS+UEFI live ISO.
//!
//! This crate owns the recipe format ([`Recipe`]), overlay rendering ([`overlay`]), the stage
//! pipeline with its content-addressed cache ([`build()`], [`Cache`], [`StageKeys`]) and the
//! records of what went into an image ([`Manifest`], SPDX SBOM), and the workspace `.deb`s as a
//! signed APT repository for upgrades ([`build_debs`], [`repo::write`]). It runs host tools
//! (mmdebstrap, mksquashfs, grub-mkimage, mkfs.fat, mtools, xorriso, dpkg-deb, cargo) but never draws anything: progress
//! goes to a [`Reporter`] the binary implements, and errors carry a `hint()` for the operator.
//!
//! It deliberately does not boot images (that is `kentongan-vmtest`) or know what the PBX is:
//! the appliance is whatever the recipe lists.
//!
//! ```no_run
//! use kentongan_image::{build, BuildOptions, Recipe, Silent};
//! let recipe = Recipe::load("image-recipes/appliance.toml".as_ref())?;
//! let options = BuildOptions { out_dir: "out".into(), cache_dir: "/tmp/cache".into() };
//! let output = build(&recipe, &options, &Silent)?;
//! println!("{}", output.iso.display());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod build;
pub mod cache;
pub mod hash;
pub mod iso;
pub mod manifest;
pub mod overlay;
pub mod recipe;
pub mod repo;
pub mod stages;
pub mod tools;

pub use build::{
    build, build_debs, plan, BuildError, BuildOptions, BuildOutput, Outcome, Reporter, Silent,
};
pub use cache::Cache;
pub use hash::StageKey;
pub use manifest::Manifest;
pub use recipe::{Recipe, RecipeError};
pub use stages::{HostFacts, Stage, StageKeys};

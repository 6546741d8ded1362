//! Shared helpers for the end-to-end tests in `tests/`: where the project's folders are.

use std::path::PathBuf;

/// The repository root (where `Cargo.toml`, `image-recipes/` and `overlays/` live).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

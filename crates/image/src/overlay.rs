//! Overlays: folders under `overlays/` that mirror the target filesystem. Files ending `.tera`
//! are rendered against the recipe's `[vars]`; everything else is copied with its mode. Later
//! overlays win over earlier ones at the same path.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::hash::{KeyBuilder, StageKey};
use crate::recipe::Recipe;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
}

/// One path of the rendered tree. `path` is relative to the image root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub mode: u32,
    pub kind: NodeKind,
    /// Which overlay file produced it, for error messages.
    pub source: PathBuf,
}

/// All overlays of a recipe, rendered and merged, in path order.
#[derive(Debug, Default)]
pub struct RenderedTree {
    pub nodes: BTreeMap<PathBuf, Node>,
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("cannot read overlay file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", file.display())]
    Template {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    Conflict { file: PathBuf, message: String },
}

impl OverlayError {
    pub fn hint(&self) -> &'static str {
        match self {
            OverlayError::Read { .. } => "check the file's permissions",
            OverlayError::Template { .. } => {
                "fix the template, or define the variable under [vars] in the recipe"
            }
            OverlayError::Conflict { .. } => {
                "an overlay may not put a file where another overlay has a folder, or the reverse"
            }
        }
    }
}

/// The stage key of the overlays: every source file's path, mode and bytes, in the order they
/// are applied, plus the template variables. Cheap: it reads files but renders nothing.
pub fn input_key(recipe: &Recipe) -> Result<StageKey, OverlayError> {
    let mut key = KeyBuilder::new("overlays");
    key.field("vars", recipe.vars.to_string())
        .field("name", &recipe.name)
        .field("version", &recipe.version)
        .field("suite", &recipe.suite);
    for overlay in &recipe.overlays {
        key.field("overlay", &overlay.name);
        for entry in walk(&overlay.dir) {
            let entry = entry?;
            let rel = rel_path(&overlay.dir, entry.path());
            key.field("path", rel.as_os_str().as_encoded_bytes());
            key.field("mode", entry.mode.to_le_bytes());
            match &entry.kind {
                SourceKind::Dir => key.field("dir", ""),
                SourceKind::Symlink(target) => {
                    key.field("symlink", target.as_os_str().as_encoded_bytes())
                }
                SourceKind::File => {
                    let bytes =
                        std::fs::read(entry.path()).map_err(|source| OverlayError::Read {
                            path: entry.path().to_owned(),
                            source,
                        })?;
                    key.field("file", bytes)
                }
            };
        }
    }
    Ok(key.finish())
}

/// Renders every overlay of the recipe into memory.
pub fn render(recipe: &Recipe) -> Result<RenderedTree, OverlayError> {
    let mut context =
        tera::Context::from_value(toml_to_json(&toml::Value::Table(recipe.vars.clone())))
            .unwrap_or_default();
    context.insert(
        "recipe",
        &serde_json::json!({
            "name": recipe.name,
            "version": recipe.version,
            "suite": recipe.suite,
        }),
    );

    let mut tree = RenderedTree::default();
    for overlay in &recipe.overlays {
        for entry in walk(&overlay.dir) {
            let entry = entry?;
            let source = entry.path().to_owned();
            let rel = rel_path(&overlay.dir, &source);
            if rel.as_os_str().is_empty() {
                continue;
            }
            let (target, node_kind) = match entry.kind {
                SourceKind::Dir => (rel, NodeKind::Dir),
                SourceKind::Symlink(link) => (rel, NodeKind::Symlink(link)),
                SourceKind::File => {
                    let bytes = std::fs::read(&source).map_err(|e| OverlayError::Read {
                        path: source.clone(),
                        source: e,
                    })?;
                    match rel.to_str().and_then(|s| s.strip_suffix(".tera")) {
                        Some(stripped) => {
                            let rendered = render_template(&source, &bytes, &context)?;
                            (
                                PathBuf::from(stripped),
                                NodeKind::File(rendered.into_bytes()),
                            )
                        }
                        None => (rel, NodeKind::File(bytes)),
                    }
                }
            };
            if let Some(existing) = tree.nodes.get(&target) {
                let was_dir = existing.kind == NodeKind::Dir;
                let is_dir = node_kind == NodeKind::Dir;
                if was_dir != is_dir {
                    return Err(OverlayError::Conflict {
                        file: source,
                        message: format!(
                            "`/{}` is a {} in {}",
                            target.display(),
                            if was_dir { "folder" } else { "file" },
                            existing.source.display()
                        ),
                    });
                }
            }
            tree.nodes.insert(
                target,
                Node {
                    mode: entry.mode,
                    kind: node_kind,
                    source,
                },
            );
        }
    }
    Ok(tree)
}

fn render_template(
    file: &Path,
    bytes: &[u8],
    context: &tera::Context,
) -> Result<String, OverlayError> {
    let text = std::str::from_utf8(bytes).map_err(|e| OverlayError::Template {
        file: file.to_owned(),
        line: line_of_offset(bytes, e.valid_up_to()),
        message: "a .tera template must be UTF-8 text".into(),
    })?;
    let name = file.display().to_string();
    let mut tera = tera::Tera::default();
    // Config files, not HTML: never escape.
    tera.autoescape_on(vec![]);
    if let Err(e) = tera.add_raw_template(&name, text) {
        let message = error_chain(&e);
        return Err(OverlayError::Template {
            file: file.to_owned(),
            line: parse_error_line(&message).unwrap_or(1),
            message: first_meaningful_line(&message),
        });
    }
    tera.render(&name, context).map_err(|e| {
        let message = error_chain(&e);
        let line = undefined_variable(&message)
            .and_then(|var| line_mentioning(text, &var))
            .unwrap_or(1);
        OverlayError::Template {
            file: file.to_owned(),
            line,
            message: first_meaningful_line(&message),
        }
    })
}

fn error_chain(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join("\n")
}

/// tera reports parse errors with a ` --> LINE:COL` marker.
fn parse_error_line(message: &str) -> Option<usize> {
    let after = message.split("--> ").nth(1)?;
    after.split(':').next()?.trim().parse().ok()
}

/// The part of tera's message that says what is wrong, without its excerpt or its name for
/// the template (the error already names the file and line).
fn first_meaningful_line(message: &str) -> String {
    let lines = || message.lines().map(str::trim).filter(|l| !l.is_empty());
    if let Some(expected) = lines().find_map(|l| l.strip_prefix("= ")) {
        return format!("syntax error: {expected}");
    }
    lines()
        .find(|l| !l.starts_with("Failed to"))
        .map(|l| l.split(" while rendering").next().unwrap_or(l).to_owned())
        .unwrap_or_else(|| "invalid template".to_owned())
}

fn undefined_variable(message: &str) -> Option<String> {
    let start = message.find("Variable `")? + "Variable `".len();
    let end = message[start..].find('`')?;
    Some(message[start..start + end].to_owned())
}

fn line_mentioning(text: &str, var: &str) -> Option<usize> {
    text.lines()
        .position(|l| l.contains("{{") && l.contains(var) || l.contains("{%") && l.contains(var))
        .map(|i| i + 1)
}

fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

enum SourceKind {
    Dir,
    File,
    Symlink(PathBuf),
}

struct SourceEntry {
    path: PathBuf,
    mode: u32,
    kind: SourceKind,
}

impl SourceEntry {
    fn path(&self) -> &Path {
        &self.path
    }
}

/// Every entry below `dir`, sorted by name so the result never depends on directory order.
fn walk(dir: &Path) -> impl Iterator<Item = Result<SourceEntry, OverlayError>> {
    WalkDir::new(dir)
        .sort_by_file_name()
        .follow_links(false)
        .into_iter()
        .map(|entry| {
            let entry = entry.map_err(|e| OverlayError::Read {
                path: e.path().map(Path::to_owned).unwrap_or_default(),
                source: e.into(),
            })?;
            let meta = entry
                .path()
                .symlink_metadata()
                .map_err(|e| OverlayError::Read {
                    path: entry.path().to_owned(),
                    source: e,
                })?;
            let kind = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(entry.path()).map_err(|e| OverlayError::Read {
                    path: entry.path().to_owned(),
                    source: e,
                })?;
                SourceKind::Symlink(target)
            } else if meta.is_dir() {
                SourceKind::Dir
            } else {
                SourceKind::File
            };
            Ok(SourceEntry {
                path: entry.into_path(),
                mode: meta.mode() & 0o7777,
                kind,
            })
        })
}

fn rel_path(base: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(base).unwrap_or(path).to_owned()
}

impl RenderedTree {
    /// Writes the tree below `root`, owned by root, replacing what is there. Parent folders that
    /// exist keep their mode: an overlay's `etc/` folder must not change the image's `/etc`.
    pub fn write_into(&self, root: &Path) -> std::io::Result<()> {
        for (rel, node) in &self.nodes {
            let target = root.join(rel);
            let existing = target.symlink_metadata().ok();
            match &node.kind {
                NodeKind::Dir => {
                    match existing {
                        Some(m) if m.is_dir() => {}
                        Some(_) => {
                            std::fs::remove_file(&target)?;
                            std::fs::create_dir(&target)?;
                            set_mode(&target, node.mode)?;
                        }
                        None => {
                            std::fs::create_dir(&target)?;
                            set_mode(&target, node.mode)?;
                        }
                    }
                    std::os::unix::fs::lchown(&target, Some(0), Some(0))?;
                }
                NodeKind::File(bytes) => {
                    if existing.is_some_and(|m| !m.is_file()) {
                        remove_any(&target)?;
                    }
                    std::fs::write(&target, bytes)?;
                    set_mode(&target, node.mode)?;
                    std::os::unix::fs::lchown(&target, Some(0), Some(0))?;
                }
                NodeKind::Symlink(link) => {
                    if existing.is_some() {
                        remove_any(&target)?;
                    }
                    std::os::unix::fs::symlink(link, &target)?;
                    std::os::unix::fs::lchown(&target, Some(0), Some(0))?;
                }
            }
        }
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if path.symlink_metadata()?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_line_of_an_undefined_variable() {
        let text = "a = 1\nb = {{ missing }}\n";
        assert_eq!(line_mentioning(text, "missing"), Some(2));
        assert_eq!(
            undefined_variable("Variable `missing` not found in context while rendering 'x'"),
            Some("missing".into())
        );
    }
}

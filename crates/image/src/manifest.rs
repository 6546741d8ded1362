//! What went into an image: `manifest.json` (stage keys, exact package versions, Rust crates)
//! and the same as an SPDX 2.3 JSON software bill of materials.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebianPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct RustCrate {
    pub name: String,
    pub version: String,
    /// `registry+https://github.com/rust-lang/crates.io-index`, or `workspace`.
    pub source: String,
    pub license: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageRecord {
    pub stage: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub file: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub recipe: RecipeRecord,
    pub source_date_epoch: i64,
    pub iso: FileRecord,
    pub stages: Vec<StageRecord>,
    pub debian_packages: Vec<DebianPackage>,
    pub rust_crates: Vec<RustCrate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecipeRecord {
    pub file: String,
    pub sha256: String,
}

/// Parses `dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n'` output.
pub fn parse_dpkg_list(text: &str) -> Vec<DebianPackage> {
    let mut packages: Vec<DebianPackage> = text
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            Some(DebianPackage {
                name: f.next()?.to_owned(),
                version: f.next()?.to_owned(),
                architecture: f.next()?.to_owned(),
            })
        })
        .filter(|p| !p.name.is_empty() && !p.version.is_empty())
        .collect();
    packages.sort();
    packages
}

/// The crates compiled into `roots` (workspace package names), from `cargo metadata` JSON:
/// normal dependencies only, since build and dev dependencies do not ship.
pub fn crates_from_metadata(
    metadata: &serde_json::Value,
    roots: &[String],
) -> Result<Vec<RustCrate>, String> {
    use std::collections::{BTreeMap, BTreeSet};
    let packages = metadata["packages"]
        .as_array()
        .ok_or("cargo metadata has no packages")?;
    let by_id: BTreeMap<&str, &serde_json::Value> = packages
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .ok_or("cargo metadata has no resolve graph")?;
    let deps: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .filter_map(|n| {
            let id = n["id"].as_str()?;
            let normal = n["deps"]
                .as_array()?
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
                })
                .filter_map(|d| d["pkg"].as_str())
                .collect();
            Some((id, normal))
        })
        .collect();
    let mut todo: Vec<&str> = packages
        .iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| roots.iter().any(|r| r == n))
        })
        .filter(|p| p["source"].is_null())
        .filter_map(|p| p["id"].as_str())
        .collect();
    if todo.len() != roots.len() {
        return Err(format!("cargo metadata lacks some of {}", roots.join(", ")));
    }
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if seen.insert(id) {
            todo.extend(deps.get(id).into_iter().flatten());
        }
    }
    let mut crates: Vec<RustCrate> = seen
        .into_iter()
        .filter_map(|id| by_id.get(id))
        .map(|p| RustCrate {
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            version: p["version"].as_str().unwrap_or_default().to_owned(),
            source: p["source"].as_str().unwrap_or("workspace").to_owned(),
            license: p["license"].as_str().map(str::to_owned),
        })
        .collect();
    crates.sort();
    Ok(crates)
}

/// The manifest as an SPDX 2.3 JSON document: the ISO contains every Debian package and crate.
pub fn spdx(manifest: &Manifest) -> serde_json::Value {
    let image_id = "SPDXRef-Image";
    let mut packages = vec![serde_json::json!({
        "name": manifest.iso.file,
        "SPDXID": image_id,
        "versionInfo": manifest.version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "checksums": [{ "algorithm": "SHA256", "checksumValue": manifest.iso.sha256 }],
    })];
    let mut relationships = vec![serde_json::json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": image_id,
    })];
    for p in &manifest.debian_packages {
        let id = spdx_id("deb", &p.name, &p.version);
        packages.push(serde_json::json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!(
                    "pkg:deb/debian/{}@{}?arch={}",
                    p.name,
                    purl_escape(&p.version),
                    p.architecture
                ),
            }],
        }));
        relationships.push(contains(image_id, &id));
    }
    for c in &manifest.rust_crates {
        let id = spdx_id("crate", &c.name, &c.version);
        let mut package = serde_json::json!({
            "name": c.name,
            "SPDXID": id,
            "versionInfo": c.version,
            "downloadLocation": if c.source == "workspace" {
                "NOASSERTION".to_owned()
            } else {
                format!("https://crates.io/api/v1/crates/{}/{}/download", c.name, c.version)
            },
            "filesAnalyzed": false,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!("pkg:cargo/{}@{}", c.name, c.version),
            }],
        });
        if let Some(license) = &c.license {
            package["licenseDeclared"] = serde_json::Value::String(license.replace('/', " OR "));
        }
        packages.push(package);
        relationships.push(contains(image_id, &id));
    }
    serde_json::json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": manifest.iso.file,
        "documentNamespace": format!(
            "https://kentongan.invalid/spdx/{}-{}-{}",
            manifest.name, manifest.version, manifest.iso.sha256
        ),
        "creationInfo": {
            "created": crate::iso::rfc3339(manifest.source_date_epoch),
            "creators": [format!("Tool: kentongan-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

fn contains(from: &str, to: &str) -> serde_json::Value {
    serde_json::json!({
        "spdxElementId": from,
        "relationshipType": "CONTAINS",
        "relatedSpdxElement": to,
    })
}

/// SPDX ids allow only letters, digits, `.` and `-`.
fn spdx_id(kind: &str, name: &str, version: &str) -> String {
    let clean: String = format!("{name}-{version}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("SPDXRef-{kind}-{clean}")
}

fn purl_escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace(':', "%3A")
        .replace('+', "%2B")
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees a
/// half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_ids_are_valid() {
        assert_eq!(
            spdx_id("deb", "libstdc++6", "12.2.0-14"),
            "SPDXRef-deb-libstdc--6-12.2.0-14"
        );
    }

    #[test]
    fn dpkg_list() {
        let p = parse_dpkg_list("b\t1.0\tamd64\na\t2:1.1-3\tall\n\n");
        assert_eq!(p[0].name, "a");
        assert_eq!(p[1].version, "1.0");
    }

    #[test]
    fn crate_closure_follows_normal_dependencies_only() {
        let metadata = serde_json::json!({
            "packages": [
                {"id": "app", "name": "app", "version": "0.1.0", "source": null, "license": null},
                {"id": "lib", "name": "lib", "version": "1.0.0", "source": "registry+x", "license": "MIT/Apache-2.0"},
                {"id": "dev", "name": "dev", "version": "1.0.0", "source": "registry+x", "license": "MIT"},
            ],
            "resolve": {"nodes": [
                {"id": "app", "deps": [
                    {"pkg": "lib", "dep_kinds": [{"kind": null}]},
                    {"pkg": "dev", "dep_kinds": [{"kind": "dev"}]},
                ]},
                {"id": "lib", "deps": []},
                {"id": "dev", "deps": []},
            ]},
        });
        let crates = crates_from_metadata(&metadata, &["app".into()]).unwrap_or_default();
        let names: Vec<&str> = crates.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "lib"]);
    }
}

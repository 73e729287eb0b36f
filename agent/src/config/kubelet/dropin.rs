//! The drop-in directory (`--config-dir`, GA in Kubernetes 1.35), merged the way kubelet merges
//! it (cmd/kubelet/app/server.go, mergeKubeletConfigurations):
//!
//! - every file whose name ends in `.conf`, found by walking the directory depth-first in
//!   lexical order (Go's `filepath.WalkDir`, so subdirectories count too), is applied in turn
//!   over `--config`, each a whole KubeletConfiguration (`apiVersion` and `kind` included);
//! - a mapping merges key by key, recursively: a nested struct keeps the fields a drop-in does
//!   not set, and so does a map such as `featureGates` or `evictionHard`;
//! - anything else, lists included (`clusterDNS`), replaces what came before;
//! - a `null` changes nothing. (RFC 7386 would delete the key; kubelet merges its internal type,
//!   whose JSON keys never match the patch's, so a null there is a no-op.)
//!
//! Relative paths in drop-ins are kept as written, as kubelet does (it resolves them only in
//! the `--config` file).

use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::config::ConfigError;

fn walk_error(dir: &Path, source: &std::io::Error) -> ConfigError {
    ConfigError::ConfigDir {
        path: dir.to_path_buf(),
        message: source.to_string(),
    }
}

/// The drop-in files under `dir`, in the order kubelet applies them.
pub fn files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ConfigError> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| walk_error(dir, &e))?;
    // Go sorts by name, byte-wise.
    entries.sort_by(|a, b| {
        a.file_name()
            .as_encoded_bytes()
            .cmp(b.file_name().as_encoded_bytes())
    });
    for entry in entries {
        let path = entry.path();
        // Like WalkDir: a symlink is not followed into, but a symlinked file is read.
        let kind = entry.file_type().map_err(|e| walk_error(&path, &e))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "conf")
            || entry.file_name().as_encoded_bytes() == b".conf"
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Applies one drop-in over the configuration so far.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (_, Value::Null) => {}
        (Value::Mapping(into), Value::Mapping(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None if value.is_null() => {}
                    None => {
                        let mut fresh = Value::Null;
                        merge(&mut fresh, value);
                        into.insert(key, fresh);
                    }
                }
            }
        }
        (slot, value) => *slot = without_nulls(value),
    }
}

/// A value with the nulls inside its mappings removed (a null never sets anything).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn structs_and_maps_merge_lists_and_scalars_replace_nulls_do_nothing() {
        let mut base = yaml(
            "port: 20250\naddress: 192.168.0.1\nauthorization: {mode: Webhook, webhook: {cacheAuthorizedTTL: 5m, cacheUnauthorizedTTL: 30s}}\n\
             featureGates: {AllAlpha: false, MemoryQoS: true}\nclusterDNS: [192.168.0.9, 192.168.0.8]\n\
             staticPodURLHeader: {a: [x, y], b: [z]}\nmaxPods: 100\n",
        );
        merge(
            &mut base,
            yaml(
                "address: 192.168.0.8\nauthorization: {mode: AlwaysAllow, webhook: {cacheAuthorizedTTL: 8m}}\n\
                 featureGates: {MemoryQoS: false, KubeletTracing: true}\nclusterDNS: [192.168.0.2]\n\
                 staticPodURLHeader: {b: [w]}\nmaxPods: null\nnewMap: {k: v, gone: null}\n",
            ),
        );
        let want = yaml(
            "port: 20250\naddress: 192.168.0.8\nauthorization: {mode: AlwaysAllow, webhook: {cacheAuthorizedTTL: 8m, cacheUnauthorizedTTL: 30s}}\n\
             featureGates: {AllAlpha: false, MemoryQoS: false, KubeletTracing: true}\nclusterDNS: [192.168.0.2]\n\
             staticPodURLHeader: {a: [x, y], b: [w]}\nmaxPods: 100\nnewMap: {k: v}\n",
        );
        assert_eq!(base, want);
    }

    #[test]
    fn files_are_walked_in_lexical_order_with_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "20-b.conf",
            "10-a.conf",
            "15-sub/01-x.conf",
            "15-sub/notes.txt",
            "99-z.yaml",
            "30-c.conf.bak",
        ] {
            let path = d.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let names: Vec<String> = files(d)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["10-a.conf", "15-sub/01-x.conf", "20-b.conf"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let e = files(Path::new("/nonexistent/kubelet.conf.d"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/kubelet.conf.d"), "{e}");
    }
}

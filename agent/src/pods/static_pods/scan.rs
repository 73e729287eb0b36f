//! One look at the static pod directory (or the one file the path names), as kubelet's file
//! source lists it (pkg/kubelet/config/file.go `extractFromDir`): every entry whose name does not start with
//! '.', in name order; symlinks are followed (the directory is the administrator's, not a
//! pod's), directories are not recursed into, anything but a regular file is skipped, and a
//! file over 10 MiB (kubelet's `maxConfigLength`) is refused. A bad file never hides the good
//! ones: each file comes back with its pod or the reason it has none.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::manifest;

/// kubelet's maxConfigLength.
pub const MAX_MANIFEST_BYTES: u64 = 10 << 20;

/// What one file of the directory gave.
#[derive(Debug)]
pub struct Manifest {
    pub path: PathBuf,
    /// The pod, or why the file is not one (kubelet's words).
    pub pod: Result<Pod, String>,
}

/// Reads every manifest in `dir` for node `node` (or the one file `dir` names, as kubelet
/// accepts). Errors only when the path itself cannot be read (NotFound when it does not exist).
pub fn scan(dir: &Path, node: &str) -> std::io::Result<Vec<Manifest>> {
    if std::fs::metadata(dir)?.is_file() {
        let pod =
            read(dir).and_then(|data| manifest::parse(&data, dir, node).map_err(|e| e.to_string()));
        return Ok(vec![Manifest {
            path: dir.to_path_buf(),
            pod,
        }]);
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let pod = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => Err(format!("could not get metadata: {e}")),
            Ok(m) if m.is_dir() => {
                Err("the manifest path is a directory, not recursing into it".to_string())
            }
            Ok(m) if !m.is_file() => Err("the manifest path is not a regular file".to_string()),
            Ok(_) => read(&path)
                .and_then(|data| manifest::parse(&data, &path, node).map_err(|e| e.to_string())),
        };
        out.push(Manifest { path, pod });
    }
    Ok(out)
}

/// The file's bytes, at most [`MAX_MANIFEST_BYTES`]. Opened non-blocking and checked to be a
/// regular file once open, so a FIFO swapped in after the listing cannot hang the agent.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits().cast_signed())
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("the manifest path is not a regular file".to_string());
    }
    let mut data = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read: {e}"))?;
    if data.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(format!(
            "the file is larger than {MAX_MANIFEST_BYTES} bytes (kubelet's limit)"
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: NAME}\n\
        spec: {containers: [{name: c, image: i}]}\n";

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn names(found: &[Manifest]) -> Vec<(String, Result<String, String>)> {
        found
            .iter()
            .map(|m| {
                let file = m.path.file_name().unwrap().to_string_lossy().to_string();
                let pod = m.pod.as_ref().map(|p| p.metadata.name.clone().unwrap());
                (file, pod.map_err(Clone::clone))
            })
            .collect()
    }

    #[test]
    fn good_files_run_bad_ones_say_why_and_dot_files_and_dirs_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.yaml", &POD.replace("NAME", "b"));
        write(
            dir.path(),
            "a.json",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#,
        );
        write(dir.path(), ".hidden.yaml", &POD.replace("NAME", "hidden"));
        write(dir.path(), "broken.yaml", "kind: [");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        write(&dir.path().join("sub"), "c.yaml", &POD.replace("NAME", "c"));
        std::os::unix::fs::symlink(dir.path().join("b.yaml"), dir.path().join("link.yaml"))
            .unwrap();
        let found = names(&scan(dir.path(), "n").unwrap());
        assert_eq!(found[0], ("a.json".into(), Ok("a-n".into())));
        assert_eq!(found[1], ("b.yaml".into(), Ok("b-n".into())));
        assert_eq!(found[2].0, "broken.yaml");
        assert!(
            found[2]
                .1
                .as_ref()
                .unwrap_err()
                .contains("couldn't parse as pod")
        );
        assert_eq!(
            found[3],
            ("link.yaml".into(), Ok("b-n".into())),
            "symlinks are read"
        );
        assert_eq!(found[4].0, "sub");
        assert!(found[4].1.as_ref().unwrap_err().contains("not recursing"));
        assert_eq!(found.len(), 5);
    }

    #[test]
    fn a_file_over_ten_mib_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = format!(
            "{}\n# {}\n",
            POD.replace("NAME", "big"),
            "x".repeat(10 << 20)
        );
        write(dir.path(), "big.yaml", &big);
        let found = scan(dir.path(), "n").unwrap();
        assert!(found[0].pod.as_ref().unwrap_err().contains("larger than"));
    }

    #[test]
    fn a_path_naming_one_file_is_that_manifest() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "only.yaml", &POD.replace("NAME", "only"));
        let found = names(&scan(&dir.path().join("only.yaml"), "n").unwrap());
        assert_eq!(found, vec![("only.yaml".into(), Ok("only-n".into()))]);
    }

    #[test]
    fn a_missing_directory_is_not_found() {
        let e = scan(Path::new("/nonexistent/manifests"), "n").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}

//! hostPath volumes: the host path itself is bound into containers, after kubelet's type
//! check (DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::HostPathVolumeSource;

use super::plugin::MountError;

fn type_error(path: &Path, what: &'static str) -> MountError {
    MountError::HostPathType {
        path: path.display().to_string(),
        what,
    }
}

/// Checks (and for the *OrCreate types creates) the host path; returns it.
pub fn set_up(src: &HostPathVolumeSource) -> Result<PathBuf, MountError> {
    let path = PathBuf::from(&src.path);
    let kind = src.type_.as_deref().unwrap_or_default();
    let meta = std::fs::metadata(&path).ok();
    let ft = meta.as_ref().map(std::fs::Metadata::file_type);
    match kind {
        "" => {}
        "DirectoryOrCreate" => match ft {
            None => {
                std::fs::create_dir_all(&path)
                    .map_err(|e| MountError::io(format!("mkdir {}", path.display()), e))?;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
            }
            Some(t) if !t.is_dir() => return Err(type_error(&path, "directory")),
            Some(_) => {}
        },
        "Directory" => {
            if !ft.is_some_and(|t| t.is_dir()) {
                return Err(type_error(&path, "directory"));
            }
        }
        "FileOrCreate" => match ft {
            None => {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| MountError::io(format!("create {}", path.display()), e))?;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
            }
            Some(t) if !t.is_file() => return Err(type_error(&path, "file")),
            Some(_) => {}
        },
        "File" => {
            if !ft.is_some_and(|t| t.is_file()) {
                return Err(type_error(&path, "file"));
            }
        }
        "Socket" => {
            if !ft.is_some_and(|t| t.is_socket()) {
                return Err(type_error(&path, "socket file"));
            }
        }
        "CharDevice" => {
            if !ft.is_some_and(|t| t.is_char_device()) {
                return Err(type_error(&path, "character device"));
            }
        }
        "BlockDevice" => {
            if !ft.is_some_and(|t| t.is_block_device()) {
                return Err(type_error(&path, "block device"));
            }
        }
        other => {
            return Err(MountError::Failed(format!(
                "hostPath type check failed: invalid hostPath type {other:?}"
            )));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(path: &Path, kind: &str) -> HostPathVolumeSource {
        HostPathVolumeSource {
            path: path.display().to_string(),
            type_: Some(kind.to_string()),
        }
    }

    #[test]
    fn type_checks_follow_kubelet() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(set_up(&src(d.path(), "Directory")).is_ok());
        let e = set_up(&src(&file, "Directory")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        assert!(set_up(&src(&file, "File")).is_ok());
        assert!(set_up(&src(d.path(), "File")).is_err());
        assert!(set_up(&src(&file, "Socket")).is_err());
        let made = d.path().join("a/b");
        assert!(set_up(&src(&made, "DirectoryOrCreate")).is_ok());
        assert!(made.is_dir());
        let new_file = d.path().join("new");
        assert!(set_up(&src(&new_file, "FileOrCreate")).is_ok());
        assert!(new_file.is_file());
        assert!(set_up(&src(&d.path().join("missing"), "")).is_ok());
        assert!(set_up(&src(d.path(), "Bogus")).is_err());
    }
}

//! kubelet's `CgroupName`: a cgroup as a list of components from the root, shown in the form
//! of a driver. cgroupfs joins them as a path (`/kubepods/burstable/podUID`); systemd turns
//! them into nested slices, each component's `-` escaped as `_`
//! (`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podUID_WITH_UNDERSCORES.slice`),
//! the path systemd gives that slice. As in kubelet, a component never holds `/` or `_`, so the
//! systemd form maps back; nor is it empty, `.` or `..`, so no form ever leaves its parent.

use thiserror::Error;

/// A cgroup below the root, component by component.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupName(Vec<String>);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error(
        "cgroup name component {0:?} is not valid (empty, \".\", \"..\", or holding '/', '_' or a control character)"
    )]
    Component(String),
    #[error("cgroup root {0:?} is not an absolute path (for example / or /kubelet)")]
    Root(String),
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c != "."
        && c != ".."
        && !c.contains(['/', '_'])
        && !c.chars().any(char::is_control)
}

impl CgroupName {
    /// The root cgroup.
    pub fn root() -> Self {
        CgroupName(Vec::new())
    }

    /// A cgroup root as the configuration gives it, in cgroupfs form (`--cgroup-root`,
    /// `cgroupRoot`: "/" or "/kubelet"); empty is the root.
    ///
    /// # Errors
    /// A relative path, or a component that is not valid.
    pub fn parse_root(path: &str) -> Result<Self, NameError> {
        if path.is_empty() {
            return Ok(Self::root());
        }
        let Some(rest) = path.strip_prefix('/') else {
            return Err(NameError::Root(path.to_string()));
        };
        rest.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(Self::root(), |name, c| name.child(c))
    }

    /// This cgroup's child `component`.
    ///
    /// # Errors
    /// A component that is not valid.
    pub fn child(&self, component: &str) -> Result<Self, NameError> {
        if !valid_component(component) {
            return Err(NameError::Component(component.to_string()));
        }
        let mut parts = self.0.clone();
        parts.push(component.to_string());
        Ok(CgroupName(parts))
    }

    /// The cgroupfs form: `/a/b/c`; the root is `/`.
    pub fn to_cgroupfs(&self) -> String {
        format!("/{}", self.0.join("/"))
    }

    /// The systemd form, expanded to the path of the slice: `{a, b, c}` is
    /// `/a.slice/a-b.slice/a-b-c.slice`; the root is `/`.
    pub fn to_systemd(&self) -> String {
        let mut out = String::new();
        let mut prefix = String::new();
        for part in &self.0 {
            if !prefix.is_empty() {
                prefix.push('-');
            }
            prefix.push_str(&part.replace('-', "_"));
            out.push('/');
            out.push_str(&prefix);
            out.push_str(".slice");
        }
        if out.is_empty() { "/".to_string() } else { out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(parts: &[&str]) -> CgroupName {
        parts
            .iter()
            .try_fold(CgroupName::root(), |n, p| n.child(p))
            .unwrap()
    }

    #[test]
    fn cgroupfs_and_systemd_forms_are_kubelets() {
        let pod = name(&["kubepods", "burstable", "pod1234-abcd-5678-efgh"]);
        assert_eq!(
            pod.to_cgroupfs(),
            "/kubepods/burstable/pod1234-abcd-5678-efgh"
        );
        assert_eq!(
            pod.to_systemd(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_abcd_5678_efgh.slice"
        );
        assert_eq!(CgroupName::root().to_cgroupfs(), "/");
        assert_eq!(CgroupName::root().to_systemd(), "/");
        assert_eq!(name(&["kubepods"]).to_systemd(), "/kubepods.slice");
    }

    #[test]
    fn roots_parse_from_the_cgroupfs_form() {
        assert_eq!(CgroupName::parse_root("/").unwrap(), CgroupName::root());
        assert_eq!(CgroupName::parse_root("").unwrap(), CgroupName::root());
        assert_eq!(
            CgroupName::parse_root("/kubelet/").unwrap(),
            name(&["kubelet"])
        );
        assert_eq!(
            CgroupName::parse_root("/a//b").unwrap().to_cgroupfs(),
            "/a/b"
        );
        assert_eq!(
            CgroupName::parse_root("kubelet"),
            Err(NameError::Root("kubelet".into()))
        );
    }

    #[test]
    fn components_that_would_leave_their_parent_or_not_map_back_are_refused() {
        for bad in ["", ".", "..", "a/b", "a_b", "a\nb"] {
            assert_eq!(
                CgroupName::root().child(bad),
                Err(NameError::Component(bad.into())),
                "{bad:?}"
            );
        }
        assert!(CgroupName::parse_root("/a/../b").is_err());
        assert!(CgroupName::parse_root("/my_root").is_err());
    }
}

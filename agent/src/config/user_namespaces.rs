//! `userNamespaces.idsPerPod` (KubeletConfiguration only): how many user and group IDs each pod
//! with `hostUsers: false` gets, 65536 by default. kubelet's validation: at least 65536, a
//! multiple of it, and at most 2^32 - 1 (so the value fits the CRI's 32-bit IDs).

use super::{ConfigError, invalid};

/// The unit of user namespace ranges, and the default per pod.
pub const UNIT: u32 = 65536;

/// The IDs per pod from the file's `userNamespaces.idsPerPod`, or the default.
///
/// # Errors
/// A value below 65536, not a multiple of it, or above 2^32 - 1, with kubelet's message.
pub fn ids_per_pod(given: Option<i64>) -> Result<u32, ConfigError> {
    let Some(ids) = given else {
        return Ok(UNIT);
    };
    let bad = invalid("userNamespaces.idsPerPod");
    if ids < i64::from(UNIT) {
        return Err(bad(format!("must not be less than {UNIT}")));
    }
    if ids % i64::from(UNIT) != 0 {
        return Err(bad(format!("must be a multiple of {UNIT}")));
    }
    u32::try_from(ids).map_err(|_| bad(format!("must not be more than {}", u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelets_bounds_hold() {
        assert_eq!(ids_per_pod(None).unwrap(), 65536);
        assert_eq!(ids_per_pod(Some(131_072)).unwrap(), 131_072);
        for (v, says) in [
            (1000, "less than 65536"),
            (100_000, "a multiple of 65536"),
            (1 << 32, "more than 4294967295"),
        ] {
            let e = ids_per_pod(Some(v)).unwrap_err().to_string();
            assert!(
                e.contains("userNamespaces.idsPerPod") && e.contains(says),
                "{e}"
            );
        }
    }
}

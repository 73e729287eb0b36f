//! Node pressure signals, with kubelet's default hard eviction thresholds:
//! memory.available<100Mi, nodefs.available<10%, nodefs.inodesFree<5%. kubelet has no default
//! pid threshold; minikubelet uses pid.available<5% so that PIDPressure means something.

use super::machine::Usage;

/// Hard thresholds below which a resource is under pressure.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub memory_available_bytes: u64,
    pub nodefs_available_ratio: f64,
    pub nodefs_inodes_free_ratio: f64,
    pub pid_available_ratio: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            memory_available_bytes: 100 << 20,
            nodefs_available_ratio: 0.10,
            nodefs_inodes_free_ratio: 0.05,
            pid_available_ratio: 0.05,
        }
    }
}

impl Thresholds {
    /// Bytes of the node filesystem held back by the nodefs.available threshold.
    pub fn nodefs_reserved_bytes(&self, capacity: u64) -> u64 {
        // Truncation is intended: thresholds are coarse and capacities fit f64 exactly enough.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let bytes = (capacity as f64 * self.nodefs_available_ratio) as u64;
        bytes
    }
}

/// Which resources are under pressure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

#[allow(clippy::cast_precision_loss)]
fn below(available: u64, total: u64, ratio: f64) -> bool {
    total > 0 && (available as f64) < total as f64 * ratio
}

/// Judges the current usage against the thresholds. A figure that could not be read (zero
/// totals) never signals pressure.
pub fn evaluate(usage: &Usage, t: &Thresholds) -> Pressure {
    let memory =
        usage.memory_available_bytes > 0 && usage.memory_available_bytes < t.memory_available_bytes;
    let disk = below(
        usage.fs_available_bytes,
        usage.fs_capacity_bytes,
        t.nodefs_available_ratio,
    ) || below(
        usage.fs_inodes_free,
        usage.fs_inodes,
        t.nodefs_inodes_free_ratio,
    );
    let pid = below(
        usage.pid_max.saturating_sub(usage.pids_running),
        usage.pid_max,
        t.pid_available_ratio,
    );
    Pressure { memory, disk, pid }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Usage {
        Usage {
            memory_available_bytes: 4 << 30,
            fs_capacity_bytes: 100 << 30,
            fs_available_bytes: 50 << 30,
            fs_inodes: 1_000_000,
            fs_inodes_free: 900_000,
            pid_max: 4_194_304,
            pids_running: 200,
        }
    }

    #[test]
    fn a_healthy_machine_has_no_pressure() {
        assert_eq!(
            evaluate(&healthy(), &Thresholds::default()),
            Pressure::default()
        );
    }

    #[test]
    fn each_signal_trips_on_its_threshold() {
        let t = Thresholds::default();
        let mut u = healthy();
        u.memory_available_bytes = 50 << 20;
        assert!(evaluate(&u, &t).memory);

        let mut u = healthy();
        u.fs_available_bytes = 5 << 30;
        assert!(evaluate(&u, &t).disk);

        let mut u = healthy();
        u.fs_inodes_free = 10_000;
        assert!(evaluate(&u, &t).disk);

        let mut u = healthy();
        u.pid_max = 1000;
        u.pids_running = 990;
        assert!(evaluate(&u, &t).pid);
    }

    #[test]
    fn unreadable_figures_do_not_signal_pressure() {
        assert_eq!(
            evaluate(&Usage::default(), &Thresholds::default()),
            Pressure::default()
        );
    }
}

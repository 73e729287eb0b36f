//! The node's pressure conditions as the eviction manager last judged them (thresholds met,
//! held for the pressure transition period): published by [`crate::eviction`], reported by
//! the Node status and read by pod admission, which refuses pods that a condition forbids.

use tokio::sync::watch;

/// Which resources are under pressure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

impl Pressure {
    pub fn any(self) -> bool {
        self.memory || self.disk || self.pid
    }

    /// The condition types under pressure, in kubelet's order.
    pub fn types(self) -> Vec<&'static str> {
        [
            (self.memory, "MemoryPressure"),
            (self.disk, "DiskPressure"),
            (self.pid, "PIDPressure"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name)
        .collect()
    }
}

/// Where the latest judgement is read.
pub type PressureWatch = watch::Receiver<Pressure>;

/// A watch that always says there is no pressure (no eviction manager runs).
pub fn none() -> PressureWatch {
    watch::channel(Pressure::default()).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_in_kubelets_order() {
        let p = Pressure {
            memory: true,
            disk: false,
            pid: true,
        };
        assert_eq!(p.types(), ["MemoryPressure", "PIDPressure"]);
        assert!(!Pressure::default().any());
        assert_eq!(*none().borrow(), Pressure::default());
    }
}

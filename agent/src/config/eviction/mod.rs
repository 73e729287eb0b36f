//! The eviction settings' vocabulary: kubelet's eviction [`signal`]s and the [`threshold`]s
//! built from `evictionHard`, `evictionSoft` and their companions (or the `--eviction-*`
//! flags). The eviction manager ([`crate::eviction`]) acts on them; node status takes the hard
//! memory and nodefs thresholds off allocatable.

mod settings;
pub mod signal;
pub mod threshold;

pub use settings::from_flags_and_file;
pub use signal::{Condition, Resource, Signal};
pub use threshold::{
    Amount, EvictionInputs, EvictionSettings, Threshold, ThresholdError, parse_pairs, resolve,
};

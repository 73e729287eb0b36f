//! kubelet's user namespace ID allocator: the host IDs `[first, first + length)` cut into slots
//! of `ids_per_pod`, each pod with `hostUsers: false` holding one (its container IDs
//! `0..ids_per_pod` map onto the slot). The checks are kubelet's: the range starts at or above
//! one slot (host root is never mapped), on a slot boundary, holds whole slots and at least one
//! per pod the node may run. A free slot is found from a random start, as kubelet's allocation
//! map scans, so pods do not get predictable host IDs.

use std::collections::HashMap;

use thiserror::Error;

/// Why the allocator cannot be made or a range cannot be recorded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AllocError {
    #[error("kubelet user namespace length {0} is not a multiple of 65536")]
    NotUnitMultiple(u32),
    #[error("kubelet user assigned ID {first} is not a multiple of {ids}")]
    FirstNotAligned { first: u32, ids: u32 },
    #[error("kubelet user assigned ID {first} must be greater or equal to {ids}")]
    FirstTooLow { first: u32, ids: u32 },
    #[error("kubelet user assigned IDs length {length} is not a multiple of {ids}")]
    LengthNotAligned { length: u32, ids: u32 },
    #[error("kubelet user assigned IDs {first} + {length} go beyond the 32-bit ID space")]
    BeyondIdSpace { first: u32, length: u32 },
    #[error("kubelet user assigned IDs are not enough to support {0} pods")]
    TooFew(u32),
    #[error("could not find an empty slot to allocate a user namespace")]
    Exhausted,
    #[error("wrong user namespace length {0}")]
    WrongLength(u32),
    #[error("wrong user namespace offset specified {0}")]
    WrongOffset(u32),
    #[error("different user namespace range already used by pod {0:?}")]
    Different(String),
    #[error("id {0} is out of range")]
    OutOfRange(u32),
    #[error("range picked for pod {0:?} already taken")]
    Taken(String),
}

/// The slots and who holds them.
#[derive(Debug)]
pub struct Allocator {
    ids_per_pod: u32,
    /// The first slot's index counted from host ID 0.
    offset: u32,
    used: Vec<bool>,
    used_by: HashMap<String, u32>,
}

impl Allocator {
    /// The allocator over `[first, first + length)` for `max_pods` pods.
    pub fn new(
        ids_per_pod: u32,
        first: u32,
        length: u32,
        max_pods: u32,
    ) -> Result<Self, AllocError> {
        let unit = crate::config::user_namespaces::UNIT;
        if ids_per_pod == 0 || !ids_per_pod.is_multiple_of(unit) {
            return Err(AllocError::NotUnitMultiple(ids_per_pod));
        }
        let ids = ids_per_pod;
        if !first.is_multiple_of(ids) {
            return Err(AllocError::FirstNotAligned { first, ids });
        }
        if first < ids {
            return Err(AllocError::FirstTooLow { first, ids });
        }
        if !length.is_multiple_of(ids) {
            return Err(AllocError::LengthNotAligned { length, ids });
        }
        if u64::from(first) + u64::from(length) > 1 << 32 {
            return Err(AllocError::BeyondIdSpace { first, length });
        }
        let slots = length / ids;
        if slots < max_pods {
            return Err(AllocError::TooFew(max_pods));
        }
        Ok(Allocator {
            ids_per_pod,
            offset: first / ids,
            used: vec![false; usize::try_from(slots).unwrap_or(usize::MAX)],
            used_by: HashMap::new(),
        })
    }

    pub fn ids_per_pod(&self) -> u32 {
        self.ids_per_pod
    }

    /// The first host ID of `uid`'s range, if it holds one.
    pub fn get(&self, uid: &str) -> Option<u32> {
        self.used_by.get(uid).copied()
    }

    /// A free slot for `uid`, scanning from slot `start` (taken modulo the slot count); its
    /// first host ID.
    pub fn allocate(&mut self, uid: &str, start: u32) -> Result<u32, AllocError> {
        if let Some(first) = self.get(uid) {
            return Ok(first);
        }
        let n = self.used.len();
        let start = start as usize % n.max(1);
        let index = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| !self.used[i])
            .ok_or(AllocError::Exhausted)?;
        // index < slots <= 2^32 / ids, and first + length <= 2^32: neither fails.
        let first = u32::try_from(index)
            .ok()
            .and_then(|i| self.offset.checked_add(i))
            .and_then(|slot| slot.checked_mul(self.ids_per_pod))
            .ok_or(AllocError::Exhausted)?;
        self.used[index] = true;
        self.used_by.insert(uid.to_string(), first);
        Ok(first)
    }

    /// Records the range `[from, from + length)` that `uid` already holds (read back from its
    /// pod directory).
    pub fn record(&mut self, uid: &str, from: u32, length: u32) -> Result<(), AllocError> {
        if length != self.ids_per_pod {
            return Err(AllocError::WrongLength(length));
        }
        if !from.is_multiple_of(self.ids_per_pod) {
            return Err(AllocError::WrongOffset(from));
        }
        if let Some(previous) = self.get(uid) {
            return if previous == from {
                Ok(())
            } else {
                Err(AllocError::Different(uid.to_string()))
            };
        }
        let index = (from / self.ids_per_pod)
            .checked_sub(self.offset)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.used.len())
            .ok_or(AllocError::OutOfRange(from))?;
        if self.used[index] {
            return Err(AllocError::Taken(uid.to_string()));
        }
        self.used[index] = true;
        self.used_by.insert(uid.to_string(), from);
        Ok(())
    }

    /// Frees `uid`'s slot, if it holds one.
    pub fn release(&mut self, uid: &str) {
        if let Some(first) = self.used_by.remove(uid) {
            let index = (first / self.ids_per_pod)
                .checked_sub(self.offset)
                .and_then(|i| usize::try_from(i).ok());
            if let Some(slot) = index.and_then(|i| self.used.get_mut(i)) {
                *slot = false;
            }
        }
    }

    /// The pods holding a slot.
    pub fn holders(&self) -> Vec<String> {
        self.used_by.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: u32 = 65536;

    #[test]
    fn kubelets_checks_refuse_ranges_that_map_root_or_are_too_small() {
        assert_eq!(
            Allocator::new(100, U, U * 10, 1).unwrap_err(),
            AllocError::NotUnitMultiple(100)
        );
        assert!(matches!(
            Allocator::new(U, 0, U * 10, 1),
            Err(AllocError::FirstTooLow { .. })
        ));
        assert!(matches!(
            Allocator::new(U * 2, U, U * 10, 1),
            Err(AllocError::FirstNotAligned { .. })
        ));
        assert!(matches!(
            Allocator::new(U, U, U * 10 + 1, 1),
            Err(AllocError::LengthNotAligned { .. })
        ));
        assert_eq!(
            Allocator::new(U, U, U * 3, 4).unwrap_err(),
            AllocError::TooFew(4)
        );
        assert!(matches!(
            Allocator::new(U, 2 * U, u32::MAX - U + 1, 1),
            Err(AllocError::BeyondIdSpace { .. })
        ));
        // kubelet's default: from 65536 to the end of the 32-bit ID space.
        let all = Allocator::new(U, U, u32::MAX - U + 1, 110).unwrap();
        assert_eq!(all.used.len(), 65535);
    }

    #[test]
    fn pods_get_distinct_slots_that_come_back_when_released() {
        let mut a = Allocator::new(U, U, U * 3, 3).unwrap();
        let first = a.allocate("a", 0).unwrap();
        assert_eq!(first, U);
        assert_eq!(a.allocate("a", 2).unwrap(), first, "a pod keeps its slot");
        assert_eq!(
            a.allocate("b", 0).unwrap(),
            2 * U,
            "the scan skips a taken slot"
        );
        assert_eq!(a.allocate("c", 7).unwrap(), 3 * U, "the start wraps around");
        assert_eq!(a.allocate("d", 0).unwrap_err(), AllocError::Exhausted);
        a.release("b");
        assert_eq!(a.allocate("d", 0).unwrap(), 2 * U);
        let mut held = a.holders();
        held.sort();
        assert_eq!(held, ["a", "c", "d"]);
    }

    #[test]
    fn recorded_ranges_are_checked_against_the_slots() {
        let mut a = Allocator::new(U, U, U * 4, 4).unwrap();
        a.record("a", 2 * U, U).unwrap();
        a.record("a", 2 * U, U).unwrap();
        assert_eq!(
            a.record("a", 3 * U, U).unwrap_err(),
            AllocError::Different("a".into())
        );
        assert_eq!(
            a.record("b", 2 * U, U).unwrap_err(),
            AllocError::Taken("b".into())
        );
        assert_eq!(
            a.record("b", 2 * U, 2 * U).unwrap_err(),
            AllocError::WrongLength(2 * U)
        );
        assert_eq!(
            a.record("b", U + 1, U).unwrap_err(),
            AllocError::WrongOffset(U + 1)
        );
        assert_eq!(a.record("b", 0, U).unwrap_err(), AllocError::OutOfRange(0));
        assert_eq!(
            a.record("b", 5 * U, U).unwrap_err(),
            AllocError::OutOfRange(5 * U)
        );
        assert_ne!(a.allocate("c", 1).unwrap(), 2 * U);
    }
}

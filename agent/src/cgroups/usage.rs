//! What a cgroup holds now: the memory it uses that cannot simply be dropped, read through the
//! [`CgroupFs`] boundary. The eviction manager ranks pods by it; a resize refuses to set a
//! memory limit below it.

use super::{CgroupFs, CgroupVersion};

/// The memory a cgroup holds that cannot be dropped, None when it cannot be read.
pub fn memory_in_use(fs: &dyn CgroupFs, path: &str) -> Option<u64> {
    let usage_file = match fs.version() {
        CgroupVersion::V2 => "memory.current",
        CgroupVersion::V1 => "memory.usage_in_bytes",
    };
    let usage: u64 = fs.read(path, "memory", usage_file)?.trim().parse().ok()?;
    let stat = fs.read(path, "memory", "memory.stat")?;
    Some(working_set(usage, &stat))
}

/// A cgroup's memory that cannot simply be dropped: its usage minus its file pages (active
/// and inactive), from `memory.stat` (v1's `total_` keys or v2's plain ones). Anonymous memory,
/// tmpfs (shmem is on the anonymous lists) and kernel memory stay counted.
pub fn working_set(usage: u64, memory_stat: &str) -> u64 {
    let value = |name: &str| {
        memory_stat
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    };
    // v1 lists the cgroup's own pages first and the hierarchy's (`total_`) later; a pod's
    // pages are in its children, so the hierarchy's count.
    let field = |name: &str| {
        value(&format!("total_{name}"))
            .or_else(|| value(name))
            .unwrap_or(0)
    };
    let file = field("active_file").saturating_add(field("inactive_file"));
    usage.saturating_sub(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_working_set_leaves_out_every_file_page() {
        let v1 = "cache 500\nrss 300\nactive_file 0\ninactive_file 0\ntotal_cache 600\ntotal_rss 350\ntotal_active_file 200\n\
                  total_inactive_file 250\nshmem 100\n";
        assert_eq!(working_set(1000, v1), 550);
        let v2 = "anon 300\nfile 400\nactive_file 150\ninactive_file 250\nshmem 50\n";
        assert_eq!(working_set(800, v2), 400);
        assert_eq!(working_set(10, "inactive_file 50\n"), 0);
    }
}

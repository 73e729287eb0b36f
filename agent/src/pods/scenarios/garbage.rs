//! The container garbage scenarios: a running pod keeps one dead instance per container and
//! loses older ones with their log files; beyond the node's limit the oldest dead instances
//! go whichever pod holds them.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::super::dead_containers;
use super::super::log_rotation::rotated_path;
use super::super::sync::PodState;
use super::scenario;

scenario! {
    /// Of a crash-looping container's dead instances the newest stays (lastState, logs
    /// --previous); the older one goes with its log file and the log's rotated files.
    an_older_dead_instance_goes_with_its_log_files(node) {
        let p = node.pod(json!({}));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        node.exit(&p, "app", 1).await;
        node.sync(&mut state, &p).await;
        let observed = node.observed(&p).await;
        let first = observed.containers.iter().find(|c| c.restart_count == 0).unwrap();
        let log = std::path::PathBuf::from(&first.log_path);
        assert!(log.starts_with(&node.ctx.log_root), "{log:?}");
        if node.exact() {
            // The fake runtime writes no files: put the runtime's log in place.
            std::fs::create_dir_all(log.parent().unwrap()).unwrap();
            std::fs::write(&log, "first run\n").unwrap();
        }
        assert!(log.is_file(), "{log:?}");
        let rotated = rotated_path(&log, SystemTime::now());
        std::fs::write(&rotated, "rotated\n").unwrap();

        node.exit(&p, "app", 1).await;
        let backoff = node.sync(&mut state, &p).await;
        node.wait(backoff.requeue_after.unwrap_or(Duration::from_secs(10))).await;
        node.sync(&mut state, &p).await;
        let after = node.observed(&p).await;
        let instances: Vec<u32> = after.containers.iter().map(|c| c.restart_count).collect();
        assert_eq!(instances, [2, 1], "the running instance and the newest dead one");
        assert!(!log.exists(), "{log:?} removed with its container");
        assert!(!rotated.exists(), "{rotated:?} removed too");
        node.sync(&mut state, &node.deleting(&p, 2)).await;
    }
}

scenario! {
    /// `--maximum-dead-containers=1` over two pods with one dead instance each: the older
    /// instance goes, the newer stays, the running ones are never touched.
    the_node_limit_removes_the_oldest_dead_instance_of_any_pod(node) {
        let a = node.pod(json!({}));
        let b = node.pod(json!({}));
        let (mut sa, mut sb) = (PodState::default(), PodState::default());
        node.sync(&mut sa, &a).await;
        node.exit(&a, "app", 1).await;
        node.sync(&mut sa, &a).await;
        node.wait(Duration::from_secs(1)).await;
        node.sync(&mut sb, &b).await;
        node.exit(&b, "app", 1).await;
        node.sync(&mut sb, &b).await;
        let uids: Vec<String> = [&a, &b]
            .iter()
            .map(|p| p.metadata.uid.clone().unwrap())
            .collect();
        let restarts = |o: &super::super::observe::ObservedPod| -> Vec<u32> {
            o.containers.iter().map(|c| c.restart_count).collect()
        };
        assert_eq!(restarts(&node.observed(&a).await), [1, 0]);
        assert_eq!(restarts(&node.observed(&b).await), [1, 0]);
        dead_containers::pass(&node.ctx, &uids, 2).await;
        assert_eq!(restarts(&node.observed(&a).await), [1, 0], "two are allowed");
        dead_containers::pass(&node.ctx, &uids, 1).await;
        assert_eq!(restarts(&node.observed(&a).await), [1], "a's dead instance was the older");
        assert_eq!(restarts(&node.observed(&b).await), [1, 0]);
        dead_containers::pass(&node.ctx, &uids, 0).await;
        assert_eq!(restarts(&node.observed(&b).await), [1], "0 keeps none");
        node.sync(&mut sa, &node.deleting(&a, 2)).await;
        node.sync(&mut sb, &node.deleting(&b, 2)).await;
    }
}

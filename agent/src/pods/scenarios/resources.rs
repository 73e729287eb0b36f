//! The pod cgroup scenarios: the pod's cgroup is made with its limits before the sandbox runs
//! and removed with the pod, and one a pod left behind is swept; on containerd the host's
//! cgroup files are read back.

use serde_json::json;

use super::super::lifecycle::Lifecycle;
use super::super::sync::PodState;
use super::scenario;
use crate::runtime::recording::Method;

scenario! {
    /// A Burstable pod whose every container has a memory limit: its cgroup below
    /// kubepods/burstable holds the summed memory limit and the cpu shares of its requests,
    /// and is gone once the pod is.
    a_pods_cgroup_holds_its_limits_and_goes_with_the_pod(node) {
        let p = node.pod(json!({
            "containers": [{
                "name": "app",
                "resources": {
                    "requests": {"cpu": "100m", "memory": "16Mi"},
                    "limits": {"memory": "64Mi"}
                }
            }]
        }));
        let path = node.pod_cgroup_path(&p);
        assert!(path.ends_with(&format!("/kubepods/burstable/pod{}", p.metadata.uid.as_deref().unwrap())));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        assert_eq!(node.cri.calls_of(Method::StartContainer).len(), 1);
        assert_eq!(node.pod_cgroup(&path), Some((Some(64 << 20), Some(102))));
        assert_eq!(
            node.pod_cgroup_pids_max(&path),
            Some(crate::pods::scenarios::SCENARIO_POD_PIDS.to_string()),
            "podPidsLimit"
        );

        node.sync(&mut state, &node.deleting(&p, 2)).await;
        assert!(matches!(state.lifecycle, Lifecycle::CleanedUp { .. }));
        assert_eq!(node.pod_cgroup(&path), None, "removed with the pod");
    }
}

scenario! {
    /// A BestEffort pod's cgroup gets the least cpu shares and no memory limit of its own.
    a_best_effort_pods_cgroup_has_the_least_shares(node) {
        let p = node.pod(json!({}));
        let path = node.pod_cgroup_path(&p);
        assert!(path.ends_with(&format!("/kubepods/besteffort/pod{}", p.metadata.uid.as_deref().unwrap())));
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        let (memory, shares) = node.pod_cgroup(&path).expect("the pod's cgroup");
        assert_eq!(shares, Some(2));
        if node.exact() {
            assert_eq!(memory, None, "nothing written");
        } else {
            // The kernel's "no limit": the largest page-aligned value.
            assert!(memory.unwrap() > 1 << 60, "{memory:?}");
        }
        node.sync(&mut state, &node.deleting(&p, 2)).await;
    }
}

scenario! {
    /// A pod cgroup whose pod this node no longer has (it went while the agent was down) is
    /// removed by the sweep; one of a pod the node runs stays.
    an_orphaned_pod_cgroup_is_swept_and_a_running_pods_kept(node) {
        let p = node.pod(json!({}));
        let uid = p.metadata.uid.clone().unwrap();
        let mut state = PodState::default();
        node.sync(&mut state, &p).await;
        let running = node.pod_cgroup_path(&p);
        let gone = node.pod(json!({}));
        let orphan = node.pod_cgroup_path(&gone);
        node.make_cgroup(&orphan);
        assert!(node.pod_cgroup(&orphan).is_some());

        crate::pods::pod_cgroup::remove_orphans(&node.ctx, |u| u == uid).await;
        assert_eq!(node.pod_cgroup(&orphan), None, "swept");
        assert!(node.pod_cgroup(&running).is_some(), "kept");
        node.sync(&mut state, &node.deleting(&p, 2)).await;
    }
}

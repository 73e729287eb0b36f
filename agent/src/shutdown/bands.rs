//! Which band each pod is ended in, kubelet's groupByPriority: a pod belongs to the highest
//! band whose priority is at or below its own; pods below the lowest band go to the lowest,
//! pods above the highest to the highest. Bands are ended from the lowest priority up. Pure.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::config::shutdown::PriorityGrace;

/// One band's pods and the grace they get (a pod's own shorter grace still wins).
#[derive(Debug, Clone)]
pub struct Band {
    pub priority: i32,
    pub grace: Duration,
    pub pods: Vec<Arc<Pod>>,
}

fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The bands, lowest first, each with its pods (possibly none).
pub fn group(bands: &[PriorityGrace], pods: Vec<Arc<Pod>>) -> Vec<Band> {
    let mut out: Vec<Band> = bands
        .iter()
        .map(|b| Band {
            priority: b.priority,
            grace: b.grace,
            pods: Vec::new(),
        })
        .collect();
    if out.is_empty() {
        return out;
    }
    for pod in pods {
        let p = priority(&pod);
        // The last band at or below p; the lowest if none is.
        let at_or_below = out.partition_point(|b| b.priority <= p);
        let index = at_or_below.saturating_sub(1);
        out[index].pods.push(pod);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: Option<i32>) -> Arc<Pod> {
        let mut spec = json!({"containers": []});
        if let Some(p) = priority {
            spec["priority"] = json!(p);
        }
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap())
    }

    fn names(b: &Band) -> Vec<&str> {
        b.pods
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    fn band(priority: i32, secs: u64) -> PriorityGrace {
        PriorityGrace {
            priority,
            grace: Duration::from_secs(secs),
        }
    }

    #[test]
    fn pods_go_to_the_highest_band_at_or_below_their_priority() {
        let bands = [band(1, 10), band(100, 20), band(10_000, 30)];
        let pods = vec![
            pod("none", None),
            pod("low", Some(-5)),
            pod("one", Some(1)),
            pod("between", Some(99)),
            pod("edge", Some(100)),
            pod("top", Some(2_000_000_000)),
        ];
        let g = group(&bands, pods);
        assert_eq!(names(&g[0]), ["none", "low", "one", "between"]);
        assert_eq!(names(&g[1]), ["edge"]);
        assert_eq!(names(&g[2]), ["top"]);
        assert_eq!(g[2].grace, Duration::from_secs(30));
    }

    #[test]
    fn kubelets_two_bands_split_critical_pods_off() {
        let bands = [band(0, 20), band(2_000_000_000, 10)];
        let g = group(
            &bands,
            vec![
                pod("app", None),
                pod("dns", Some(2_000_000_000)),
                pod("node", Some(2_000_001_000)),
            ],
        );
        assert_eq!(names(&g[0]), ["app"]);
        assert_eq!(names(&g[1]), ["dns", "node"]);
    }

    #[test]
    fn no_bands_no_groups() {
        assert!(group(&[], vec![pod("a", None)]).is_empty());
    }
}

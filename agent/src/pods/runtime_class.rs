//! A pod's RuntimeClass names a class, not a runtime: the CRI wants the class's `handler`
//! (kubelet's runtimeclass manager). A class that does not exist fails the sandbox, as in
//! kubelet, with the API's own not-found text; the pod then waits in ContainerCreating and is
//! retried, so creating the class later lets it start.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Api;

/// The CRI runtime handler for `pod`: "" (the runtime's default) without a RuntimeClass.
pub async fn handler(api: &crate::apiserver::ApiServer, pod: &Pod) -> Result<String, String> {
    let Some(name) = pod
        .spec
        .as_ref()
        .and_then(|s| s.runtime_class_name.as_deref())
        .filter(|n| !n.is_empty())
    else {
        return Ok(String::new());
    };
    let client = api
        .client()
        .map_err(|e| format!("failed to get RuntimeClass {name:?}: {e}"))?;
    match Api::<RuntimeClass>::all(client.clone()).get_opt(name).await {
        Ok(Some(class)) => Ok(class.handler),
        Ok(None) => Err(format!("runtimeclass.node.k8s.io {name:?} not found")),
        Err(e) => Err(format!("failed to get RuntimeClass {name:?}: {e}")),
    }
}

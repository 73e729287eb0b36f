//! The Services that containers' environment variables come from, kept by one watch on every
//! Service (kubelet's service informer), so a container start reads them from memory instead of
//! listing them from the API server. Until the watch's first list completes (or when there is
//! no API server), [`ServiceLister::services`] says so and the caller lists them itself.

use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tracing::warn;

use super::container::EnvSource;

/// A handle on the Service cache (cheap to clone); [`ServiceLister::none`] has no cache.
#[derive(Clone, Default)]
pub struct ServiceLister {
    store: Option<Store<Service>>,
}

impl ServiceLister {
    /// No cache: every read goes to the API (standalone mode, tests).
    pub fn none() -> ServiceLister {
        ServiceLister::default()
    }

    /// Starts the watch on every Service (the Node authorizer lets a node list and watch
    /// them); it runs, retrying with backoff, for the life of the process.
    pub fn start(client: kube::Client) -> ServiceLister {
        let (store, writer) = reflector::store();
        let api: Api<Service> = Api::all(client);
        let stream =
            reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
                .default_backoff()
                .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(item) = stream.next().await {
                if let Err(e) = item {
                    warn!(error = %e, "service watch failed; retrying with backoff");
                }
            }
        });
        ServiceLister { store: Some(store) }
    }

    /// The Services of `namespace`, or None while the cache has not completed its first list.
    pub fn services(&self, namespace: &str) -> Option<Vec<Service>> {
        let store = self.store.as_ref()?;
        // Ready once the first list is in (resolves at once from then on).
        if !matches!(store.wait_until_ready().now_or_never(), Some(Ok(()))) {
            return None;
        }
        Some(
            store
                .state()
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
                .map(|s| Service::clone(Arc::as_ref(s)))
                .collect(),
        )
    }
}

/// The API as container environments read it: ConfigMaps and Secrets from the API server,
/// Services from the cache once it has listed them (from the API server before that).
pub struct CachedEnvSource<'a> {
    pub client: &'a kube::Client,
    pub services: &'a ServiceLister,
}

impl EnvSource for CachedEnvSource<'_> {
    fn config_map(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>, kube::Error>> + Send {
        self.client.config_map(ns, name)
    }

    fn secret(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Secret>, kube::Error>> + Send {
        self.client.secret(ns, name)
    }

    fn services(&self, ns: &str) -> impl Future<Output = Result<Vec<Service>, kube::Error>> + Send {
        let cached = self.services.services(ns);
        let listed = cached.is_none().then(|| self.client.services(ns));
        async move {
            match (cached, listed) {
                (Some(services), _) => Ok(services),
                (None, Some(list)) => list.await,
                (None, None) => Ok(Vec::new()),
            }
        }
    }
}

//! A container's environment, as kubelet's makeEnvironmentVariables builds it:
//!
//! 1. `envFrom`, in order: every key of the ConfigMap/Secret, with the prefix prepended;
//! 2. `env`, in order, each overriding an earlier variable of the same name. A literal `value`
//!    has its `$(VAR)` references expanded against the variables so far, then the service
//!    variables; `valueFrom` is resolved (downward API, ConfigMap key, Secret key) and never
//!    expanded;
//! 3. service variables (`KUBERNETES_SERVICE_HOST`, ...) not already defined.
//!
//! A missing ConfigMap/Secret or key fails the container (CreateContainerConfigError) unless
//! the reference is optional, in which case it is skipped. `envFrom` keys that cannot be
//! environment variable names are skipped and reported for an event.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Pod, Secret, Service};
use kube::Api;
use kube::api::ListParams;
use thiserror::Error;

use super::services::{is_master_namespace, service_env, visible_services};
use crate::downward;
use crate::expand::expand;
use crate::node_facts::NodeFacts;

/// Where ConfigMaps, Secrets and Services come from: the API server in production
/// (`kube::Client`), a map in tests. `Ok(None)` means "not found".
pub trait EnvSource: Send + Sync {
    /// The ConfigMap `ns/name`.
    fn config_map(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>, kube::Error>> + Send;
    /// The Secret `ns/name`.
    fn secret(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Secret>, kube::Error>> + Send;
    /// All Services of `ns`. The default has none, so no service variables are injected.
    fn services(&self, ns: &str) -> impl Future<Output = Result<Vec<Service>, kube::Error>> + Send {
        let _ = ns;
        std::future::ready(Ok(Vec::new()))
    }
}

impl EnvSource for kube::Client {
    fn config_map(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMap>, kube::Error>> + Send {
        let api: Api<ConfigMap> = Api::namespaced(self.clone(), ns);
        let name = name.to_string();
        async move { api.get_opt(&name).await }
    }

    fn secret(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Secret>, kube::Error>> + Send {
        let api: Api<Secret> = Api::namespaced(self.clone(), ns);
        let name = name.to_string();
        async move { api.get_opt(&name).await }
    }

    fn services(&self, ns: &str) -> impl Future<Output = Result<Vec<Service>, kube::Error>> + Send {
        let api: Api<Service> = Api::namespaced(self.clone(), ns);
        async move { Ok(api.list(&ListParams::default()).await?.items) }
    }
}

/// Why a container's environment cannot be built. The Display texts are kubelet's.
#[derive(Debug, Error)]
pub enum EnvError {
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound { name: String },
    #[error("secret {name:?} not found")]
    SecretNotFound { name: String },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("couldn't get {kind} {namespace}/{name}: {}", api_message(.source))]
    Api {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to list services when setting up env vars: {}", api_message(.0))]
    Services(#[source] kube::Error),
    /// A `fieldRef` kubelet does not support.
    #[error("{0}")]
    FieldRef(String),
    /// A `resourceFieldRef` kubelet does not support.
    #[error("{0}")]
    ResourceFieldRef(String),
    /// A source this node does not implement (`fileKeyRef`).
    #[error("env var {name}: {what} is not supported by this node")]
    Unsupported { name: String, what: &'static str },
}

/// The API server's own message for an API error, the error's Display otherwise.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// The event reason kubelet uses for skipped `envFrom` keys.
pub const INVALID_ENV_NAMES_REASON: &str = "InvalidEnvironmentVariableNames";

/// The kind of an `envFrom` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFromKind {
    ConfigMap,
    Secret,
}

/// `envFrom` keys of one source that were skipped because they cannot be variable names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKeys {
    pub kind: EnvFromKind,
    /// The ConfigMap or Secret name.
    pub name: String,
    /// The keys (prefix included), sorted.
    pub keys: Vec<String>,
}

impl SkippedKeys {
    /// kubelet's Warning event text (reason [`INVALID_ENV_NAMES_REASON`]).
    pub fn event_message(&self, namespace: &str) -> String {
        let kind = match self.kind {
            EnvFromKind::ConfigMap => "configMap",
            EnvFromKind::Secret => "secret",
        };
        format!(
            "Keys [{}] from the EnvFrom {kind} {namespace}/{} were skipped since they are considered invalid environment variable names.",
            self.keys.join(", "),
            self.name
        )
    }
}

/// A container's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedEnv {
    /// The variables, each name once, in the order first defined (envFrom, env, services).
    pub vars: Vec<(String, String)>,
    /// All skipped `envFrom` keys (the union of `skipped`).
    pub invalid_keys: Vec<String>,
    /// Skipped `envFrom` keys per source, for kubelet's events.
    pub skipped: Vec<SkippedKeys>,
}

/// Variables in definition order; redefining keeps the position and replaces the value.
#[derive(Default)]
struct OrderedEnv {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl OrderedEnv {
    fn set(&mut self, name: String, value: String) {
        if let Some(&i) = self.index.get(&name) {
            self.vars[i].1 = value;
        } else {
            self.index.insert(name.clone(), self.vars.len());
            self.vars.push((name, value));
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.index.get(name).map(|&i| self.vars[i].1.as_str())
    }

    fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// Whether `name` can be an environment variable name: printable ASCII without `=` (the rule
/// the API server applies since relaxed environment variable validation).
pub fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// ConfigMaps and Secrets already fetched for this container, so each is read once.
struct Fetched<'a, S> {
    src: &'a S,
    ns: &'a str,
    config_maps: HashMap<String, Option<ConfigMap>>,
    secrets: HashMap<String, Option<Secret>>,
}

impl<S: EnvSource> Fetched<'_, S> {
    async fn config_map(&mut self, name: &str) -> Result<Option<&ConfigMap>, EnvError> {
        if !self.config_maps.contains_key(name) {
            let got = self
                .src
                .config_map(self.ns, name)
                .await
                .map_err(|source| EnvError::Api {
                    kind: "configmap",
                    namespace: self.ns.to_string(),
                    name: name.to_string(),
                    source,
                })?;
            self.config_maps.insert(name.to_string(), got);
        }
        Ok(self.config_maps.get(name).and_then(Option::as_ref))
    }

    async fn secret(&mut self, name: &str) -> Result<Option<&Secret>, EnvError> {
        if !self.secrets.contains_key(name) {
            let got = self
                .src
                .secret(self.ns, name)
                .await
                .map_err(|source| EnvError::Api {
                    kind: "secret",
                    namespace: self.ns.to_string(),
                    name: name.to_string(),
                    source,
                })?;
            self.secrets.insert(name.to_string(), got);
        }
        Ok(self.secrets.get(name).and_then(Option::as_ref))
    }
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    Some(String::from_utf8_lossy(&bytes.0).into_owned())
}

/// Builds the environment of `container` in `pod` on `node`; `pod_ips` are the pod's IPs,
/// preferred family first (empty before its sandbox has them).
pub async fn resolve_env(
    src: &impl EnvSource,
    pod: &Pod,
    container: &Container,
    node: &NodeFacts,
    pod_ips: &[String],
) -> Result<ResolvedEnv, EnvError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let services = services_env(src, pod, ns).await?;
    let service_lookup: HashMap<&str, &str> = services
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let mut fetched = Fetched {
        src,
        ns,
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    let mut env = OrderedEnv::default();
    let mut skipped = Vec::new();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let mut invalid = Vec::new();
        let mut add = |k: &str, v: String| {
            let name = format!("{prefix}{k}");
            if is_env_var_name(&name) {
                env.set(name, v);
            } else {
                invalid.push(name);
            }
        };
        let (kind, name) = if let Some(r) = &from.config_map_ref {
            let Some(cm) = fetched.config_map(&r.name).await? else {
                if r.optional == Some(true) {
                    continue;
                }
                return Err(EnvError::ConfigMapNotFound {
                    name: r.name.clone(),
                });
            };
            for (k, v) in cm.data.iter().flatten() {
                add(k, v.clone());
            }
            (EnvFromKind::ConfigMap, &r.name)
        } else if let Some(r) = &from.secret_ref {
            let Some(secret) = fetched.secret(&r.name).await? else {
                if r.optional == Some(true) {
                    continue;
                }
                return Err(EnvError::SecretNotFound {
                    name: r.name.clone(),
                });
            };
            for (k, v) in secret.data.iter().flatten() {
                add(k, String::from_utf8_lossy(&v.0).into_owned());
            }
            (EnvFromKind::Secret, &r.name)
        } else {
            continue;
        };
        if !invalid.is_empty() {
            invalid.sort();
            skipped.push(SkippedKeys {
                kind,
                name: name.clone(),
                keys: invalid,
            });
        }
    }

    for var in container.env.iter().flatten() {
        let literal = var.value.as_deref().unwrap_or_default();
        let value = if !literal.is_empty() {
            let lookup = |name: &str| {
                env.get(name)
                    .or_else(|| service_lookup.get(name).copied())
                    .map(str::to_string)
            };
            expand(literal, &lookup)
        } else if let Some(from) = &var.value_from {
            match value_from(&mut fetched, &var.name, from, pod, container, node, pod_ips).await? {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        env.set(var.name.clone(), value);
    }

    for (k, v) in services {
        if !env.contains(&k) {
            env.set(k, v);
        }
    }

    let invalid_keys = skipped
        .iter()
        .flat_map(|s| s.keys.iter().cloned())
        .collect();
    Ok(ResolvedEnv {
        vars: env.vars,
        invalid_keys,
        skipped,
    })
}

/// Resolves one `valueFrom`; `None` when an optional reference is missing (the variable is
/// then not set at all).
async fn value_from<S: EnvSource>(
    fetched: &mut Fetched<'_, S>,
    var: &str,
    from: &EnvVarSource,
    pod: &Pod,
    container: &Container,
    node: &NodeFacts,
    pod_ips: &[String],
) -> Result<Option<String>, EnvError> {
    if let Some(sel) = &from.field_ref {
        return downward::field_value(sel, pod, node, pod_ips)
            .map(Some)
            .map_err(EnvError::FieldRef);
    }
    if let Some(sel) = &from.resource_field_ref {
        return downward::resource_value(sel, pod, container, node)
            .map(Some)
            .map_err(EnvError::ResourceFieldRef);
    }
    if let Some(sel) = &from.config_map_key_ref {
        let optional = sel.optional == Some(true);
        let Some(cm) = fetched.config_map(&sel.name).await? else {
            if optional {
                return Ok(None);
            }
            return Err(EnvError::ConfigMapNotFound {
                name: sel.name.clone(),
            });
        };
        return match cm.data.as_ref().and_then(|d| d.get(&sel.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::ConfigMapKeyNotFound {
                namespace: fetched.ns.to_string(),
                name: sel.name.clone(),
                key: sel.key.clone(),
            }),
        };
    }
    if let Some(sel) = &from.secret_key_ref {
        let optional = sel.optional == Some(true);
        let Some(secret) = fetched.secret(&sel.name).await? else {
            if optional {
                return Ok(None);
            }
            return Err(EnvError::SecretNotFound {
                name: sel.name.clone(),
            });
        };
        return match secret_value(secret, &sel.key) {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(EnvError::SecretKeyNotFound {
                namespace: fetched.ns.to_string(),
                name: sel.name.clone(),
                key: sel.key.clone(),
            }),
        };
    }
    if from.file_key_ref.is_some() {
        return Err(EnvError::Unsupported {
            name: var.to_string(),
            what: "fileKeyRef",
        });
    }
    Ok(Some(String::new()))
}

/// The service variables the pod sees. A static pod whose Services cannot be listed (no API
/// server yet: it may be the API server) starts without them, as on kubelet, whose service
/// lister is empty until its first sync and which waits for that sync only for API pods.
async fn services_env(
    src: &impl EnvSource,
    pod: &Pod,
    ns: &str,
) -> Result<Vec<(String, String)>, EnvError> {
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    match list_services(src, ns, links).await {
        Ok((default_services, namespace_services)) => Ok(service_env(&visible_services(
            ns,
            links,
            default_services,
            namespace_services,
        ))),
        Err(e) if crate::pods::config_source::is_static(pod) => {
            tracing::debug!(error = %e, "static pod starts without service variables");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// The Services of the default namespace and of `ns` (when the pod sees them).
async fn list_services(
    src: &impl EnvSource,
    ns: &str,
    links: bool,
) -> Result<(Vec<Service>, Vec<Service>), EnvError> {
    let default_services = src.services("default").await.map_err(EnvError::Services)?;
    let namespace_services = match (links, is_master_namespace(ns)) {
        (false, _) => Vec::new(),
        (true, true) => default_services.clone(),
        (true, false) => src.services(ns).await.map_err(EnvError::Services)?,
    };
    Ok((default_services, namespace_services))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pods::{first, pod, pod_with};
    use serde_json::{Value, json};
    use std::sync::Mutex;

    /// ConfigMaps, Secrets and Services in memory; records every read.
    #[derive(Default)]
    struct FakeSource {
        config_maps: HashMap<(String, String), ConfigMap>,
        secrets: HashMap<(String, String), Secret>,
        services: Vec<Service>,
        fail: bool,
        /// Listing Services fails (no API server).
        services_down: bool,
        reads: Mutex<Vec<String>>,
    }

    impl FakeSource {
        fn with_config_map(mut self, ns: &str, name: &str, data: &Value) -> Self {
            let cm = serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": ns}, "data": data}),
            )
            .unwrap();
            self.config_maps.insert((ns.into(), name.into()), cm);
            self
        }

        fn with_secret(mut self, ns: &str, name: &str, data: &Value) -> Self {
            let mut secret: Secret =
                serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}}))
                    .unwrap();
            secret.data = Some(
                data.as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            k8s_openapi::ByteString(v.as_str().unwrap().as_bytes().to_vec()),
                        )
                    })
                    .collect(),
            );
            self.secrets.insert((ns.into(), name.into()), secret);
            self
        }

        fn with_service(mut self, ns: &str, name: &str, ip: &str, port: i32) -> Self {
            self.services.push(
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"clusterIP": ip, "ports": [{"port": port, "protocol": "TCP"}]}
                }))
                .unwrap(),
            );
            self
        }

        fn failing() -> Self {
            FakeSource {
                fail: true,
                ..Default::default()
            }
        }

        fn error() -> kube::Error {
            kube::Error::Api(Box::new(
                serde_json::from_value(json!({"code": 403, "message": "configmaps \"x\" is forbidden", "reason": "Forbidden"}))
                    .unwrap(),
            ))
        }

        fn reads(&self) -> Vec<String> {
            self.reads.lock().unwrap().clone()
        }
    }

    impl EnvSource for FakeSource {
        async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, kube::Error> {
            self.reads
                .lock()
                .unwrap()
                .push(format!("configmap {ns}/{name}"));
            if self.fail {
                return Err(Self::error());
            }
            Ok(self
                .config_maps
                .get(&(ns.to_string(), name.to_string()))
                .cloned())
        }

        async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
            self.reads
                .lock()
                .unwrap()
                .push(format!("secret {ns}/{name}"));
            if self.fail {
                return Err(Self::error());
            }
            Ok(self
                .secrets
                .get(&(ns.to_string(), name.to_string()))
                .cloned())
        }

        async fn services(&self, ns: &str) -> Result<Vec<Service>, kube::Error> {
            if self.services_down {
                return Err(Self::error());
            }
            Ok(self
                .services
                .iter()
                .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
                .cloned()
                .collect())
        }
    }

    fn node() -> NodeFacts {
        NodeFacts {
            node_name: "node-a".into(),
            host_ip: "192.0.2.10".into(),
            allocatable_cpu_millis: 2000,
            allocatable_memory_bytes: 4 << 30,
            absolute_allocatable_cpu_millis: 2000,
            absolute_allocatable_memory_bytes: 4 << 30,
            ..NodeFacts::default()
        }
    }

    fn pod_ips() -> Vec<String> {
        vec!["10.1.0.5".into()]
    }

    async fn resolve(src: &FakeSource, c: Value) -> Result<ResolvedEnv, EnvError> {
        let p = pod(json!({"containers": [c]}));
        resolve_env(src, &p, first(&p), &node(), &pod_ips()).await
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn env_from_then_env_with_overrides_in_definition_order() {
        let src = FakeSource::default()
            .with_config_map("ns", "cfg", &json!({"B": "from-cm", "A": "cm-a"}))
            .with_secret("ns", "sec", &json!({"TOKEN": "s3cret"}));
        let env = resolve(
            &src,
            json!({"name": "c",
                "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}, "prefix": "S_"}],
                "env": [{"name": "B", "value": "literal"}, {"name": "C", "value": "c"}, {"name": "A", "value": "again"}]
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            env.vars,
            pairs(&[
                ("A", "again"),
                ("B", "literal"),
                ("S_TOKEN", "s3cret"),
                ("C", "c")
            ])
        );
        assert!(env.invalid_keys.is_empty());
    }

    #[tokio::test]
    async fn values_expand_against_earlier_variables_only() {
        let src = FakeSource::default().with_config_map("ns", "cfg", &json!({"HOST": "db"}));
        let env = resolve(
            &src,
            json!({"name": "c",
                "envFrom": [{"configMapRef": {"name": "cfg"}}],
                "env": [
                    {"name": "URL", "value": "postgres://$(HOST):$(PORT)/$(NAME)"},
                    {"name": "PORT", "value": "5432"},
                    {"name": "URL2", "value": "$(HOST):$(PORT) $$(HOST)"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "REF", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "HOST"}}},
                    {"name": "EMPTY", "value": ""}
                ]
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            env.vars,
            pairs(&[
                ("HOST", "db"),
                ("URL", "postgres://db:$(PORT)/$(NAME)"),
                ("PORT", "5432"),
                ("URL2", "db:5432 $(HOST)"),
                ("POD", "web"),
                ("REF", "db"),
                ("EMPTY", ""),
            ])
        );
    }

    #[tokio::test]
    async fn value_from_sources() {
        let src = FakeSource::default()
            .with_config_map("ns", "cfg", &json!({"k": "$(NOT_EXPANDED)"}))
            .with_secret("ns", "sec", &json!({"pw": "hunter2"}));
        let env = resolve(
            &src,
            json!({"name": "c",
                "resources": {"limits": {"memory": "256Mi"}},
                "env": [
                    {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}
                ]
            }),
        )
        .await
        .unwrap();
        assert_eq!(
            env.vars,
            pairs(&[
                ("CM", "$(NOT_EXPANDED)"),
                ("PW", "hunter2"),
                ("NODE", "node-a"),
                ("IP", "10.1.0.5"),
                ("MEM", "256"),
                ("CPU", "2"),
            ])
        );
    }

    #[tokio::test]
    async fn missing_required_references_fail_with_kubelet_messages() {
        let src = FakeSource::default()
            .with_config_map("ns", "cfg", &json!({"a": "1"}))
            .with_secret("ns", "sec", &json!({"a": "1"}));
        let cases = [
            (
                json!({"configMapKeyRef": {"name": "nope", "key": "a"}}),
                "configmap \"nope\" not found",
            ),
            (
                json!({"configMapKeyRef": {"name": "cfg", "key": "k"}}),
                "couldn't find key k in ConfigMap ns/cfg",
            ),
            (
                json!({"secretKeyRef": {"name": "nope", "key": "a"}}),
                "secret \"nope\" not found",
            ),
            (
                json!({"secretKeyRef": {"name": "sec", "key": "k"}}),
                "couldn't find key k in Secret ns/sec",
            ),
            (
                json!({"fieldRef": {"fieldPath": "spec.bogus"}}),
                "field label not supported: spec.bogus",
            ),
            (
                json!({"resourceFieldRef": {"resource": "limits.gpu"}}),
                "unsupported container resource : limits.gpu",
            ),
        ];
        for (value_from, message) in cases {
            let err = resolve(
                &src,
                json!({"name": "c", "env": [{"name": "X", "valueFrom": value_from}]}),
            )
            .await
            .unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        for (from, message) in [
            (
                json!({"configMapRef": {"name": "nope"}}),
                "configmap \"nope\" not found",
            ),
            (
                json!({"secretRef": {"name": "nope"}}),
                "secret \"nope\" not found",
            ),
        ] {
            let err = resolve(&src, json!({"name": "c", "envFrom": [from]}))
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[tokio::test]
    async fn optional_references_are_skipped() {
        let src = FakeSource::default()
            .with_config_map("ns", "cfg", &json!({"a": "1"}))
            .with_secret("ns", "sec", &json!({"a": "1"}));
        let env = resolve(
            &src,
            json!({"name": "c",
                "envFrom": [
                    {"configMapRef": {"name": "nope", "optional": true}},
                    {"secretRef": {"name": "nope", "optional": true}}
                ],
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "a", "optional": true}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "zz", "optional": true}}},
                    {"name": "C", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "a", "optional": true}}},
                    {"name": "D", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "zz", "optional": true}}},
                    {"name": "E", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "a", "optional": true}}}
                ]
            }),
        )
        .await
        .unwrap();
        assert_eq!(env.vars, pairs(&[("E", "1")]));
    }

    #[tokio::test]
    async fn invalid_env_from_keys_are_skipped_and_reported() {
        let mut src = FakeSource::default().with_config_map("ns", "cfg", &json!({"good": "1"}));
        // Keys the API would not accept, to exercise the guard.
        let cm = src
            .config_maps
            .get_mut(&("ns".into(), "cfg".into()))
            .unwrap();
        cm.data.as_mut().unwrap().insert("a=b".into(), "2".into());
        cm.data
            .as_mut()
            .unwrap()
            .insert("tab\there".into(), "3".into());
        let env = resolve(
            &src,
            json!({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}),
        )
        .await
        .unwrap();
        assert_eq!(env.vars, pairs(&[("good", "1")]));
        assert_eq!(env.invalid_keys, ["a=b", "tab\there"]);
        assert_eq!(
            env.skipped[0].event_message("ns"),
            "Keys [a=b, tab\there] from the EnvFrom configMap ns/cfg were skipped since they are considered invalid environment variable names."
        );
    }

    #[test]
    fn env_var_names() {
        for ok in ["A", "my.env-name", "1abc", "with space"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "a=b", "tab\t", "é"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn each_object_is_read_once() {
        let src = FakeSource::default().with_config_map("ns", "cfg", &json!({"a": "1", "b": "2"}));
        resolve(
            &src,
            json!({"name": "c",
                "envFrom": [{"configMapRef": {"name": "cfg"}}],
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
                    {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "b"}}}
                ]
            }),
        )
        .await
        .unwrap();
        assert_eq!(src.reads(), ["configmap ns/cfg"]);
    }

    #[tokio::test]
    async fn api_failures_are_errors_even_for_optional_refs() {
        let src = FakeSource::failing();
        let err = resolve(
            &src,
            json!({"name": "c", "envFrom": [{"configMapRef": {"name": "x", "optional": true}}]}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "couldn't get configmap ns/x: configmaps \"x\" is forbidden"
        );
    }

    #[tokio::test]
    async fn a_static_pod_starts_without_service_variables_when_services_cannot_be_listed() {
        let src = FakeSource {
            services_down: true,
            ..Default::default()
        };
        let spec = json!({"containers": [{"name": "c", "env": [{"name": "A", "value": "a"}]}]});
        let file = pod_with(
            json!({"name": "etcd-n", "namespace": "kube-system", "uid": "u",
                "annotations": {"kubernetes.io/config.source": "file"}}),
            spec.clone(),
        );
        let env = resolve_env(&src, &file, first(&file), &node(), &pod_ips())
            .await
            .unwrap();
        assert_eq!(env.vars, pairs(&[("A", "a")]));
        // An API pod waits for the Services: its container fails until they can be listed.
        let api = pod_with(json!({"name": "web", "namespace": "ns", "uid": "u2"}), spec);
        let err = resolve_env(&src, &api, first(&api), &node(), &pod_ips())
            .await
            .unwrap_err();
        assert!(matches!(err, EnvError::Services(_)), "{err}");
    }

    #[tokio::test]
    async fn service_variables_come_last_and_feed_expansion() {
        let src = FakeSource::default()
            .with_service("default", "kubernetes", "10.96.0.1", 443)
            .with_service("ns", "db", "10.96.0.7", 5432)
            .with_service("other", "elsewhere", "10.96.0.8", 80);
        let env = resolve(
            &src,
            json!({"name": "c", "env": [
                {"name": "DB", "value": "$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)"},
                {"name": "KUBERNETES_SERVICE_HOST", "value": "overridden"}
            ]}),
        )
        .await
        .unwrap();
        assert_eq!(
            env.vars[0],
            ("DB".to_string(), "10.96.0.7:5432".to_string())
        );
        assert_eq!(
            env.vars[1].1, "overridden",
            "env wins over service variables"
        );
        let names: Vec<_> = env.vars.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"KUBERNETES_SERVICE_PORT"));
        assert!(names.contains(&"DB_PORT_5432_TCP_ADDR"));
        assert!(!names.iter().any(|n| n.starts_with("ELSEWHERE")));
        assert_eq!(
            names
                .iter()
                .filter(|n| **n == "KUBERNETES_SERVICE_HOST")
                .count(),
            1
        );

        let p = pod_with(
            json!({"name": "web", "namespace": "ns"}),
            json!({"enableServiceLinks": false, "containers": [{"name": "c"}]}),
        );
        let env = resolve_env(&src, &p, first(&p), &node(), &pod_ips())
            .await
            .unwrap();
        let names: Vec<_> = env.vars.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            names.contains(&"KUBERNETES_SERVICE_HOST"),
            "the master service is always there"
        );
        assert!(!names.iter().any(|n| n.starts_with("DB_")));
    }

    #[tokio::test]
    async fn file_key_ref_is_refused() {
        let err = resolve(
            &FakeSource::default(),
            json!({"name": "c", "env": [{"name": "F", "valueFrom": {"fileKeyRef": {"volumeName": "v", "path": "p", "key": "k"}}}]}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "env var F: fileKeyRef is not supported by this node"
        );
    }
}

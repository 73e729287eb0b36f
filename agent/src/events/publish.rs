//! Sends events to the API server as events.k8s.io/v1 objects: news is created, a repeat
//! ([`super::series`]) patches the first object's series (count and last time), as kubelet's
//! recorder bumps a repeated event's count.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use super::series::{Key, Seen, Series};

/// One event waiting to be sent.
pub(super) struct Pending {
    pub regarding: ObjectReference,
    pub warning: bool,
    pub reason: String,
    pub action: String,
    pub note: String,
    pub annotations: BTreeMap<String, String>,
}

impl Pending {
    fn key(&self) -> Key {
        Key::new(
            &self.regarding,
            self.warning,
            &self.reason,
            &self.action,
            &self.note,
        )
    }
}

/// The sender's state: who reports, and what it sent recently.
pub(super) struct Publisher {
    client: kube::Client,
    /// reportingInstance: the node name.
    instance: String,
    series: Series,
}

const CONTROLLER: &str = "kubelet";

impl Publisher {
    pub(super) fn new(client: kube::Client, instance: &str) -> Publisher {
        Publisher {
            client,
            instance: instance.to_owned(),
            series: Series::default(),
        }
    }

    /// Sends `event`: a new object, or a repeat's count on the first one. A repeat whose
    /// object is gone is sent as news.
    pub(super) async fn publish(&mut self, event: Pending) -> Result<(), kube::Error> {
        let key = event.key();
        let namespace = event
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = Instant::now();
        if let Seen::Again { name, count } = self.series.observe(&key, now) {
            let patch = json!({"series": EventSeries {
                count,
                last_observed_time: MicroTime(Timestamp::now()),
            }});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => self.series.forget(&key),
                Err(e) => return Err(e),
            }
        }
        let object = self.object(&event, &namespace);
        let created = api.create(&PostParams::default(), &object).await?;
        if let Some(name) = created.metadata.name {
            self.series.created(key, name, now);
        }
        Ok(())
    }

    /// The new event object, named as kubelet names its events: OBJECT.HEXNANOS.
    fn object(&self, event: &Pending, namespace: &str) -> Event {
        let now = Timestamp::now();
        let object = event.regarding.name.as_deref().unwrap_or(CONTROLLER);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.to_owned()),
                annotations: (!event.annotations.is_empty()).then(|| event.annotations.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            reporting_controller: Some(CONTROLLER.to_owned()),
            reporting_instance: Some(self.instance.clone()),
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: Some(event.note.clone()),
            regarding: Some(event.regarding.clone()),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.to_owned()),
            ..Event::default()
        }
    }
}

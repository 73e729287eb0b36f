//! The certificates API over a kube client: create and get CSRs, and wait for one to be issued
//! through a watch on its name (list then watch, restarted with backoff when the stream breaks,
//! as client-go's `WaitForCertificate` uses `UntilWithSync`).

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tracing::{debug, info};

use super::csr_api::{Created, CsrApi, CsrError, Progress, progress};

/// The certificates API of the cluster `client` talks to, with `client`'s credentials.
#[derive(Clone)]
pub struct KubeCsr {
    api: Api<CertificateSigningRequest>,
}

impl KubeCsr {
    pub fn new(client: kube::Client) -> KubeCsr {
        KubeCsr {
            api: Api::all(client),
        }
    }
}

fn api_error(e: &kube::Error) -> CsrError {
    CsrError::Api(e.to_string())
}

impl CsrApi for KubeCsr {
    fn create<'a>(
        &'a self,
        csr: &'a CertificateSigningRequest,
    ) -> BoxFuture<'a, Result<Created, CsrError>> {
        async move {
            match self.api.create(&PostParams::default(), csr).await {
                Ok(made) => Ok(Created {
                    name: made.metadata.name.unwrap_or_default(),
                    uid: made.metadata.uid.unwrap_or_default(),
                }),
                Err(kube::Error::Api(s)) if s.code == 409 => Err(CsrError::AlreadyExists(
                    csr.metadata.name.clone().unwrap_or_default(),
                )),
                Err(e) => Err(CsrError::Api(format!(
                    "cannot create certificate signing request: {e}"
                ))),
            }
        }
        .boxed()
    }

    fn get<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<CertificateSigningRequest, CsrError>> {
        async move { self.api.get(name).await.map_err(|e| api_error(&e)) }.boxed()
    }

    fn wait_issued<'a>(
        &'a self,
        created: &'a Created,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, CsrError>> {
        async move {
            let config = watcher::Config::default().fields(&format!("metadata.name={}", created.name));
            let mut events = watcher::watcher(self.api.clone(), config)
                .default_backoff()
                .boxed();
            let wait = async {
                while let Some(event) = events.next().await {
                    let csr = match event {
                        Ok(Event::Apply(csr) | Event::InitApply(csr)) => csr,
                        Ok(Event::Delete(_)) => return Err(CsrError::Deleted(created.name.clone())),
                        Ok(Event::Init | Event::InitDone) => continue,
                        Err(e) => {
                            debug!(error = %e, csr = %created.name, "watch of the certificate signing request broke; restarting");
                            continue;
                        }
                    };
                    match progress(&csr, &created.uid)? {
                        Progress::Issued(cert) => {
                            info!(csr = %created.name, "certificate signing request is issued");
                            return Ok(cert);
                        }
                        Progress::Pending => {
                            debug!(csr = %created.name, "certificate signing request is not issued yet");
                        }
                    }
                }
                Err(CsrError::Api("the watch of the certificate signing request ended".into()))
            };
            tokio::time::timeout(timeout, wait)
                .await
                .unwrap_or(Err(CsrError::Timeout(timeout)))
        }
        .boxed()
    }
}

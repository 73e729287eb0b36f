//! kubelet's certificate manager metrics: `kubelet_certificate_manager_client_ttl_seconds`
//! and `kubelet_certificate_manager_server_ttl_seconds` (seconds until the certificate in use
//! expires, computed when scraped; +Inf while there is none; absent when that certificate is
//! not managed), `kubelet_certificate_manager_client_expiration_renew_errors` and
//! `kubelet_server_expiration_renew_errors` (failed renewals).

use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use prometheus::{GaugeVec, IntCounter, Opts, Registry};

/// Which of the node's certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Client,
    Server,
}

/// The families.
pub struct CertificateFamilies {
    client_ttl: GaugeVec,
    server_ttl: GaugeVec,
    client_renew_errors: IntCounter,
    server_renew_errors: IntCounter,
}

impl CertificateFamilies {
    pub fn new() -> Result<CertificateFamilies, prometheus::Error> {
        let ttl = |name: &str, what: &str| {
            GaugeVec::new(
                Opts::new(
                    name,
                    format!(
                        "Gauge of the TTL (time-to-live) of the Kubelet's {what} certificate. The value is in seconds until certificate expiry (negative if already expired). If {what} certificate is invalid or unused, the value will be +INF."
                    ),
                ),
                &[],
            )
        };
        Ok(CertificateFamilies {
            client_ttl: ttl("kubelet_certificate_manager_client_ttl_seconds", "client")?,
            server_ttl: ttl("kubelet_certificate_manager_server_ttl_seconds", "serving")?,
            client_renew_errors: IntCounter::new(
                "kubelet_certificate_manager_client_expiration_renew_errors",
                "Counter of certificate renewal errors.",
            )?,
            server_renew_errors: IntCounter::new(
                "kubelet_server_expiration_renew_errors",
                "Counter of certificate renewal errors.",
            )?,
        })
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.client_ttl.clone()))?;
        registry.register(Box::new(self.server_ttl.clone()))?;
        registry.register(Box::new(self.client_renew_errors.clone()))?;
        registry.register(Box::new(self.server_renew_errors.clone()))?;
        Ok(())
    }
}

/// What is known of one certificate's expiry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expiry {
    /// Not managed by the agent: no gauge.
    Unmanaged,
    /// Managed, none yet: +Inf.
    NoCertificate,
    At(SystemTime),
}

static EXPIRY: Mutex<[Expiry; 2]> = Mutex::new([Expiry::Unmanaged, Expiry::Unmanaged]);

fn slot(which: Which) -> usize {
    match which {
        Which::Client => 0,
        Which::Server => 1,
    }
}

/// The certificate in use now expires at `not_after` (None: there is none yet).
pub fn set_expiry(which: Which, not_after: Option<SystemTime>) {
    EXPIRY.lock().unwrap_or_else(PoisonError::into_inner)[slot(which)] =
        not_after.map_or(Expiry::NoCertificate, Expiry::At);
}

/// One failed renewal.
pub fn count_renew_error(which: Which) {
    if let Some(m) = super::global() {
        match which {
            Which::Client => m.families.certificates.client_renew_errors.inc(),
            Which::Server => m.families.certificates.server_renew_errors.inc(),
        }
    }
}

/// Seconds from `now` to `end`, truncated (negative once past), as kubelet's gauge.
#[allow(clippy::cast_precision_loss)]
fn ttl_seconds(end: SystemTime, now: SystemTime) -> f64 {
    match end.duration_since(now) {
        Ok(left) => left.as_secs() as f64,
        Err(past) => -(past.duration().as_secs() as f64),
    }
}

/// Sets the TTL gauges from the recorded expiries; called before every scrape.
pub fn refresh() {
    let Some(m) = super::global() else { return };
    let expiry = *EXPIRY.lock().unwrap_or_else(PoisonError::into_inner);
    let now = SystemTime::now();
    let gauges = [
        &m.families.certificates.client_ttl,
        &m.families.certificates.server_ttl,
    ];
    for (gauge, managed) in gauges.into_iter().zip(expiry) {
        if let Some(value) = gauge_value(managed, now) {
            gauge.with_label_values(&[] as &[&str]).set(value);
        }
    }
}

/// A TTL gauge's value: none when not managed, +Inf while there is no certificate.
fn gauge_value(expiry: Expiry, now: SystemTime) -> Option<f64> {
    match expiry {
        Expiry::Unmanaged => None,
        Expiry::NoCertificate => Some(f64::INFINITY),
        Expiry::At(end) => Some(ttl_seconds(end, now)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_ttl_counts_down_and_goes_negative() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert!(
            (ttl_seconds(now + Duration::from_millis(90_500), now) - 90.0).abs() < f64::EPSILON
        );
        assert!((ttl_seconds(now - Duration::from_secs(5), now) + 5.0).abs() < f64::EPSILON);
    }

    #[test]
    fn unmanaged_is_absent_and_no_certificate_is_infinite() {
        let now = SystemTime::now();
        assert_eq!(gauge_value(Expiry::Unmanaged, now), None);
        assert_eq!(gauge_value(Expiry::NoCertificate, now), Some(f64::INFINITY));
        assert_eq!(
            gauge_value(Expiry::At(now + Duration::from_secs(60)), now),
            Some(60.0)
        );
    }

    #[test]
    fn managed_certificates_appear_with_kubelet_names() {
        // Other tests record expiries too (one registry per process): only names are checked.
        set_expiry(Which::Server, None);
        set_expiry(
            Which::Client,
            Some(SystemTime::now() + Duration::from_secs(3600)),
        );
        count_renew_error(Which::Client);
        let text = super::super::encode();
        for name in [
            "kubelet_certificate_manager_server_ttl_seconds ",
            "kubelet_certificate_manager_client_ttl_seconds ",
            "kubelet_certificate_manager_client_expiration_renew_errors ",
            "kubelet_server_expiration_renew_errors ",
        ] {
            assert!(text.contains(name), "{name} missing in {text}");
        }
    }
}

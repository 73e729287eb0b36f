//! When a certificate is renewed, by client-go's certificate manager rules: at a random point
//! between 70% and 90% of its validity (`wait.Jitter(total, 0.2) - 0.3*total` after notBefore),
//! and at once when there is none or it no longer fits what would be requested (another CN, a
//! SAN or organization missing: the node's addresses changed).

use std::time::{Duration, SystemTime};

use super::pair::Leaf;
use super::request::Template;

/// A uniform random number in [0, 1) from the system's CSPRNG (0 if it fails, which only
/// moves the deadline to the window's start).
pub fn random_fraction() -> f64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.0;
    }
    // 53 random bits: every value is exact in an f64 and below 1.
    let bits = u64::from_le_bytes(bytes) >> 11;
    #[allow(clippy::cast_precision_loss)]
    let value = bits as f64 / (1u64 << 53) as f64;
    value
}

/// The renewal deadline of `leaf` for a `fraction` in [0, 1): notBefore + (0.7 + 0.2 x
/// fraction) x lifetime. Fractions outside [0, 1] are clamped.
pub fn deadline(leaf: &Leaf, fraction: f64) -> SystemTime {
    let fraction = if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, 1.0)
    };
    let share = 0.7 + 0.2 * fraction;
    leaf.not_before + leaf.lifetime().mul_f64(share)
}

/// True when `leaf` has what `template` asks for (client-go's certSatisfiesTemplate): the same
/// CN, and every requested DNS name, IP and organization.
pub fn satisfies(leaf: &Leaf, template: &Template) -> bool {
    leaf.common_name == template.common_name()
        && template
            .dns_names
            .iter()
            .all(|d| leaf.dns_names.contains(d))
        && template
            .ip_addresses
            .iter()
            .all(|i| leaf.ip_addresses.contains(i))
        && leaf.organizations.iter().any(|o| o == "system:nodes")
}

/// When to renew: `now` without a certificate or with one that does not fit, else the
/// jittered deadline.
pub fn next_renewal(
    current: Option<&Leaf>,
    template: &Template,
    fraction: f64,
    now: SystemTime,
) -> SystemTime {
    match current {
        Some(leaf) if satisfies(leaf, template) => deadline(leaf, fraction),
        _ => now,
    }
}

/// How long from `now` until `at` (zero when it has passed).
pub fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn leaf(lifetime: Duration) -> Leaf {
        Leaf {
            common_name: "system:node:n1".into(),
            organizations: vec!["system:nodes".into()],
            dns_names: vec!["n1".into()],
            ip_addresses: vec!["10.0.0.1".parse().unwrap()],
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + lifetime,
        }
    }

    #[test]
    fn the_deadline_is_always_within_70_to_90_percent_of_the_lifetime() {
        let year = Duration::from_secs(365 * 24 * 3600);
        let l = leaf(year);
        for _ in 0..10_000 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f), "{f}");
            let d = deadline(&l, f).duration_since(l.not_before).unwrap();
            assert!(d >= year.mul_f64(0.7) && d <= year.mul_f64(0.9), "{d:?}");
        }
        let at = |f| {
            deadline(&l, f)
                .duration_since(l.not_before)
                .unwrap()
                .as_secs_f64()
        };
        assert!((at(0.0) - year.as_secs_f64() * 0.7).abs() < 0.001);
        assert!((at(1.0) - year.as_secs_f64() * 0.9).abs() < 0.001);
        assert_eq!(deadline(&l, f64::NAN), deadline(&l, 0.0));
        assert_eq!(deadline(&l, 7.0), deadline(&l, 1.0));
    }

    #[test]
    fn random_fractions_spread_over_the_window() {
        let draws: Vec<f64> = (0..2000).map(|_| random_fraction()).collect();
        assert!(draws.iter().any(|f| *f < 0.1));
        assert!(draws.iter().any(|f| *f > 0.9));
    }

    #[test]
    fn a_missing_or_unfitting_certificate_is_renewed_at_once() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_010);
        let l = leaf(Duration::from_secs(100));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let fits = Template::serving("n1", "n1", &[ip]);
        assert_eq!(
            next_renewal(Some(&l), &fits, 0.5, now),
            l.not_before + Duration::from_secs(80)
        );
        assert_eq!(next_renewal(None, &fits, 0.5, now), now);
        let moved = Template::serving("n1", "n1", &["10.0.0.9".parse().unwrap()]);
        assert_eq!(next_renewal(Some(&l), &moved, 0.5, now), now);
        assert_eq!(
            next_renewal(Some(&l), &Template::client("n2"), 0.5, now),
            now
        );
        assert!(satisfies(&l, &Template::client("n1")));
    }
}

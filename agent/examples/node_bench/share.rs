//! The agent's own share of a pod start, read from its /metrics (HTTPS, with a client
//! certificate the agent authorizes; the API server's node proxy refuses loopback addresses): a
//! histogram's p50 and p99 per series, as the upper bounds of their buckets.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use crate::Res;
use crate::figures::Share;

/// Fetches `url` with curl and summarises every series of histogram `name`.
pub async fn scrape(url: &str, cert: &Path, key: &Path, name: &str, over: &str) -> Res<Vec<Share>> {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "10", "--insecure", "--cert"])
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("curl {url} failed: {}", stderr.trim()).into());
    }
    let mut shares = summarise(&String::from_utf8_lossy(&out.stdout), name);
    for s in &mut shares {
        s.over = over.to_string();
    }
    Ok(shares)
}

/// `name`'s series in a Prometheus text exposition: cumulative buckets -> p50, p99 (ms).
fn summarise(text: &str, name: &str) -> Vec<Share> {
    let bucket = format!("{name}_bucket{{");
    // series labels (without le) -> (le, cumulative count)
    let mut series: BTreeMap<String, Vec<(f64, u64)>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&bucket) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        let mut le = None;
        let mut others = Vec::new();
        for label in labels.split(',') {
            match label.strip_prefix("le=") {
                Some(v) => le = Some(v.trim_matches('"').to_string()),
                None => others.push(label.to_string()),
            }
        }
        let Some(le) = le else { continue };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::INFINITY)
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        series
            .entry(others.join(","))
            .or_default()
            .push((bound, count as u64));
    }
    series
        .into_iter()
        .map(|(labels, mut buckets)| {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total = buckets.last().map_or(0, |b| b.1);
            let quantile = |q: f64| {
                #[allow(clippy::cast_precision_loss)]
                let want = q * total as f64;
                #[allow(clippy::cast_precision_loss)]
                buckets
                    .iter()
                    .find(|(_, c)| *c as f64 >= want)
                    .map_or(f64::INFINITY, |(b, _)| b * 1000.0)
            };
            Share {
                series: format!("{name}{{{labels}}}"),
                over: String::new(),
                count: total,
                p50: quantile(0.5),
                p99: quantile(0.99),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_cumulative_buckets() {
        let text = "\
x_bucket{span=\"a\",le=\"0.001\"} 10
x_bucket{span=\"a\",le=\"0.005\"} 99
x_bucket{span=\"a\",le=\"0.01\"} 100
x_bucket{span=\"a\",le=\"+Inf\"} 100
x_count{span=\"a\"} 100
";
        let s = summarise(text, "x");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].count, 100);
        assert!((s[0].p50 - 5.0).abs() < 1e-9, "{}", s[0].p50);
        assert!((s[0].p99 - 5.0).abs() < 1e-9, "{}", s[0].p99);
    }
}

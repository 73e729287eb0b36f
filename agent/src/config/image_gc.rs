//! Image garbage collection settings, kubelet's: `imageGCHighThresholdPercent` (85; the image
//! filesystem's usage at which collection starts, 100 switches it off),
//! `imageGCLowThresholdPercent` (80; what it frees down to), `imageMinimumGCAge` (2m; an image
//! younger than this is never removed) and `imageMaximumGCAge` (0, off; an image unused for
//! longer is removed whatever the usage), or the flags `--image-gc-high-threshold`,
//! `--image-gc-low-threshold` and `--minimum-image-ttl-duration`.

use std::time::Duration;

use super::{ConfigError, FileConfig, Flags, duration, invalid};

/// When unused images are removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGcPolicy {
    pub high_percent: u8,
    pub low_percent: u8,
    pub min_age: Duration,
    /// Zero: no age limit.
    pub max_age: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        ImageGcPolicy {
            high_percent: 85,
            low_percent: 80,
            min_age: Duration::from_secs(120),
            max_age: Duration::ZERO,
        }
    }
}

fn percent(setting: &'static str, value: i32) -> Result<u8, ConfigError> {
    u8::try_from(value)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| invalid(setting)(format!("{value} must be between 0 and 100")))
}

fn age(setting: &'static str, text: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    text.map(|t| {
        duration::parse(t).map_err(|e| invalid(setting)(format!("{t:?} is not a duration ({e})")))
    })
    .transpose()
}

/// The flags over the file over kubelet's defaults.
///
/// # Errors
/// A percentage outside 0-100, a low threshold above the high one, a duration that does not
/// parse.
pub fn from_flags_and_file(flags: &Flags, file: &FileConfig) -> Result<ImageGcPolicy, ConfigError> {
    let d = ImageGcPolicy::default();
    let high = match flags
        .image_gc_high_threshold
        .or(file.image_gc_high_threshold_percent)
    {
        Some(v) => percent("--image-gc-high-threshold", v)?,
        None => d.high_percent,
    };
    let low = match flags
        .image_gc_low_threshold
        .or(file.image_gc_low_threshold_percent)
    {
        Some(v) => percent("--image-gc-low-threshold", v)?,
        None => d.low_percent,
    };
    if low > high {
        return Err(invalid("--image-gc-low-threshold")(format!(
            "{low} must not be above the high threshold {high}"
        )));
    }
    let min = flags
        .minimum_image_ttl_duration
        .as_deref()
        .or(file.image_minimum_gc_age.as_deref());
    Ok(ImageGcPolicy {
        high_percent: high,
        low_percent: low,
        min_age: age("--minimum-image-ttl-duration", min)?.unwrap_or(d.min_age),
        max_age: age("imageMaximumGCAge", file.image_maximum_gc_age.as_deref())?
            .unwrap_or(d.max_age),
    })
}

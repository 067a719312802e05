//! Tuning profiles: a TOML file holding only `[runtime]` keys (and `[limits] outbound_queue`),
//! overlaid on a loaded configuration by `--profile FILE`.
//!
//! A profile is checked on its own first (unknown keys, types, ranges: `P:LINE: key: …`), then
//! again once overlaid, since a cross-key rule (`runtime.batch` ≤ `runtime.queue_capacity`) may
//! pair a profile value with one from the configuration. Every problem is reported in the profile:
//! the configuration alone was already sound.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::error::{ConfigError, ConfigErrors};
use super::load::{sorted, Locator};
use super::schema::{LimitsConfig, RuntimeConfig, Shards};
use super::validate::validate_tuning;
use super::{duration, size, Config};

/// The tables a profile may hold.
const PROFILE_SECTIONS: &[&str] = &["runtime", "limits"];

/// A parsed and range-checked tuning profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The file this was read from (as given).
    pub source: PathBuf,
    /// The `[runtime]` keys it sets.
    pub runtime: RuntimeOverlay,
    /// The `[limits]` keys it sets.
    pub limits: LimitsOverlay,
    /// The text, kept to locate problems found when overlaid.
    text: String,
}

/// `[runtime]` of a profile: every key optional, absent keys keep the configuration's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeOverlay {
    /// `runtime.shards`.
    pub shards: Option<Shards>,
    /// `runtime.io_memory`.
    #[serde(deserialize_with = "opt_size")]
    pub io_memory: Option<usize>,
    /// `runtime.ring_depth`.
    pub ring_depth: Option<u32>,
    /// `runtime.queue_capacity`.
    pub queue_capacity: Option<usize>,
    /// `runtime.batch`.
    pub batch: Option<usize>,
    /// `runtime.spin_before_park`.
    #[serde(deserialize_with = "opt_duration")]
    pub spin_before_park: Option<Duration>,
    /// `runtime.preempt_timer`.
    #[serde(deserialize_with = "opt_duration")]
    pub preempt_timer: Option<Duration>,
    /// `runtime.read_buffer`.
    #[serde(deserialize_with = "opt_size")]
    pub read_buffer: Option<usize>,
    /// `runtime.write_batch`.
    pub write_batch: Option<usize>,
}

/// `[limits]` of a profile: only the outbound queue is a tuning knob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverlay {
    /// `limits.outbound_queue`.
    pub outbound_queue: Option<usize>,
}

fn opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    size::deserialize_usize(d).map(Some)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration::deserialize(d).map(Some)
}

impl RuntimeOverlay {
    /// Writes the keys this overlay sets into `r`.
    pub fn apply(&self, r: &mut RuntimeConfig) {
        fn set<T: Copy>(dst: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *dst = v;
            }
        }
        set(&mut r.shards, self.shards);
        set(&mut r.io_memory, self.io_memory);
        set(&mut r.ring_depth, self.ring_depth);
        set(&mut r.queue_capacity, self.queue_capacity);
        set(&mut r.batch, self.batch);
        set(&mut r.spin_before_park, self.spin_before_park);
        set(&mut r.preempt_timer, self.preempt_timer);
        set(&mut r.read_buffer, self.read_buffer);
        set(&mut r.write_batch, self.write_batch);
    }
}

impl Profile {
    /// Reads and checks the profile at `path`.
    pub fn load(path: &Path) -> Result<Profile, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            key: String::new(),
            message: format!("cannot read the profile: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text` as if read from `origin`: only `[runtime]` and
    /// `[limits] outbound_queue`, each value in its documented range.
    pub fn parse(text: &str, origin: &Path) -> Result<Profile, ConfigErrors> {
        let loc = Locator::parse(text, origin)?;
        let mut errors = Vec::new();
        for name in loc.top_level_keys() {
            if !PROFILE_SECTIONS.contains(&name) {
                errors.push(loc.at_path(
                    name,
                    "unknown key; a profile holds only [runtime] keys and [limits] outbound_queue"
                        .to_owned(),
                ));
            }
        }
        let runtime: Option<RuntimeOverlay> = loc.optional(&mut errors, "runtime");
        let limits: Option<LimitsOverlay> = loc.optional(&mut errors, "limits");
        let (Some(runtime), Some(limits), true) = (runtime, limits, errors.is_empty()) else {
            return Err(sorted(errors));
        };
        let profile = Profile {
            source: origin.to_path_buf(),
            runtime,
            limits,
            text: text.to_owned(),
        };
        // On its own, only the keys it sets are judged (against the defaults for the rest).
        let mut r = RuntimeConfig::default();
        profile.runtime.apply(&mut r);
        let queue = profile
            .limits
            .outbound_queue
            .unwrap_or(LimitsConfig::default().outbound_queue);
        let keys = profile.keys();
        let errors: Vec<ConfigError> = validate_tuning(&r, queue)
            .into_iter()
            .filter(|p| keys.contains(&p.key.as_str()))
            .map(|p| loc.at_path(&p.key, p.message))
            .collect();
        if errors.is_empty() {
            Ok(profile)
        } else {
            Err(sorted(errors))
        }
    }

    /// The dotted keys this profile sets, in schema order.
    pub fn keys(&self) -> Vec<&'static str> {
        let r = &self.runtime;
        [
            ("runtime.shards", r.shards.is_some()),
            ("runtime.io_memory", r.io_memory.is_some()),
            ("runtime.ring_depth", r.ring_depth.is_some()),
            ("runtime.queue_capacity", r.queue_capacity.is_some()),
            ("runtime.batch", r.batch.is_some()),
            ("runtime.spin_before_park", r.spin_before_park.is_some()),
            ("runtime.preempt_timer", r.preempt_timer.is_some()),
            ("runtime.read_buffer", r.read_buffer.is_some()),
            ("runtime.write_batch", r.write_batch.is_some()),
            ("limits.outbound_queue", self.limits.outbound_queue.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// Overlays this profile on `cfg` and checks the result; problems are located in the profile.
    pub fn apply(&self, cfg: &mut Config) -> Result<(), ConfigErrors> {
        let mut runtime = cfg.runtime.clone();
        self.runtime.apply(&mut runtime);
        let queue = self
            .limits
            .outbound_queue
            .unwrap_or(cfg.limits.outbound_queue);
        let problems = validate_tuning(&runtime, queue);
        if problems.is_empty() {
            cfg.runtime = runtime;
            cfg.limits.outbound_queue = queue;
            return Ok(());
        }
        // The text parsed at load; a failure here cannot happen, but is reported, not unwrapped.
        let loc = Locator::parse(&self.text, &self.source)?;
        let keys = self.keys();
        let errors = problems
            .into_iter()
            .map(|p| {
                let message = if keys.contains(&p.key.as_str()) {
                    p.message
                } else {
                    format!(
                        "{}; {} is the value from {}",
                        p.message,
                        p.key,
                        cfg.source.display()
                    )
                };
                loc.at_path(&p.key, message)
            })
            .collect();
        Err(sorted(errors))
    }
}

impl Config {
    /// This configuration with `profile` overlaid; see [`Profile::apply`].
    pub fn with_profile(mut self, profile: &Profile) -> Result<Config, ConfigErrors> {
        profile.apply(&mut self)?;
        Ok(self)
    }
}

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
    /// `runtime.huge_pages`.
    pub huge_pages: Option<bool>,
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
        set(&mut r.huge_pages, self.huge_pages);
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
            ("runtime.huge_pages", r.huge_pages.is_some()),
            (
                "limits.outbound_queue",
                self.limits.outbound_queue.is_some(),
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[server]
domains = ["corp.test"]
[listen]
s2s = ["127.0.0.10:5269"]
[tls]
certificate = "c.pem"
key = "k.pem"
[runtime]
batch = 32
"#;

    fn config() -> Config {
        Config::parse(CONFIG, Path::new("router.toml"), false).unwrap()
    }

    fn profile(text: &str) -> Result<Profile, ConfigErrors> {
        Profile::parse(text, Path::new("tuning/p.toml"))
    }

    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn overlays_only_the_keys_it_sets() {
        let p = profile(
            "[runtime]\nshards = 1\nio_memory = \"256KiB\"\nspin_before_park = \"20us\"\n\
             read_buffer = \"8KiB\"\nhuge_pages = true\n[limits]\noutbound_queue = 50\n",
        )
        .unwrap();
        assert_eq!(
            p.keys(),
            [
                "runtime.shards",
                "runtime.io_memory",
                "runtime.spin_before_park",
                "runtime.read_buffer",
                "runtime.huge_pages",
                "limits.outbound_queue"
            ]
        );
        let cfg = config().with_profile(&p).unwrap();
        let r = &cfg.runtime;
        assert_eq!(r.shards, Shards::Count(1));
        assert_eq!(r.io_memory, 256 * 1024);
        assert_eq!(r.spin_before_park, Duration::from_micros(20));
        assert_eq!(r.read_buffer, 8192);
        assert!(r.huge_pages);
        assert_eq!(r.batch, 32, "kept from the configuration");
        assert_eq!(r.ring_depth, 128, "kept (default)");
        assert_eq!(cfg.limits.outbound_queue, 50);
        assert_eq!(cfg.limits.connections, 1000, "other limits untouched");
    }

    #[test]
    fn an_empty_profile_changes_nothing() {
        let p = profile("# nothing\n").unwrap();
        assert!(p.keys().is_empty());
        assert_eq!(config().with_profile(&p).unwrap(), config());
    }

    #[test]
    fn unknown_profile_key_is_located_in_the_profile() {
        let text = "[runtime]\nshards = 1\nreadbuffer = 4096\n";
        let errs = profile(text).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs}");
        let e = &errs.0[0];
        assert_eq!(e.file, Path::new("tuning/p.toml"));
        assert_eq!(e.line, Some(3));
        assert_eq!(e.key, "runtime.readbuffer");
        assert!(e.message.contains("valid keys"), "{e}");
        assert!(e.message.contains("read_buffer"), "{e}");
        assert!(e
            .to_string()
            .starts_with("tuning/p.toml:3: runtime.readbuffer: "));
    }

    #[test]
    fn tables_and_limits_other_than_tuning_ones_are_refused() {
        let text = "[server]\ndomains = [\"x.test\"]\n[limits]\nconnections = 5\n";
        let errs = profile(text).unwrap_err();
        let got: Vec<(&str, Option<usize>)> =
            errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            got,
            [("server", Some(1)), ("limits.connections", Some(4))],
            "{errs}"
        );
        assert!(errs.0[0].message.contains("only [runtime]"), "{errs}");
    }

    #[test]
    fn bad_profile_values_are_located_and_all_reported() {
        let text = "[runtime]\nring_depth = 0\npreempt_timer = \"100\"\nwrite_batch = 0\n\
                    [limits]\noutbound_queue = 0\n";
        let errs = profile(text).unwrap_err();
        let got: Vec<(&str, Option<usize>)> =
            errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
        // A type error is reported alone: ranges are judged once every value has its type.
        assert_eq!(got, [("runtime.preempt_timer", Some(3))], "{errs}");
        let text = "[runtime]\nring_depth = 0\nwrite_batch = 0\n[limits]\noutbound_queue = 0\n";
        let errs = profile(text).unwrap_err();
        let got: Vec<(&str, Option<usize>)> =
            errs.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            got,
            [
                ("runtime.ring_depth", Some(line_of(text, "ring_depth"))),
                ("runtime.write_batch", Some(line_of(text, "write_batch"))),
                (
                    "limits.outbound_queue",
                    Some(line_of(text, "outbound_queue"))
                ),
            ]
        );
    }

    #[test]
    fn a_cross_key_problem_with_the_configuration_is_reported_in_the_profile() {
        // Alone the profile is sound; over a configuration with batch = 32 it is not.
        let text = "# small queues\n[runtime]\nqueue_capacity = 16\n";
        let p = profile(text).unwrap();
        let errs = config().with_profile(&p).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs}");
        let e = &errs.0[0];
        assert_eq!(e.file, Path::new("tuning/p.toml"));
        assert_eq!(e.key, "runtime.batch");
        assert_eq!(
            e.line,
            Some(2),
            "the [runtime] header: batch is not in the profile"
        );
        assert!(e.message.contains("router.toml"), "{e}");
    }

    #[test]
    fn shipped_profiles_are_sound_over_the_example_configuration() {
        let example = Config::parse(
            include_str!("../../examples/corp.test.toml"),
            Path::new("examples/corp.test.toml"),
            false,
        )
        .unwrap();
        for (name, text) in [
            ("throughput", include_str!("../../tuning/throughput.toml")),
            ("latency", include_str!("../../tuning/latency.toml")),
            ("small-edge", include_str!("../../tuning/small-edge.toml")),
        ] {
            let p = Profile::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{e}"));
            example
                .clone()
                .with_profile(&p)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn syntax_errors_in_a_profile_are_located() {
        let errs = profile("[runtime]\nshards = = 1\n").unwrap_err();
        assert_eq!(errs.0[0].line, Some(2), "{errs}");
        assert!(errs.0[0].message.starts_with("TOML syntax"), "{errs}");
    }
}

//! `stanza-router check`: validates the configuration (with its tuning profile, if any) and the
//! files it names.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigErrors, Profile};

/// Loads `config` and overlays `profile` when given. Problems of both files are reported together
/// (each located in its own file); the overlay is checked once both are sound.
pub fn load(config: &Path, profile: Option<&Path>) -> Result<Config, ConfigErrors> {
    let cfg = Config::load(config);
    let Some(profile) = profile else {
        return cfg;
    };
    match (cfg, Profile::load(profile)) {
        (Ok(cfg), Ok(p)) => cfg.with_profile(&p),
        (Err(mut a), Err(b)) => {
            a.0.extend(b.0);
            Err(a)
        }
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
    }
}

/// Prints every problem and returns 2, or prints a summary and returns 0.
pub fn run(path: &Path, profile: Option<&Path>) -> ExitCode {
    match load(path, profile) {
        Ok(cfg) => {
            let mut problems = Vec::new();
            if let Err(e) = crate::edge::tls::load_identity(&cfg.tls.certificate, &cfg.tls.key) {
                problems.push(format!("{}: tls: {e}", path.display()));
            }
            if let Err(e) = crate::edge::tls::load_roots(&cfg.tls.trust, cfg.tls.system_roots) {
                problems.push(format!("{}: tls.trust: {e}", path.display()));
            }
            if problems.is_empty() {
                let with = profile
                    .map(|p| format!(" with profile {}", p.display()))
                    .unwrap_or_default();
                println!(
                    "{}{with}: ok ({} domain(s), {} partner(s), {} shard(s))",
                    path.display(),
                    cfg.server.domains.len(),
                    cfg.partners.len(),
                    cfg.shard_count()
                );
                ExitCode::SUCCESS
            } else {
                for p in problems {
                    eprintln!("{p}");
                }
                ExitCode::from(2)
            }
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(2)
        }
    }
}

//! `stanza-router check`: validates the configuration and the files it names.

use std::path::Path;
use std::process::ExitCode;

/// Prints every problem and returns 2, or prints a summary and returns 0.
pub fn run(path: &Path) -> ExitCode {
    match crate::config::Config::load(path) {
        Ok(cfg) => {
            let mut problems = Vec::new();
            if let Err(e) = crate::edge::tls::load_identity(&cfg.tls.certificate, &cfg.tls.key) {
                problems.push(format!("{}: tls: {e}", path.display()));
            }
            if let Err(e) = crate::edge::tls::load_roots(&cfg.tls.trust, cfg.tls.system_roots) {
                problems.push(format!("{}: tls.trust: {e}", path.display()));
            }
            if problems.is_empty() {
                println!(
                    "{}: ok ({} domain(s), {} partner(s), {} shard(s))",
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

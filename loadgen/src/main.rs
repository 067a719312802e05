//! loadgen: plays federated XMPP partners against stanza-router (see `loadgen --help`).

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Cli, Command};
use loadgen::{html, report::Report, run, setup};

/// Exit status for refused arguments (as clap's own errors).
const USAGE: u8 = 2;

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("loadgen: error: {msg}");
    ExitCode::from(USAGE)
}

fn failure(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("loadgen: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Ca(a) => {
            let partners = match a.partner_domains() {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            match setup::write_ca(&a.dir, &a.router_domain, &partners) {
                Ok(()) => {
                    println!(
                        "wrote CA, {} certificate and {} partner domains to {}",
                        a.router_domain,
                        partners.len(),
                        a.dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => failure(e),
            }
        }
        Command::Config(a) => {
            if let Err(e) = a.check() {
                return usage(e);
            }
            let ca = match setup::read_ca_dir(&a.ca_dir) {
                Ok(c) => c,
                Err(e) => return usage(format!("--ca-dir: {e}")),
            };
            let partners = match loadgen::cli::select_partners(&ca, a.partners.partners) {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            let addrs = match loadgen::cli::partner_addrs(a.partners.partner_listen, partners.len())
            {
                Ok(a) => a,
                Err(e) => return usage(e),
            };
            let text = setup::router_toml(
                &ca,
                &partners,
                a.router_s2s,
                &addrs,
                a.connections,
                &a.shards,
            );
            match std::fs::write(&a.out, text) {
                Ok(()) => {
                    println!("wrote {}", a.out.display());
                    for (p, addr) in partners.iter().zip(&addrs) {
                        println!("  {p} → {addr}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => failure(format!("{}: {e}", a.out.display())),
            }
        }
        Command::Run(a) => {
            if let Err(e) = a.check() {
                return usage(e);
            }
            let ca = match setup::read_ca_dir(&a.ca_dir) {
                Ok(c) => c,
                Err(e) => return usage(format!("--ca-dir: {e}")),
            };
            let plan = match a.plan(&ca) {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            let tls = match setup::partner_tls(&a.ca_dir) {
                Ok(t) => t,
                Err(e) => return usage(format!("--ca-dir: {e}")),
            };
            let result = match run::run(&plan, &tls) {
                Ok(r) => r,
                Err(e) => return failure(e),
            };
            let report = Report::new(&plan, &result);
            print!("{}", report.text());
            if let Some(path) = &a.json {
                if let Err(e) = std::fs::write(path, report.to_json()) {
                    return failure(format!("{}: {e}", path.display()));
                }
            }
            if let Some(path) = &a.html {
                if let Err(e) = std::fs::write(path, html::render(&report)) {
                    return failure(format!("{}: {e}", path.display()));
                }
            }
            if report.clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

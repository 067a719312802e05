//! loadgen: plays federated XMPP partners against stanza-router (see `loadgen --help`).

use std::process::ExitCode;

use clap::Parser;
use loadgen::cli::{Cli, Command};
use loadgen::workload::Workload;
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
            match setup::write_ca_with(&a.dir, &a.router_domain, &partners, !a.dns_id_only) {
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
            let sip = setup::SipSides {
                next_hop: a.sip_next_hop,
                listen: a.sip_listen,
                s2s_tls: a.router_s2s_tls,
                dialback: a.auth == loadgen::run::Auth::Dialback,
            };
            let text = setup::router_toml_sip(
                &ca,
                &partners,
                a.router_s2s,
                &addrs,
                a.connections,
                &a.shards,
                sip,
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
        Command::Hiccups(a) => {
            let plan = match a.plan() {
                Ok(p) => p,
                Err(e) => return usage(e),
            };
            let gaps = match loadgen::hiccup::measure(&plan) {
                Ok(g) => g,
                Err(e) => return failure(format!("cannot pin the measuring threads: {e}")),
            };
            let on = plan
                .cpu
                .map_or("this thread's CPU".to_string(), |c| format!("CPU {c}"));
            let load = plan
                .load_cpu
                .map_or(String::new(), |c| format!(", CPU {c} kept busy"));
            println!("hiccups on {on}{load}: {}", gaps.describe());
            if let Some(path) = &a.json {
                let json = serde_json::to_string_pretty(&gaps).unwrap_or_default();
                if let Err(e) = std::fs::write(path, json + "\n") {
                    return failure(format!("{}: {e}", path.display()));
                }
            }
            ExitCode::SUCCESS
        }
        Command::Sweep(a) => {
            let sweep = match loadgen::sweep::prepare(&a) {
                Ok(s) => s,
                Err(e) => return usage(e),
            };
            match sweep.run() {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => failure(e),
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
            if plan.workload == Workload::Idle {
                return idle(&plan, &tls);
            }
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

/// `--workload idle`: one line when the sessions are up (scripts wait for it), one at the end.
fn idle(plan: &run::RunPlan, tls: &run::PartnerTls) -> ExitCode {
    use std::io::Write;
    let result = run::idle(plan, tls, |n| {
        println!(
            "idle: {n} of {} sessions established, holding them for {:.0} s",
            plan.connections,
            plan.duration.as_secs_f64()
        );
        let _ = std::io::stdout().flush();
    });
    match result {
        Ok(r) => {
            println!(
                "idle: done, {} held, {} closed by the server early, {} connection errors",
                r.established,
                r.closed_early,
                r.errors.total()
            );
            for m in r.errors.messages() {
                println!("    {m}");
            }
            if r.established == plan.connections && r.closed_early == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => failure(e),
    }
}

//! The `stanza-router` command: `run`, `check`.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// XMPP federation edge and XMPP⇄SIP gateway.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the router.
    Run {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Tuning profile (TOML: [runtime] keys, [limits] outbound_queue) overlaid on the config.
        #[arg(long, short)]
        profile: Option<PathBuf>,
    },
    /// Run the router with an embedded SIP pool and federated partner on loopback; print a report.
    Demo {
        /// Pings to send to corp.test.
        #[arg(long, default_value_t = 5000)]
        pings: usize,
        /// Messages the partner sends to users of corp.test (SIP MESSAGEs to the pool).
        #[arg(long, default_value_t = 5000)]
        messages: usize,
        /// Messages the SIP pool sends to alice@partner.test.
        #[arg(long, default_value_t = 5000)]
        sip_messages: usize,
        /// Router shards (0 = one per CPU); a profile's runtime.shards overrides it.
        #[arg(long, default_value_t = 0)]
        shards: usize,
        /// Tuning profile overlaid on the demo router's configuration.
        #[arg(long, short)]
        profile: Option<PathBuf>,
    },
    /// Validate the configuration: exit 0 when sound, 2 with every problem listed.
    Check {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Tuning profile to check and overlay on the config.
        #[arg(long, short)]
        profile: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            pings,
            messages,
            sip_messages,
            shards,
            profile,
        } => stanza_router::ops::demo::run(stanza_router::ops::demo::DemoOptions {
            pings,
            messages,
            sip_messages,
            shards,
            profile,
        }),
        Command::Check { config, profile } => {
            stanza_router::ops::check::run(&config, profile.as_deref())
        }
        Command::Run { config, profile } => {
            let cfg = match stanza_router::ops::check::load(&config, profile.as_deref()) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(2);
                }
            };
            stanza_router::ops::logging::init(&cfg.log.level);
            match stanza_router::ops::run::run(Arc::new(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("stanza-router: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

//! Running until SIGTERM/SIGINT, then closing every stream and exiting.

use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::info;

use crate::config::Config;
use crate::runtime::shards::{self, StartError};

/// Runs the router in the foreground until a termination signal.
pub fn run(cfg: Arc<Config>) -> Result<(), StartError> {
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| StartError::Executor(e.to_string()))?;
    let router = shards::start(cfg)?;
    let counters = router.counters.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            info!(signal = sig, "shutting down");
            counters
                .shutdown
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    router.join();
    info!("stopped");
    Ok(())
}

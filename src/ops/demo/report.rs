//! The demo's printed report.

use std::sync::atomic::Ordering;

use super::partner::Outcome;
use crate::edge::context::SharedCounters;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Prints the report; true when every stanza was accounted for.
pub fn print(o: &Outcome, counters: &SharedCounters) -> bool {
    println!();
    println!("samples (partner.test → corp.test, and the router's answer):");
    for (req, ans) in &o.samples {
        println!("  → {req}");
        println!("  ← {ans}");
    }
    let mut lat = o.latencies_us.clone();
    lat.sort_unstable();
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    println!();
    println!("outcomes:");
    println!("  sent                          {}", o.sent);
    println!("  pings answered (iq result)    {}", o.pings_answered);
    println!(
        "  messages bounced (service-unavailable, no gateway yet) {}",
        o.messages_bounced
    );
    println!("  unexpected answers            {}", o.unexpected.len());
    println!("  missing (lost)                {}", o.missing);
    println!(
        "  router counters: stanzas in {}, stanzas out {}, undeliverable replies {}",
        counters.stanzas_in.load(Ordering::Relaxed),
        counters.stanzas_out.load(Ordering::Relaxed),
        counters.replies_undeliverable.load(Ordering::Relaxed)
    );
    println!();
    println!(
        "throughput: {} answered in {:.3} s = {:.0} stanzas/s (one burst over one TLS stream each way)",
        lat.len(),
        secs,
        lat.len() as f64 / secs
    );
    println!(
        "round-trip latency (µs, burst, includes queueing): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        lat.last().copied().unwrap_or(0)
    );
    for u in o.unexpected.iter().take(3) {
        println!("unexpected: {u}");
    }
    let ok = o.missing == 0
        && o.unexpected.is_empty()
        && o.pings_answered + o.messages_bounced == o.sent;
    println!();
    println!(
        "{}",
        if ok {
            "demo: OK, every stanza accounted for"
        } else {
            "demo: FAILED, see above"
        }
    );
    ok
}

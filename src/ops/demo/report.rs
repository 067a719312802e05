//! The demo's printed report.

use std::sync::atomic::Ordering;

use super::partner::Outcome;
use crate::edge::context::SharedCounters;
use crate::sim::PoolStats;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Prints the report; true when every message was accounted for and presence worked both ways.
pub fn print(
    o: &Outcome,
    counters: &SharedCounters,
    pool: &PoolStats,
    pool_samples: &[String],
) -> bool {
    let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    println!();
    println!("samples:");
    for (req, ans) in &o.samples {
        println!("  → {req}");
        println!("  ← {ans}");
    }
    if let Some(s) = pool_samples.first() {
        println!("  SIP MESSAGE as the pool received it:");
        for line in s.lines().take(14) {
            println!("    | {line}");
        }
    }
    println!();
    println!("presence:");
    for p in &o.presence {
        println!("  {p}");
    }
    let mut lat = o.latencies_us.clone();
    lat.sort_unstable();
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    let bounced: usize = o.messages_bounced.values().sum();
    println!();
    println!("outcomes:");
    println!(
        "  pings sent / answered (iq result)          {} / {}",
        o.pings, o.pings_answered
    );
    println!("  messages partner → pool sent              {}", o.messages);
    println!(
        "    delivered (SIP 2xx)                     {}",
        o.messages_delivered
    );
    for (cond, n) in &o.messages_bounced {
        println!("    bounced {cond:<32} {n}");
    }
    println!(
        "    missing (lost)                          {}",
        o.messages_missing()
    );
    if let Some(r) = &o.sip_report {
        println!("  messages pool → partner sent              {}", r.sent);
        for (code, n) in &r.by_status {
            println!("    answered {code:<31} {n}");
        }
        println!(
            "    no answer (lost)                        {}",
            r.missing + r.not_sent
        );
        println!(
            "    arrived at the partner                  {}",
            o.sip_messages_received
        );
    }
    println!(
        "  unexpected stanzas                        {}",
        o.unexpected.len()
    );
    println!(
        "  router: stanzas in {}, out {}; SIP MESSAGE delivered {}, bounced {}; from SIP: in {}, 200 {}, refused {}; undeliverable replies {}",
        c(&counters.stanzas_in),
        c(&counters.stanzas_out),
        c(&counters.messages_delivered),
        c(&counters.messages_bounced),
        c(&counters.sip_messages_in),
        c(&counters.sip_messages_delivered),
        c(&counters.sip_messages_refused),
        c(&counters.replies_undeliverable),
    );
    println!(
        "  pool: MESSAGEs received {}, answered {:?}; SUBSCRIBEs {}; NOTIFYs received {}",
        pool.messages_received,
        pool.messages_answered,
        pool.subscribes.initial,
        pool.notifies_received
    );
    println!();
    let handled = o.pings_answered + bounced + o.messages_delivered;
    println!(
        "throughput: {handled} partner stanzas ended (answered, delivered to SIP or bounced) in {secs:.3} s = {:.0} stanzas/s; pool → partner {:.0} messages/s",
        handled as f64 / secs,
        o.sip_report
            .as_ref()
            .map_or(0.0, |r| r.answered() as f64 / r.elapsed.as_secs_f64().max(1e-9))
    );
    println!(
        "ping round trip (µs, burst, includes queueing): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        percentile(&lat, 50.0),
        percentile(&lat, 90.0),
        percentile(&lat, 99.0),
        percentile(&lat, 99.9),
        lat.last().copied().unwrap_or(0)
    );
    if let Some(r) = &o.sip_report {
        let mut l = r.latencies_us.clone();
        l.sort_unstable();
        println!(
            "pool MESSAGE → 200 (µs, handed to the partner's stream): p50 {}  p99 {}  max {}",
            percentile(&l, 50.0),
            percentile(&l, 99.0),
            l.last().copied().unwrap_or(0)
        );
    }
    for u in o.unexpected.iter().take(3) {
        println!("unexpected: {u}");
    }
    let sip_ok = o.sip_report.as_ref().is_some_and(|r| {
        r.missing == 0
            && r.not_sent == 0
            && r.by_status.get(&200).copied().unwrap_or(0) as usize == o.sip_messages_received
    });
    let ok = o.messages_missing() == 0
        && o.pings_answered == o.pings
        && o.unexpected.is_empty()
        && sip_ok
        && o.presence_ok;
    println!();
    println!(
        "{}",
        if ok {
            "demo: OK, every message accounted for both ways, presence both ways"
        } else {
            "demo: FAILED, see above"
        }
    );
    ok
}

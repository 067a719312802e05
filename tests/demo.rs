//! README's quick-start command runs end to end: `stanza-router demo` exits 0 with every stanza
//! accounted for, both ways, and presence works both ways. With its defaults: 5,000 pings, and
//! 10,000 messages through the gateway (5,000 each way), each counted by outcome.

use std::process::Command;

#[test]
fn demo_accounts_for_every_stanza_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_stanza-router"))
        .args(["demo", "--shards", "2"])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pings sent / answered (iq result)          5000 / 5000"),
        "{stdout}"
    );
    // Every 50th MESSAGE is answered 486 by the pool: 100 of 5,000 come back as bounces.
    assert!(
        stdout.contains("messages partner → pool sent              5000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("delivered (SIP 2xx)                     4900"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bounced recipient-unavailable            100"),
        "{stdout}"
    );
    assert!(
        stdout.contains("missing (lost)                          0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("answered 200                             5000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("arrived at the partner                  5000"),
        "{stdout}"
    );
    // The router's own counters agree: every outcome counted, in = delivered + refused.
    assert!(
        stdout.contains(
            "SIP MESSAGE delivered 4900, bounced 100; from SIP: in 5000, 200 5000, refused 0"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("type='subscribed'"), "{stdout}");
    assert!(stdout.contains("NOTIFYs: pending"), "{stdout}");
    assert!(
        stdout.contains("type='result'") && stdout.contains("<recipient-unavailable"),
        "{stdout}"
    );
}

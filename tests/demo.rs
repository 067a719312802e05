//! README's quick-start command runs end to end: `stanza-router demo` exits 0 with every stanza
//! accounted for, both ways, and presence works both ways.

use std::process::Command;

#[test]
fn demo_accounts_for_every_stanza_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_stanza-router"))
        .args([
            "demo",
            "--pings",
            "300",
            "--messages",
            "300",
            "--sip-messages",
            "300",
            "--shards",
            "2",
        ])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("pings sent / answered (iq result)          300 / 300"),
        "{stdout}"
    );
    // Every 50th MESSAGE is answered 486 by the pool: 6 of 300 come back as bounces.
    assert!(
        stdout.contains("delivered (SIP 2xx)                     294"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bounced recipient-unavailable            6"),
        "{stdout}"
    );
    assert!(
        stdout.contains("missing (lost)                          0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("answered 200                             300"),
        "{stdout}"
    );
    assert!(
        stdout.contains("arrived at the partner                  300"),
        "{stdout}"
    );
    assert!(stdout.contains("type='subscribed'"), "{stdout}");
    assert!(stdout.contains("NOTIFYs: pending"), "{stdout}");
    assert!(
        stdout.contains("type='result'") && stdout.contains("<recipient-unavailable"),
        "{stdout}"
    );
}

//! README's quick-start command runs end to end: `stanza-router demo` exits 0 with every stanza
//! accounted for.

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
        stdout.contains("pings answered (iq result)    300"),
        "{stdout}"
    );
    assert!(
        stdout.contains("missing (lost)                0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("type='result'") && stdout.contains("<service-unavailable"),
        "{stdout}"
    );
}

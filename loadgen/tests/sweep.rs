//! Scenario: `loadgen sweep` for real against the debug stanza-router binary, with a 2-point
//! grid and 1 s points: messages over STARTTLS + SASL EXTERNAL to a SIP sink. The best profile
//! is written, parses as a profile, carries its figures, and no router is left running.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use loadgen::setup;
use stanza_router::config::Profile;

mod common;

use common::{free_port, free_port_run, TempDir, IP};

/// The stanza-router binary of this build: `$CARGO_TARGET_DIR/debug` or next to this test's
/// `deps/` directory (`cargo test --workspace` builds it).
fn router_bin() -> PathBuf {
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        tried.push(PathBuf::from(dir).join("debug").join("stanza-router"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            tried.push(profile_dir.join("stanza-router"));
        }
    }
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "the stanza-router binary is not built (looked at {tried:?}); run \
             `cargo build --bin stanza-router` or `cargo test --workspace`"
            )
        })
}

#[test]
fn sweep_writes_the_best_profile_with_its_figures_and_stops_every_router() {
    let router = router_bin();
    let dir = TempDir::new("sweep-test");
    let names = setup::default_partners(2);
    let ca_dir = dir.0.join("ca");
    setup::write_ca(&ca_dir, "corp.test", &names).unwrap();
    let ca = setup::read_ca_dir(&ca_dir).unwrap();
    let s2s: SocketAddr = (IP, free_port()).into();
    let sink: SocketAddr = (IP, free_port()).into();
    let base = free_port_run(2);
    let listen: Vec<SocketAddr> = (0..2).map(|i| (IP, base + i).into()).collect();
    let config = dir.0.join("router.toml");
    std::fs::write(
        &config,
        setup::router_toml(&ca, &names, s2s, &listen, 2, "1", Some(sink)),
    )
    .unwrap();
    let grid = dir.0.join("grid.toml");
    std::fs::write(&grid, "read_buffer = [\"4KiB\", \"16KiB\"]\n").unwrap();
    let out = dir.0.join("best.toml");

    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("sweep")
        .arg("--router-bin")
        .arg(&router)
        .arg("--config")
        .arg(&config)
        .arg("--ca-dir")
        .arg(&ca_dir)
        .arg("--partner-listen")
        .arg(listen[0].to_string())
        .arg("--grid")
        .arg(&grid)
        .args([
            "--point-duration",
            "1s",
            "--max-time",
            "2m",
            "--workload",
            "messages",
            "--repeat",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "sweep failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("read_buffer"),
        "table row of point 2:\n{stdout}"
    );
    // Each point ran twice, each run printed as a row of its own before the point's; point 2
    // in alternation with the base, its verdict against the base's runs next to its own.
    for run in [
        "1.1 base",
        "1.2 base",
        "2.1 #1 again",
        "2.1 read_buffer",
        "2.2 read_buffer",
        "2.2 #1 again",
    ] {
        assert!(stdout.contains(run), "row {run:?} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("vs #1 alongside, least favourable pair"),
        "{stdout}"
    );
    assert!(stdout.contains("wrote"), "{stdout}");

    let text = std::fs::read_to_string(&out).expect("the best profile is written");
    let profile = Profile::parse(&text, &out).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let rb = profile.runtime.read_buffer.expect("read_buffer set");
    assert!(rb == 4096 || rb == 16384, "one of the grid's values: {rb}");
    assert!(text.contains("# best (point "), "{text}");
    assert!(text.contains("stanzas/s"), "{text}");
    assert!(
        text.contains("# default (the config's own values, point 1): "),
        "{text}"
    );
    assert!(text.contains("lost 0"), "{text}");
    assert!(text.contains("2 run(s) per point"), "{text}");
    assert!(
        text.contains("vs #1 alongside, least favourable pair"),
        "{text}"
    );
    assert!(text.contains("CPUs, "), "machine line: {text}");
    assert!(
        text.contains("loadgen sweep") || text.contains(" sweep --router-bin"),
        "{text}"
    );

    // Every router was stopped: its S2S address is free again.
    TcpListener::bind(s2s).expect("no router left listening");

    // Never overwritten without --force.
    let again = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("sweep")
        .arg("--router-bin")
        .arg(&router)
        .arg("--config")
        .arg(&config)
        .arg("--ca-dir")
        .arg(&ca_dir)
        .arg("--partner-listen")
        .arg(listen[0].to_string())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("loadgen runs");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
}

#[test]
fn committed_sweep_profiles_parse_as_profiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("sweep-") && name.ends_with(".toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            Profile::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"));
            assert!(text.contains("# best (point "), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen > 0, "no tuning/sweep-*.toml in {}", dir.display());
}

#[test]
fn messages_without_a_sip_next_hop_are_refused_before_any_router_starts() {
    let router = router_bin();
    let dir = TempDir::new("sweep-args");
    let names = setup::default_partners(1);
    let ca_dir = dir.0.join("ca");
    setup::write_ca(&ca_dir, "corp.test", &names).unwrap();
    let ca = setup::read_ca_dir(&ca_dir).unwrap();
    let s2s: SocketAddr = (IP, free_port()).into();
    let listen: SocketAddr = (IP, free_port()).into();
    let config = dir.0.join("router.toml");
    std::fs::write(
        &config,
        setup::router_toml(&ca, &names, s2s, &[listen], 1, "1", None),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("sweep")
        .arg("--router-bin")
        .arg(&router)
        .arg("--config")
        .arg(&config)
        .arg("--ca-dir")
        .arg(&ca_dir)
        .arg("--partner-listen")
        .arg(listen.to_string())
        .arg("--out")
        .arg(dir.0.join("never.toml"))
        .output()
        .expect("loadgen runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no [sip] next_hop"), "{stderr}");
    assert!(stderr.contains("--sip-next-hop"), "{stderr}");
    assert!(!dir.0.join("never.toml").exists());
}

#[test]
fn a_router_that_does_not_start_disqualifies_its_points_and_no_file_is_written() {
    let dir = TempDir::new("sweep-fail");
    let names = setup::default_partners(1);
    let ca_dir = dir.0.join("ca");
    setup::write_ca(&ca_dir, "corp.test", &names).unwrap();
    let ca = setup::read_ca_dir(&ca_dir).unwrap();
    let s2s: SocketAddr = (IP, free_port()).into();
    let listen: SocketAddr = (IP, free_port()).into();
    let config = dir.0.join("router.toml");
    std::fs::write(
        &config,
        setup::router_toml(&ca, &names, s2s, &[listen], 1, "1", None),
    )
    .unwrap();
    let grid = dir.0.join("grid.toml");
    std::fs::write(&grid, "write_batch = [64, 16]\n").unwrap();
    let out_file = dir.0.join("never.toml");
    // `false` exits at once: every point's router "exits at start".
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("sweep")
        .args(["--router-bin", "/bin/false", "--workload", "pings"])
        .arg("--config")
        .arg(&config)
        .arg("--ca-dir")
        .arg(&ca_dir)
        .arg("--partner-listen")
        .arg(listen.to_string())
        .arg("--grid")
        .arg(&grid)
        .arg("--out")
        .arg(&out_file)
        .output()
        .expect("loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("router exited at start"), "{stdout}");
    assert!(stderr.contains("no point qualified"), "{stderr}");
    assert!(!out_file.exists());
    // The router logs are kept for the user; this test removes them.
    let kept = stderr
        .split("kept in ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the message says where the logs are");
    assert!(Path::new(kept).join("router-1.log").is_file(), "{kept}");
    std::fs::remove_dir_all(kept).unwrap();
}

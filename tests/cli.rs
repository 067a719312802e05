//! The command line: `check` exit codes and messages, `run` shutting down cleanly on SIGTERM.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stanza_router::pki::ThrowawayCa;
use support::s2s_peer::{header, Got, PeerConn};
use support::workdir::{free_port, WorkDir};

const BIN: &str = env!("CARGO_BIN_EXE_stanza-router");

fn write_config(dir: &WorkDir, ip: Ipv4Addr, extra: &str) -> (std::path::PathBuf, SocketAddr) {
    let ca = ThrowawayCa::new("cli CA").unwrap();
    let cert = ca.issue(&["corp.test"]).unwrap();
    dir.write("corp.crt", &cert.cert_pem).unwrap();
    dir.write("corp.key", &cert.key_pem).unwrap();
    dir.write("ca.pem", &ca.cert_pem()).unwrap();
    let addr = SocketAddr::new(ip.into(), free_port(ip).unwrap());
    let text = format!(
        "[server]\ndomains = [\"corp.test\"]\n[listen]\ns2s = [\"{addr}\"]\n[tls]\ncertificate = \"corp.crt\"\n\
         key = \"corp.key\"\ntrust = [\"ca.pem\"]\nsystem_roots = false\n[runtime]\nshards = 2\n\
         io_memory = \"512KiB\"\nring_depth = 64\n[[partner]]\ndomain = \"a.test\"\nproxy_fqdn = \"127.0.0.1:1\"\n{extra}"
    );
    (dir.write("router.toml", &text).unwrap(), addr)
}

#[test]
fn check_accepts_a_sound_configuration() {
    let dir = WorkDir::new("cli-check-ok").unwrap();
    let (cfg, _) = write_config(&dir, Ipv4Addr::new(127, 0, 0, 80), "");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_lists_every_problem_with_file_and_line_and_exits_2() {
    let dir = WorkDir::new("cli-check-bad").unwrap();
    let (cfg, _) = write_config(
        &dir,
        Ipv4Addr::new(127, 0, 0, 81),
        "[[partner]]\ndomain = \"b.test\"\ntls = \"not-supported\"\nsasl = \"required\"\ndialback = false\n\
         [limits]\nstanza_bytes_before_auth = 900000\n",
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("router.toml:")).collect();
    assert!(lines.len() >= 2, "every problem listed:\n{err}");
    assert!(
        err.contains("partner[1].sasl") || err.contains("partner[1]"),
        "{err}"
    );
    assert!(err.contains("stanza_bytes_before_auth"), "{err}");
}

#[test]
fn check_overlays_a_profile_and_locates_its_problems() {
    let dir = WorkDir::new("cli-check-profile").unwrap();
    let (cfg, _) = write_config(&dir, Ipv4Addr::new(127, 0, 0, 83), "");
    let good = dir
        .write(
            "good.toml",
            "[runtime]\nshards = 1\nread_buffer = \"8KiB\"\n[limits]\noutbound_queue = 10\n",
        )
        .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .arg("--profile")
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 shard(s)"),
        "the profile's shards: {stdout}"
    );

    let bad = dir
        .write(
            "bad.toml",
            "[runtime]\nshards = 1\nread_bufer = 4096\n[limits]\nconnections = 5\n",
        )
        .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .arg("--profile")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3: runtime.read_bufer: unknown key"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:5: limits.connections: unknown key"),
        "{err}"
    );
}

#[test]
fn run_closes_streams_and_exits_0_on_sigterm() {
    let dir = WorkDir::new("cli-run").unwrap();
    let (cfg, addr) = write_config(&dir, Ipv4Addr::new(127, 0, 0, 82), "");
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "router did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut peer = PeerConn::connect(addr);
    peer.send(&header("a.test", "corp.test"));
    peer.expect_header();
    peer.expect("stream:features");
    let rc = send_sigterm(child.id());
    assert_eq!(rc, 0);
    assert!(
        matches!(peer.next(), Got::Close),
        "expected </stream:stream>: {}",
        peer.transcript
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "router did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

/// Sends SIGTERM with the `kill` command (keeps the tests free of unsafe code).
fn send_sigterm(pid: u32) -> i32 {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

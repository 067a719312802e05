//! End-to-end tests of parsing, validation and the resolved policy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const MINIMAL: &str = r#"
[server]
domains = ["Corp.Test"]
[listen]
s2s = ["127.0.0.10:5269"]
[tls]
certificate = "certs/corp.test.crt"
key = "certs/corp.test.key"
"#;

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(text, Path::new("/etc/stanza/corp.toml"), false)
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// The only error, asserting there is exactly one.
fn one_error(text: &str) -> ConfigError {
    let mut errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.remove(0)
}

fn with_partner(partner: &str) -> String {
    format!("{MINIMAL}\n[[partner]]\n{partner}\n")
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn parses_the_documented_example() {
    let text = include_str!("../../examples/corp.test.toml");
    let origin = Path::new("examples/corp.test.toml");
    let cfg = Config::parse(text, origin, false).unwrap();
    assert_eq!(cfg.server.domains, ["corp.test"]);
    assert_eq!(
        cfg.listen.s2s,
        ["127.0.0.10:5269".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        cfg.listen.s2s_tls,
        ["127.0.0.10:5270".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(cfg.listen.metrics, Some("127.0.0.1:9269".parse().unwrap()));
    assert_eq!(
        cfg.tls.certificate,
        Path::new("examples/certs/corp.test.crt")
    );
    assert_eq!(cfg.tls.key, Path::new("examples/certs/corp.test.key"));
    assert_eq!(cfg.tls.trust, [PathBuf::from("examples/certs/test-ca.pem")]);
    assert!(cfg.tls.system_roots);
    assert_eq!(cfg.dialback.secret.as_deref(), Some("change-me"));
    assert_eq!(
        cfg.dns.servers,
        ["127.0.0.53:53".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(cfg.dns.timeout, Duration::from_secs(2));
    assert_eq!(cfg.federation.default, FederationDefault::Deny);
    assert_eq!(cfg.partners.len(), 2);
    let a = &cfg.partners[0];
    assert_eq!(a.domain, "a.test");
    assert_eq!(a.additional_domains, ["chat.a.test"]);
    assert_eq!(a.kind, PartnerType::Federated);
    assert_eq!(
        (a.tls, a.sasl),
        (Negotiation::Required, Negotiation::Optional)
    );
    assert_eq!(a.connection_limit, Some(20));
    assert_eq!(
        a.proxy_fqdn,
        Some(ProxyRoute::Addr("127.0.0.2:5269".parse().unwrap()))
    );
    let b = &cfg.partners[1];
    assert_eq!(
        (b.tls, b.sasl, b.dialback),
        (Negotiation::NotSupported, Negotiation::NotSupported, true)
    );
    assert_eq!(cfg.limits, LimitsConfig::default());
    assert_eq!(cfg.runtime, RuntimeConfig::default());
    assert_eq!(cfg.log.level, "info");
    assert_eq!(cfg.source, origin);
}

#[test]
fn minimal_config_takes_the_documented_defaults() {
    let cfg = parse(MINIMAL).unwrap();
    assert_eq!(cfg.server.domains, ["corp.test"], "domains are lowercased");
    assert!(cfg.listen.s2s_tls.is_empty());
    assert_eq!(cfg.listen.metrics, None);
    assert_eq!(
        cfg.tls.certificate,
        Path::new("/etc/stanza/certs/corp.test.crt")
    );
    assert!(cfg.tls.trust.is_empty());
    assert!(cfg.tls.system_roots);
    assert!(cfg.tls.domains.is_empty());
    assert_eq!(cfg.dialback.secret, None);
    assert!(cfg.dns.servers.is_empty());
    assert_eq!(cfg.dns.timeout, Duration::from_secs(2));
    assert_eq!(cfg.federation.default, FederationDefault::Deny);
    assert!(cfg.partners.is_empty());

    let l = &cfg.limits;
    assert_eq!((l.connections, l.connections_per_partner), (1000, 20));
    assert_eq!(l.stream_establishment, Duration::from_secs(60));
    assert_eq!(l.inactivity, Duration::from_secs(600));
    assert_eq!(l.keepalive_interval, Duration::from_secs(300));
    assert_eq!(l.subscription_refresh, Duration::from_secs(8 * 3600));
    assert_eq!(
        (l.stanza_bytes, l.stanza_bytes_before_auth),
        (524_288, 10_000)
    );
    assert_eq!(
        (l.max_depth, l.max_attributes, l.max_elements_per_stanza),
        (64, 64, 4096)
    );
    assert_eq!((l.read_rate_bytes_per_sec, l.outbound_queue), (0, 1000));

    let r = &cfg.runtime;
    assert_eq!(r.shards, Shards::Auto);
    assert_eq!(
        (r.io_memory, r.ring_depth, r.queue_capacity, r.batch),
        (512 * 1024, 128, 1024, 64)
    );
    assert_eq!(r.spin_before_park, Duration::ZERO, "spinning is off");
    assert_eq!(
        r.preempt_timer,
        Duration::from_millis(100),
        "glommio's default"
    );
    assert_eq!((r.read_buffer, r.write_batch), (4096, 64));
    assert!(cfg.shard_count() >= 1);
    assert_eq!(cfg.log.level, "info");
}

#[test]
fn partner_defaults_follow_lync() {
    let cfg = parse(&with_partner(r#"domain = "A.Test""#)).unwrap();
    let p = &cfg.partners[0];
    assert_eq!(p.domain, "a.test");
    assert_eq!(p.kind, PartnerType::PublicUnverified);
    assert_eq!(
        (p.tls, p.sasl),
        (Negotiation::Required, Negotiation::Required)
    );
    assert!(p.dialback && p.keepalive);
    assert_eq!(p.connection_limit, None);
    assert_eq!(p.proxy_fqdn, None);
}

#[test]
fn parses_sizes_durations_and_shard_counts() {
    let text = format!(
        "{MINIMAL}
[limits]
stanza_bytes = \"1MiB\"
stanza_bytes_before_auth = \"16KiB\"
read_rate_bytes_per_sec = \"30KiB\"
stream_establishment = \"500ms\"
inactivity = \"10m\"
subscription_refresh = \"8h\"
[runtime]
shards = 3
io_memory = \"1MiB\"
[dns]
servers = [\"127.0.0.53\", \"[::1]:5353\"]
"
    );
    let cfg = parse(&text).unwrap();
    assert_eq!(cfg.limits.stanza_bytes, 1 << 20);
    assert_eq!(cfg.limits.stanza_bytes_before_auth, 16 * 1024);
    assert_eq!(cfg.limits.read_rate_bytes_per_sec, 30 * 1024);
    assert_eq!(cfg.limits.stream_establishment, Duration::from_millis(500));
    assert_eq!(cfg.limits.inactivity, Duration::from_secs(600));
    assert_eq!(cfg.limits.subscription_refresh, Duration::from_secs(28_800));
    assert_eq!(cfg.runtime.shards, Shards::Count(3));
    assert_eq!(cfg.shard_count(), 3);
    assert_eq!(cfg.runtime.io_memory, 1 << 20);
    assert_eq!(
        cfg.dns.servers,
        [
            "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
            "[::1]:5353".parse().unwrap()
        ]
    );
}

#[test]
fn wrong_keyword_names_file_line_key_and_choices() {
    let text = with_partner("domain = \"a.test\"\ntls = \"yes\"");
    let e = one_error(&text);
    assert_eq!(e.key, "partner[0].tls");
    assert_eq!(e.line, Some(line_of(&text, "tls = \"yes\"")));
    assert_eq!(
        e.to_string(),
        format!(
            "/etc/stanza/corp.toml:{}: partner[0].tls: expected one of \"required\", \"optional\", \"not-supported\", got \"yes\"",
            e.line.unwrap()
        )
    );
}

#[test]
fn unknown_key_names_its_line_and_the_valid_keys() {
    let text = with_partner("domain = \"a.test\"\ntlss = \"required\"");
    let e = one_error(&text);
    assert_eq!(e.key, "partner[0].tlss");
    assert_eq!(e.line, Some(line_of(&text, "tlss")));
    assert_eq!(e.column, Some(1));
    assert!(
        e.message
            .starts_with("unknown key; valid keys: domain, additional_domains, type, tls, sasl"),
        "{}",
        e.message
    );

    let text = format!("{MINIMAL}\n[limit]\nconnections = 5\n");
    let e = one_error(&text);
    assert_eq!(e.key, "limit");
    assert_eq!(e.line, Some(line_of(&text, "[limit]")));
    assert!(e.message.contains("limits"), "{}", e.message);
}

#[test]
fn wrong_type_names_its_line() {
    let text = format!("{MINIMAL}\n[limits]\nconnections = \"many\"\n");
    let e = one_error(&text);
    assert_eq!(e.key, "limits.connections");
    assert_eq!(e.line, Some(line_of(&text, "\"many\"")));
    assert_eq!(
        e.message,
        r#"invalid type: string "many", expected an integer"#
    );

    let text = format!("{MINIMAL}\n[limits]\ninactivity = 600\n");
    let e = one_error(&text);
    assert_eq!(e.key, "limits.inactivity");
    assert!(e.message.contains("unit"), "{}", e.message);

    let text = MINIMAL.replace("127.0.0.10:5269", "edge.corp.test:5269");
    let e = one_error(&text);
    assert_eq!(e.key, "listen.s2s[0]");
    assert_eq!(e.line, Some(line_of(&text, "edge.corp.test")));
    assert!(e.message.contains("IP literal"), "{}", e.message);
}

#[test]
fn missing_required_keys_and_tables() {
    let e = one_error(&with_partner("tls = \"required\""));
    assert_eq!(e.key, "partner[0].domain");
    assert_eq!(e.message, "missing required key");
    assert!(e.line.is_some());

    let errs = errors("[listen]\ns2s = [\"127.0.0.1:5269\"]\n");
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["server", "tls"]);
}

#[test]
fn syntax_errors_are_located() {
    let e = one_error("[server]\ndomains = [\"corp.test\"\n[tls]\n");
    assert!(e.message.starts_with("TOML syntax"), "{}", e.message);
    assert!(!e.message.contains('\n'), "{}", e.message);
    assert!(e.line.is_some());
}

#[test]
fn structural_errors_in_several_tables_are_all_reported() {
    let text = format!(
        "{MINIMAL}\n[limits]\nconnections = true\n[runtime]\nshards = \"many\"\n[[partner]]\ndomain = \"a.test\"\nsasl = 1\n[[partner]]\ndomain = \"b.test\"\nbogus = 1\n"
    );
    let keys: Vec<String> = errors(&text).into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [
            "limits.connections",
            "runtime.shards",
            "partner[0].sasl",
            "partner[1].bogus"
        ]
    );
}

#[test]
fn collects_every_semantic_problem_in_file_order() {
    let text = r#"
[server]
domains = ["corp.test", "bad_domain"]
[listen]
[tls]
certificate = "c.pem"
key = ""
[limits]
stanza_bytes = 9000
stanza_bytes_before_auth = 20000
inactivity = "0s"
[runtime]
shards = 0
batch = 2048
[[partner]]
domain = "corp.test"
[[partner]]
domain = "a.test"
tls = "not-supported"
sasl = "required"
dialback = false
"#;
    let errs = errors(text);
    let got: Vec<(&str, usize)> = errs
        .iter()
        .map(|e| (e.key.as_str(), e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("server.domains[1]", line_of(text, "bad_domain")),
            ("listen", line_of(text, "[listen]")),
            ("tls.key", line_of(text, "key = \"\"")),
            ("limits.stanza_bytes", line_of(text, "stanza_bytes = 9000")),
            (
                "limits.stanza_bytes_before_auth",
                line_of(text, "before_auth = 20000")
            ),
            ("limits.inactivity", line_of(text, "inactivity")),
            ("runtime.shards", line_of(text, "shards = 0")),
            ("runtime.batch", line_of(text, "batch = 2048")),
            ("partner[0].domain", line_of(text, "domain = \"corp.test\"")),
            ("partner[1].sasl", line_of(text, "sasl = \"required\"")),
        ]
    );
    assert!(errs[8].message.contains("we serve it ourselves"));
    assert!(errs[9].message.contains("no way to authenticate"));
}

#[test]
fn rejects_every_invalid_lync_combination_with_its_reason() {
    let cases = [
        ("not-supported", "required", true, "SASL runs only over TLS"),
        ("not-supported", "required", false, "no way to authenticate"),
        ("not-supported", "optional", true, "SASL runs only over TLS"),
        (
            "not-supported",
            "optional",
            false,
            "SASL runs only over TLS",
        ),
        (
            "not-supported",
            "not-supported",
            false,
            "no authentication method",
        ),
        (
            "required",
            "not-supported",
            false,
            "no authentication method",
        ),
        (
            "optional",
            "not-supported",
            false,
            "no authentication method",
        ),
    ];
    for (tls, sasl, dialback, reason) in cases {
        let text = with_partner(&format!(
            "domain = \"a.test\"\ntls = \"{tls}\"\nsasl = \"{sasl}\"\ndialback = {dialback}"
        ));
        let e = one_error(&text);
        let field = if sasl == "not-supported" {
            "dialback"
        } else {
            "sasl"
        };
        assert_eq!(
            e.key,
            format!("partner[0].{field}"),
            "{tls}/{sasl}/{dialback}"
        );
        assert_eq!(e.line, Some(line_of(&text, &format!("{field} ="))));
        assert!(
            e.message.contains(reason),
            "{tls}/{sasl}/{dialback}: {}",
            e.message
        );
    }
    // Defaults (tls required) with only sasl = "not-supported" and dialback off.
    let e = one_error(&with_partner(
        "domain = \"a.test\"\nsasl = \"not-supported\"\ndialback = false",
    ));
    assert_eq!(e.key, "partner[0].dialback");
}

#[test]
fn rejects_duplicate_partner_domains_including_additional_ones() {
    let text = format!(
        "{MINIMAL}\n[[partner]]\ndomain = \"a.test\"\nadditional_domains = [\"x.a.test\", \"B.test\"]\n[[partner]]\ndomain = \"b.test\"\n[[partner]]\ndomain = \"A.TEST\"\n"
    );
    let errs = errors(&text);
    let got: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (e.key.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "partner[1].domain",
                "\"b.test\" is already listed at partner[0].additional_domains[1]"
            ),
            (
                "partner[2].domain",
                "\"a.test\" is already listed at partner[0].domain"
            ),
        ]
    );
}

#[test]
fn rejects_bad_values_across_tables() {
    let text = r#"
[server]
domains = []
[listen]
s2s = ["127.0.0.1:5269"]
s2s_tls = ["127.0.0.1:5269"]
[tls]
certificate = "c.pem"
key = "k.pem"
[[tls.domain]]
domain = "other.test"
certificate = "o.pem"
key = "o.key"
[dialback]
secret = ""
[dns]
timeout = "0ms"
[limits]
connections = 10
connections_per_partner = 11
[runtime]
ring_depth = 0
[log]
level = "info,=[["
[[partner]]
domain = "a.test"
connection_limit = 0
additional_domains = [""]
"#;
    let keys: Vec<String> = errors(text).into_iter().map(|e| e.key).collect();
    assert_eq!(
        keys,
        [
            "server.domains",
            "listen.s2s_tls[0]",
            "tls.domain[0].domain",
            "dialback.secret",
            "dns.timeout",
            "limits.connections_per_partner",
            "runtime.ring_depth",
            "log.level",
            "partner[0].connection_limit",
            "partner[0].additional_domains[0]",
        ]
    );
}

#[test]
fn checks_files_only_when_asked() {
    let dir = std::env::temp_dir().join(format!("stanza-config-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(dir.join("certs/corp.test.crt"), "placeholder").unwrap();
    let origin = dir.join("corp.toml");
    let text = format!("{MINIMAL}trust = [\"certs\"]\n");

    let errs = Config::parse(&text, &origin, true).unwrap_err().0;
    let got: Vec<(&str, usize)> = errs
        .iter()
        .map(|e| (e.key.as_str(), e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("tls.key", line_of(&text, "key =")),
            ("tls.trust[0]", line_of(&text, "trust ="))
        ]
    );
    assert!(
        errs[0].message.contains("corp.test.key"),
        "{}",
        errs[0].message
    );
    assert!(
        errs[1].message.contains("not a regular file"),
        "{}",
        errs[1].message
    );

    std::fs::write(dir.join("corp.toml"), MINIMAL).unwrap();
    std::fs::write(dir.join("certs/corp.test.key"), "placeholder").unwrap();
    let cfg = Config::load(&origin).unwrap();
    assert_eq!(cfg.tls.key, dir.join("certs/corp.test.key"));
    std::fs::remove_dir_all(&dir).unwrap();

    let e = Config::load(&origin).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn from_str_skips_file_checks() {
    let cfg: Config = MINIMAL.parse().unwrap();
    assert_eq!(cfg.source, Path::new("<string>"));
}

fn policy_config(default: &str) -> Config {
    parse(&format!(
        "{MINIMAL}
[federation]
default = \"{default}\"
[limits]
connections_per_partner = 7
[[partner]]
domain = \"a.test\"
additional_domains = [\"chat.a.test\"]
type = \"federated\"
sasl = \"optional\"
keepalive = false
connection_limit = 3
proxy_fqdn = \"edge.a.test:5299\"
[[partner]]
domain = \"b.test\"
tls = \"not-supported\"
sasl = \"not-supported\"
"
    ))
    .unwrap()
}

#[test]
fn policy_for_listed_partner() {
    let cfg = policy_config("deny");
    let p = cfg.policy_for("a.test").unwrap();
    assert_eq!(
        p,
        PartnerPolicy {
            domain: "a.test".into(),
            kind: PartnerType::Federated,
            tls: Negotiation::Required,
            sasl: Negotiation::Optional,
            dialback: true,
            keepalive: false,
            connection_limit: 3,
            proxy: Some(ProxyRoute::Host {
                host: "edge.a.test".into(),
                port: 5299
            }),
            listed: true,
        }
    );
    let b = cfg.policy_for("b.test").unwrap();
    assert_eq!(
        b.connection_limit, 7,
        "defaults to limits.connections_per_partner"
    );
    assert_eq!(
        (b.tls, b.sasl, b.dialback),
        (Negotiation::NotSupported, Negotiation::NotSupported, true)
    );
}

#[test]
fn policy_for_additional_domain_and_any_case_names_the_primary() {
    let cfg = policy_config("deny");
    assert_eq!(cfg.policy_for("chat.a.test").unwrap().domain, "a.test");
    assert_eq!(cfg.policy_for("CHAT.A.Test").unwrap().domain, "a.test");
    assert_eq!(cfg.policy_for("A.TEST").unwrap().domain, "a.test");
    assert!(cfg.serves("CORP.test"));
    assert!(!cfg.serves("a.test"));
}

#[test]
fn policy_for_unlisted_domain_under_deny_is_none() {
    let cfg = policy_config("deny");
    assert_eq!(cfg.policy_for("x.test"), None);
    assert_eq!(cfg.policy_for("test"), None, "no suffix matching");
    assert_eq!(
        cfg.policy_for("corp.test"),
        None,
        "our own domain is never a partner"
    );
    assert_eq!(cfg.policy_for(""), None);
}

#[test]
fn policy_for_unlisted_domain_under_allow_verified() {
    let cfg = policy_config("allow-verified");
    let p = cfg.policy_for("X.Test").unwrap();
    assert_eq!(
        p,
        PartnerPolicy {
            domain: "x.test".into(),
            kind: PartnerType::PublicUnverified,
            tls: Negotiation::Required,
            sasl: Negotiation::Optional,
            dialback: true,
            keepalive: true,
            connection_limit: 7,
            proxy: None,
            listed: false,
        }
    );
    assert!(cfg.policy_for("a.test").unwrap().listed);
    assert_eq!(cfg.policy_for("corp.test"), None);
}

#[test]
fn per_domain_certificates_override_the_default() {
    let text = MINIMAL.replace(
        "domains = [\"Corp.Test\"]",
        "domains = [\"Corp.Test\", \"other.test\"]",
    ) + "[[tls.domain]]\ndomain = \"Other.Test\"\ncertificate = \"/abs/o.pem\"\nkey = \"o.key\"\n";
    let cfg = parse(&text).unwrap();
    assert_eq!(
        cfg.certificate_for("other.test"),
        (Path::new("/abs/o.pem"), Path::new("/etc/stanza/o.key"))
    );
    assert_eq!(
        cfg.certificate_for("corp.test"),
        (
            Path::new("/etc/stanza/certs/corp.test.crt"),
            Path::new("/etc/stanza/certs/corp.test.key")
        )
    );
}

#[test]
fn debug_output_redacts_the_dialback_secret() {
    let cfg = parse(&format!(
        "{MINIMAL}[dialback]\nsecret = \"hunter2-secret\"\n"
    ))
    .unwrap();
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn accepts_inline_tables_and_locates_their_errors() {
    let text = r#"
server = { domains = ["corp.test"] }
listen = { s2s = ["127.0.0.10:5269"] }
tls = { certificate = "c.pem", key = "k.pem" }
partner = [{ domain = "a.test", sasl = "optional" }, { domain = "b.test" }]
"#;
    let cfg = parse(text).unwrap();
    assert_eq!(cfg.partners.len(), 2);
    assert_eq!(cfg.partners[0].sasl, Negotiation::Optional);

    let bad = text.replace("sasl = \"optional\"", "sasl = \"maybe\"");
    let e = one_error(&bad);
    assert_eq!(e.key, "partner[0].sasl");
    assert_eq!(e.line, Some(line_of(&bad, "maybe")));

    let bad = text.replace(
        "{ domain = \"b.test\" }",
        "{ domain = \"b.test\", extra = 1 }",
    );
    let e = one_error(&bad);
    assert_eq!(e.key, "partner[1].extra");
}

#[test]
fn semantic_errors_in_inline_tables_are_located() {
    let text = r#"
server = { domains = ["corp.test"] }
listen = { s2s = ["127.0.0.10:5269"] }
tls = { certificate = "c.pem", key = "k.pem" }
partner = [
  { domain = "a.test" },
  { domain = "b.test", tls = "not-supported", sasl = "optional" },
]
"#;
    let e = one_error(text);
    assert_eq!(e.key, "partner[1].sasl");
    assert_eq!(e.line, Some(line_of(text, "b.test")));
}

#[test]
fn sip_domains_map_to_xmpp_domains_by_position_and_served_domains_to_themselves() {
    let text = r#"
[server]
domains = ["corp.test", "sub.corp.test"]
[listen]
s2s = ["127.0.0.10:5269"]
[tls]
certificate = "certs/corp.test.crt"
key = "certs/corp.test.key"
[sip]
next_hop = "sip:127.0.0.1:5070;transport=tcp"
domains = ["sip.corp.test"]
"#;
    let cfg = parse(text).unwrap();
    assert_eq!(cfg.xmpp_domain_for_sip("SIP.corp.test"), Some("corp.test"));
    assert_eq!(
        cfg.xmpp_domain_for_sip("sub.corp.test"),
        Some("sub.corp.test")
    );
    assert_eq!(cfg.xmpp_domain_for_sip("partner.test"), None);
    assert_eq!(cfg.sip_domain_for_xmpp("corp.test"), "sip.corp.test");
    assert_eq!(cfg.sip_domain_for_xmpp("sub.corp.test"), "sub.corp.test");
    let plain = parse(MINIMAL).unwrap();
    assert_eq!(plain.xmpp_domain_for_sip("corp.test"), Some("corp.test"));
    assert_eq!(plain.sip_domain_for_xmpp("corp.test"), "corp.test");
}

#[test]
fn parses_the_runtime_tuning_keys() {
    let text = format!(
        "{MINIMAL}
[runtime]
spin_before_park = \"50us\"
preempt_timer = \"5ms\"
read_buffer = \"16KiB\"
write_batch = 8
"
    );
    let r = parse(&text).unwrap().runtime;
    assert_eq!(r.spin_before_park, Duration::from_micros(50));
    assert_eq!(r.preempt_timer, Duration::from_millis(5));
    assert_eq!((r.read_buffer, r.write_batch), (16 * 1024, 8));
}

#[test]
fn rejects_runtime_tuning_values_out_of_range_at_their_lines() {
    let text = format!(
        "{MINIMAL}
[runtime]
spin_before_park = \"1s\"
preempt_timer = \"0ms\"
read_buffer = 100
write_batch = 0
"
    );
    let errs = errors(&text);
    let got: Vec<(&str, usize)> = errs
        .iter()
        .map(|e| (e.key.as_str(), e.line.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "runtime.spin_before_park",
                line_of(&text, "spin_before_park")
            ),
            ("runtime.preempt_timer", line_of(&text, "preempt_timer")),
            ("runtime.read_buffer", line_of(&text, "read_buffer")),
            ("runtime.write_batch", line_of(&text, "write_batch")),
        ]
    );
    assert!(errs[0].message.contains("at most 100ms"), "{}", errs[0]);
    assert!(errs[1].message.contains("from 100us to 10s"), "{}", errs[1]);
}

#[test]
fn rejects_a_bare_number_for_spin_before_park() {
    let text = format!("{MINIMAL}\n[runtime]\nspin_before_park = 50\n");
    let e = one_error(&text);
    assert_eq!(e.key, "runtime.spin_before_park");
    assert!(e.message.contains("bare number"), "{e}");
}

#[test]
fn sip_options_interval_defaults_to_30s_allows_off_and_refuses_tiny_values() {
    assert_eq!(
        parse(MINIMAL).unwrap().sip.options_interval,
        Duration::from_secs(30)
    );
    let off =
        format!("{MINIMAL}[sip]\nnext_hop = \"sips:pool.corp.test\"\noptions_interval = \"0s\"\n");
    assert_eq!(parse(&off).unwrap().sip.options_interval, Duration::ZERO);
    let tiny = format!("{MINIMAL}[sip]\noptions_interval = \"10ms\"\n");
    let e = one_error(&tiny);
    assert_eq!(e.key, "sip.options_interval");
}

#[test]
fn sip_max_transactions_defaults_to_4096_and_refuses_zero() {
    assert_eq!(parse(MINIMAL).unwrap().sip.max_transactions, 4096);
    let small = format!("{MINIMAL}[sip]\nmax_transactions = 2\n");
    assert_eq!(parse(&small).unwrap().sip.max_transactions, 2);
    let e = one_error(&format!("{MINIMAL}[sip]\nmax_transactions = 0\n"));
    assert_eq!(e.key, "sip.max_transactions");
    assert!(e.message.contains("from 1 to"), "{e}");
}

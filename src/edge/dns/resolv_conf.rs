//! `resolv.conf` parsing (servers only). Never pointed at the real file in tests.

use std::net::{IpAddr, SocketAddr};

/// The `nameserver` addresses of a resolv.conf text, in order, on port 53. Comments (`#`,
/// `;`), other options, malformed lines and IPv6 zone suffixes (`fe80::1%eth0`, which a
/// `SocketAddr` cannot carry without a scope id) are skipped.
pub fn servers_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                return None;
            }
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers_in_order_and_skips_the_rest() {
        let text = "# generated\nsearch example.org\nnameserver 192.0.2.53\n\
                    nameserver   2001:db8::53 # v6\n;nameserver 10.0.0.1\n\
                    nameserver fe80::1%eth0\nnameserver not-an-ip\noptions ndots:2\n\
                    nameserver\n  nameserver 127.0.0.53\n";
        assert_eq!(
            servers_from_resolv_conf(text),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
                "127.0.0.53:53".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn empty_text_has_no_servers() {
        assert!(servers_from_resolv_conf("").is_empty());
    }
}

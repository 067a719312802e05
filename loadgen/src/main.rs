//! loadgen: plays federated XMPP partners and the internal SIP pool against stanza-router.
//!
//! Placeholder until issue 4 lands: it only explains itself.

fn main() {
    eprintln!("loadgen: not implemented yet (issue 4); see README.md");
    std::process::exit(2);
}

//! The `s2s_stream` bench's receive path for a fixed number of messages, for instruction
//! counting (wall clock drifts on a shared VM):
//!
//! ```text
//! cargo build --release --example stream_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/stream_instructions 100000
//! ```
//!
//! Only `receive_all` is worth reading in the profile (`--toggle-collect='*receive_all*'` limits
//! collection to it); building the message buffer is setup.

use std::time::Instant;

#[path = "../benches/common/s2s.rs"]
mod s2s;

fn main() {
    let n: usize = match std::env::args().nth(1) {
        None => 100_000,
        Some(a) => match a.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("usage: stream_instructions [MESSAGES]");
                std::process::exit(2);
            }
        },
    };
    let policy = s2s::BenchPolicy::new();
    let now = Instant::now();
    let data = s2s::messages(n);
    let mut stream = s2s::authenticated_stream(&policy, now);
    let stanzas = s2s::receive_all(&mut stream, &data, &policy, now);
    assert_eq!(stanzas, n);
    println!("{stanzas} stanzas, {} bytes", data.len());
}

//! The `--grid FILE.toml` of `loadgen sweep`: the values tried per knob.
//!
//! ```toml
//! # Knobs absent are not varied; the descent visits them in the order of `Knob::ALL`.
//! shards = [1, 2]
//! read_buffer = ["4KiB", "16KiB", "64KiB"]
//! write_batch = [16, 64, 256]
//! batch = [16, 64, 256]
//! spin_before_park = ["0s", "50us"]
//! preempt_timer = ["1ms", "100ms"]
//! ```

use std::path::Path;

use stanza_router::config::duration::parse_duration;
use stanza_router::config::size::parse_size;
use stanza_router::config::Profile;

use super::search::{Grid, Knob};

/// Reads and checks a grid file; the error names the file and the key.
pub fn load(path: &Path) -> Result<Grid, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the text of a grid file.
pub fn parse(text: &str) -> Result<Grid, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("TOML syntax: {e}"))?;
    for key in table.keys() {
        if Knob::from_key(key).is_none() {
            let valid: Vec<&str> = Knob::ALL.iter().map(|k| k.key()).collect();
            return Err(format!(
                "{key}: not a knob of the sweep; valid keys: {}",
                valid.join(", ")
            ));
        }
    }
    let mut knobs = Vec::new();
    for knob in Knob::ALL {
        let Some(v) = table.get(knob.key()) else {
            continue;
        };
        let arr = v
            .as_array()
            .ok_or_else(|| format!("{}: a list of values is expected", knob.key()))?;
        if arr.is_empty() {
            return Err(format!("{}: the list is empty", knob.key()));
        }
        let mut values = Vec::with_capacity(arr.len());
        for item in arr {
            let n = value(knob, item).map_err(|e| format!("{}: {item}: {e}", knob.key()))?;
            // The profile parser judges the range, as the router will.
            let probe = format!("[runtime]\n{} = {}\n", knob.key(), knob.toml_value(n));
            Profile::parse(&probe, Path::new("grid"))
                .map_err(|e| format!("{}: {item}: {}", knob.key(), first_message(&e)))?;
            if !values.contains(&n) {
                values.push(n);
            }
        }
        knobs.push((knob, values));
    }
    if knobs.is_empty() {
        return Err("no knob listed (shards, read_buffer, write_batch, batch, spin_before_park, preempt_timer)".into());
    }
    Ok(Grid { knobs })
}

fn first_message(e: &stanza_router::config::ConfigErrors) -> String {
    e.iter()
        .next()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| e.to_string())
}

fn value(knob: Knob, v: &toml::Value) -> Result<u64, String> {
    match knob {
        Knob::Shards | Knob::WriteBatch | Knob::Batch => v
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| "a non-negative integer is expected".to_string()),
        Knob::ReadBuffer => match v {
            toml::Value::Integer(n) => {
                u64::try_from(*n).map_err(|_| "must not be negative".to_string())
            }
            toml::Value::String(s) => parse_size(s).map_err(|e| e.to_string()),
            _ => Err("a size such as \"16KiB\" is expected".into()),
        },
        Knob::SpinBeforePark | Knob::PreemptTimer => match v {
            toml::Value::String(s) => parse_duration(s)
                .map_err(|e| e.to_string())
                .and_then(|d| u64::try_from(d.as_nanos()).map_err(|_| "too large".to_string())),
            _ => Err("a duration such as \"50us\" is expected".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_lists_knobs_in_descent_order_without_duplicates() {
        let g = parse(
            "preempt_timer = [\"1ms\", \"100ms\"]\nread_buffer = [4096, \"16KiB\", \"4KiB\"]\n",
        )
        .unwrap();
        assert_eq!(
            g.knobs,
            [
                (Knob::ReadBuffer, vec![4096, 16384]),
                (Knob::PreemptTimer, vec![1_000_000, 100_000_000]),
            ]
        );
    }

    #[test]
    fn bad_grids_are_refused_with_the_key() {
        for (text, needle) in [
            ("readbuffer = [1]", "readbuffer: not a knob"),
            ("shards = 2", "shards: a list"),
            ("shards = []", "shards: the list is empty"),
            ("shards = [0]", "shards: 0"),
            ("spin_before_park = [50]", "spin_before_park: 50"),
            ("preempt_timer = [\"1\"]", "preempt_timer"),
            ("", "no knob"),
            ("shards = [", "TOML syntax"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}

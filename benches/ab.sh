#!/usr/bin/env bash
# A/B of two router binaries under the inbound S2S → SIP MESSAGE workload at saturation.
#
# Each round runs A then B: a fresh 1-shard router pinned to CPU 0, the loadgen on CPU 1 with 4
# partner streams (STARTTLS + SASL EXTERNAL) sending 200-byte messages closed loop (window 1024)
# to users whose SIP side is the loadgen's own SIP sink. Prints per run the achieved rate, the
# router's CPU microseconds per message (utime+stime from /proc over everything it was sent, so
# start-up is included) and the outcomes. Alternating binaries in one session is what makes the
# comparison fair on a shared machine; compare medians, not single runs.
#
# Usage: benches/ab.sh ROUTER_A ROUTER_B [ROUNDS=3] [SECONDS=5]
# (build the loadgen first: cargo build --release -p loadgen). Loopback only; bounded.
set -euo pipefail
A=${1:?router binary A}; B=${2:?router binary B}; ROUNDS=${3:-3}; DUR=${4:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOADGEN=${LOADGEN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/loadgen}
[[ -x $LOADGEN ]] || { echo "ab.sh: $LOADGEN missing: cargo build --release -p loadgen" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ab.XXXXXX)
ROUTER_PID=
cleanup() {
    [[ -n $ROUTER_PID ]] && kill "$ROUTER_PID" 2>/dev/null && wait "$ROUTER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
IP=127.0.0.98
"$LOADGEN" ca --dir "$WORK/ca" --partners 4 --dns-id-only >/dev/null
"$LOADGEN" config --ca-dir "$WORK/ca" --out "$WORK/router.toml" --router-s2s $IP:5269 \
    --partner-listen $IP:16000 --connections 64 --shards 1 --sip-next-hop $IP:5070 >/dev/null

one() { # label binary
    setsid taskset -c 0 "$2" run --config "$WORK/router.toml" >"$WORK/router.log" 2>&1 &
    ROUTER_PID=$!
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/$IP/5269) 2>/dev/null && break
        sleep 0.1
    done
    timeout 120 taskset -c 1 "$LOADGEN" run --router-s2s $IP:5269 --ca-dir "$WORK/ca" \
        --partner-listen $IP:16000 --partners 4 --sip-sink $IP:5070 --workload messages \
        --body-size 200 --closed-loop --window 1024 --warmup 2s --duration "${DUR}s" >"$WORK/lg.log" 2>&1 || true
    local cpu sent rate
    cpu=$(awk '{print ($14+$15)/100}' "/proc/$ROUTER_PID/stat")
    kill "$ROUTER_PID"; wait "$ROUTER_PID" 2>/dev/null || true; ROUTER_PID=
    sent=$(grep -oP 'outcomes: sent \K[0-9]+' "$WORK/lg.log" || echo 0)
    rate=$(grep -oP 'achieved \K[0-9]+' "$WORK/lg.log" || echo 0)
    awk -v l="$1" -v r="$rate" -v c="$cpu" -v n="$sent" -v o="$(grep -oP 'delivered [0-9]+ +bounced \[[^]]*\] .*lost [0-9]+' "$WORK/lg.log")" \
        'BEGIN { printf "%s  %8d msgs/s  %6.2f CPU-us/msg  %s\n", l, r, (n > 0 ? c * 1e6 / n : 0), o }'
}
for r in $(seq "$ROUNDS"); do
    one "A#$r" "$A"
    one "B#$r" "$B"
done

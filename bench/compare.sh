#!/usr/bin/env bash
# The guard side by side with what a team would write instead, on the same broker
# (tansu) and the same generated stream:
#   - quixstreams 3.28.1 (Python stream processing, per-key state in RocksDB)
#   - a plain confluent-kafka consumer loop (Python)
# each implementing the runbook's slippage rule (3 fills > 5 bps within 10 min per
# strategy -> pause that strategy).
#
# Usage: bash bench/compare.sh [MESSAGES] [STRATEGIES]      (defaults: 200000 50)
# Prints a table: backlog-drain throughput, CPU seconds, peak RSS, trigger -> pause
# latency p50/p99 at a low open-loop rate, and whether the decisions match the guard's.
# Ratios are relative to the guard.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
STRATEGIES=${2:-50}
WORK=$(mktemp -d)
echo "== building (release)" >&2
cargo build --release --quiet -p noctria-guard -p bench
TANSU=$(bash scripts/install-tansu.sh)
VENV=target/peers-venv
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install --quiet "quixstreams==3.28.1" "confluent-kafka==2.12.1"
PY="$VENV/bin/python"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
B="127.0.0.1:$PORT"
"$TANSU" broker --listener-url "tcp://$B" --advertised-listener-url "tcp://$B" --storage-engine memory://tansu/ > "$WORK/tansu.log" 2>&1 &
TANSU_PID=$!
GUARD_PID=""
cleanup() { [ -n "$GUARD_PID" ] && kill "$GUARD_PID" 2>/dev/null; kill "$TANSU_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

TOOL=target/release/peer-tool
echo "== stream: $N fills, $STRATEGIES strategies" >&2
target/release/gen-stream "$N" "$STRATEGIES" 0.05 fills > "$WORK/stream.jsonl"
G=cmp.guard.
$TOOL create "$B" cmp.in cmp.plain.out cmp.quix.out ${G}risk_event ${G}strategy_release ${G}ops_command ${G}guard_command ${G}guard_dlq ${G}guard_state
LOADED=$($TOOL load "$B" cmp.in "$WORK/stream.jsonl")
echo "== loaded $LOADED fills into cmp.in" >&2
cat > "$WORK/policy.toml" <<'TOML'
maintenance = []
[slippage]
pause = "group"
[losing_streak]
enabled = false
TOML

cpu_of() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
rss_of() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# --- the guard: backlog drain -------------------------------------------------
HTTP_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=warn target/release/guard run --brokers "$B" --policy "$WORK/policy.toml" --state-dir "$WORK/guard-state" \
  --http-listen "127.0.0.1:$HTTP_PORT" --clock event-time \
  --topic-exec-result cmp.in --topic-risk-event ${G}risk_event --topic-strategy-release ${G}strategy_release \
  --topic-ops-command ${G}ops_command --topic-guard-command ${G}guard_command --topic-dlq ${G}guard_dlq --topic-state ${G}guard_state \
  > "$WORK/guard.log" 2>&1 &
GUARD_PID=$!
until curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" > /dev/null; do sleep 0.05; done
until curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" > /dev/null; do sleep 0.02; done
START=$(date +%s.%N)
until [ "$(curl -sf "http://127.0.0.1:$HTTP_PORT/state" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("offsets",{}).get("cmp.in/0",0))')" -ge "$LOADED" ]; do sleep 0.02; done
END=$(date +%s.%N)
GUARD_SECS=$(python3 -c "print(round($END - $START, 3))")
GUARD_CPU=$(cpu_of $GUARD_PID); GUARD_RSS=$(rss_of $GUARD_PID)
kill $GUARD_PID; wait $GUARD_PID 2>/dev/null || true; GUARD_PID=""
$TOOL trips "$B" ${G}risk_event > "$WORK/guard.triggers"

# --- the peers: backlog drain -------------------------------------------------
run_peer() { # name script out_topic
  /usr/bin/time -f "%U %S %M" -o "$WORK/$1.time" "$PY" "bench/peers/$2" "$B" cmp.in "$3" "$LOADED" > "$WORK/$1.json" 2> "$WORK/$1.err" || { echo "peer $1 failed:" >&2; tail -5 "$WORK/$1.err" >&2; }
  $TOOL trips "$B" "$3" > "$WORK/$1.triggers"
}
run_peer plain plain_consumer.py cmp.plain.out
run_peer quix quix_guard.py cmp.quix.out

# --- latency: a low open-loop rate, each contender live ---------------------------
# Low and short on purpose: tansu slows down once a partition holds a few thousand
# single-message batches (see the broker notes), which would measure tansu, not us.
LAT_RATE=100; LAT_DURATION=15s; LAT_BURST=50
$TOOL create "$B" lat.plain.in lat.quix.in lat.plain.out lat.quix.out
latency_of_peer() { # name script out startup_seconds
  "$PY" "bench/peers/$2" "$B" "lat.$1.in" "$3" 999999999 > /dev/null 2> "$WORK/$1.lat.err" &
  local pid=$!
  sleep "$4"  # quixstreams joins a consumer group: ~5 s on tansu, more on a rebalance
  target/release/guard-e2e --broker "$B" --rate $LAT_RATE --duration $LAT_DURATION --burst-every $LAT_BURST --external "lat.$1.in:$3" | tail -1 > "$WORK/$1.lat.json"
  kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
}
target/release/guard-e2e --broker "$B" --rate $LAT_RATE --duration $LAT_DURATION --burst-every $LAT_BURST | tail -1 > "$WORK/guard.lat.json"
latency_of_peer plain plain_consumer.py lat.plain.out 3
# quixstreams needs its input topic to exist with configs before it starts: created above.
latency_of_peer quix quix_guard.py lat.quix.out 20

# --- the table ---------------------------------------------------------------------
python3 - "$WORK" "$LOADED" "$GUARD_SECS" "$GUARD_CPU" "$GUARD_RSS" "$(nproc)" <<'PY'
import json, sys, datetime, os
work, n, gsecs, gcpu, grss, cores = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
def lat(name):
    try:
        j = json.loads(open(f"{work}/{name}.lat.json").read())
        return j["e2e_p50_ms"], j["e2e_p99_ms"], j["lost"]
    except Exception:
        return None, None, None
guard_triggers = sorted(open(f"{work}/guard.triggers").read().split())
rows = [("noctria-guard (Rust)", n / gsecs, gcpu, grss, *lat("guard"), "reference", len(guard_triggers))]
for name, label in [("plain", "confluent-kafka loop (Python)"), ("quix", "quixstreams 3.28.1 (Python)")]:
    try:
        res = json.loads(open(f"{work}/{name}.json").read())
        u, s, m = open(f"{work}/{name}.time").read().split()
        trig = sorted(open(f"{work}/{name}.triggers").read().split())
        same = "yes" if trig == guard_triggers else f"no ({len(set(trig) ^ set(guard_triggers))} differ)"
        rows.append((label, res["messages"] / max(res["seconds"], 1e-9), float(u) + float(s), int(m) / 1024, *lat(name), same, len(trig)))
    except Exception as e:
        rows.append((label, None, None, None, None, None, None, f"failed: {e}", 0))
g = rows[0]
print(f"\nSlippage rule on tansu, {n} fills, {datetime.date.today()} on {cores} cores (ratios relative to the guard)\n")
print("| implementation | drain throughput (×guard) | CPU s (×guard) | peak RSS MB (×guard) | trigger→pause p50 / p99 ms (×guard p99) | trips | same trips as the guard |")
print("|---|---|---|---|---|---|---|")
def r(v, ref):
    return "-" if v is None or not ref else f"{v/ref:.2f}"
for name, thr, cpu, rss, p50, p99, lost, same, pauses in rows:
    t = "-" if thr is None else f"{thr:,.0f}/s ({r(thr, g[1])})"
    c = "-" if cpu is None else f"{cpu:.1f} ({r(cpu, g[2])})"
    m = "-" if rss is None else f"{rss:.0f} ({r(rss, g[3])})"
    l = "-" if p99 is None else f"{p50:.1f} / {p99:.1f} ({r(p99, g[5])})"
    print(f"| {name} | {t} | {c} | {m} | {l} | {pauses} | {same} |")
PY

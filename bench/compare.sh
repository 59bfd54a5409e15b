#!/usr/bin/env bash
# The guard side by side with what a team would write instead, on the same broker
# (tansu) and the same generated stream:
#   - quixstreams 3.28.1 (Python stream processing, per-key state in RocksDB)
#   - a plain confluent-kafka consumer loop (Python)
# each implementing the runbook's slippage rule (3 fills > 5 bps within 10 min per
# strategy -> pause that strategy), and a ceiling: a Rust consumer with the guard's
# client settings that reads the same topic and does nothing with it.
#
# Usage: bash bench/compare.sh [FILLS] [STRATEGIES]      (defaults: 200000 50)
#
# Backlog drain: the fills are loaded into one topic first; then each contender in
# turn drains it from the beginning. Every contender is timed the same way: it runs
# under drain-timer, which stamps the contender's own `ready` line (input assigned)
# and `done N` line (N messages consumed and applied) on one clock, reads its CPU at
# both lines and its peak RSS from the kernel when it exits (bench/README.md).
# Latency: each contender live at a low open-loop rate (guard-e2e), several short runs
# on fresh topics, merged.
#
# Prints a table, then, as its last line, one JSON object:
# {"fills", "guard_msgs_per_s", "ceiling_msgs_per_s", "python_loop_msgs_per_s",
#  "quix_msgs_per_s", "guard_peak_rss_mb", "same_trips"}.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
STRATEGIES=${2:-50}
# Latency phase: LAT_RUNS runs per contender of LAT_DURATION at LAT_RATE fills/s, a
# trip every LAT_BURST fills; the first 2 s of a run are warm-up. 5 runs × 10 s ×
# 25 trips/s ≈ 1,250 trips per contender, and each run stays under ~1,500 messages
# per partition: tansu slows down past ~2,000 tiny batches in one partition
# (bench/README.md).
LAT_RUNS=${LAT_RUNS:-5}
LAT_RATE=${LAT_RATE:-100}
LAT_DURATION=${LAT_DURATION:-12s}
LAT_BURST=${LAT_BURST:-4}
WORK=$(mktemp -d)
echo "== building (release)" >&2
cargo build --release --quiet -p noctria-guard -p bench
TANSU=$(bash scripts/install-tansu.sh)

# --- the Python peers' environment: every package pinned --------------------------
VENV=target/peers-venv
REQS=bench/peers/requirements.txt
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
if ! cmp -s "$REQS" "$VENV/.installed-requirements"; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/.installed-requirements"
fi
PY="$VENV/bin/python"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
B="127.0.0.1:$PORT"
"$TANSU" broker --listener-url "tcp://$B" --advertised-listener-url "tcp://$B" --storage-engine memory://tansu/ > "$WORK/tansu.log" 2>&1 &
TANSU_PID=$!
PEER_PID=""
cleanup() {
  if [ -n "$PEER_PID" ]; then kill "$PEER_PID" 2>/dev/null || true; fi
  kill "$TANSU_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

TOOL=target/release/peer-tool
echo "== stream: $N fills, $STRATEGIES strategies" >&2
target/release/gen-stream "$N" "$STRATEGIES" 0.05 fills > "$WORK/stream.jsonl"
G=cmp.guard.
$TOOL create "$B" cmp.in cmp.plain.out cmp.quix.out ${G}risk_event ${G}strategy_release ${G}ops_command ${G}guard_command ${G}guard_dlq ${G}guard_state ${G}guard_pause_state ${G}guard_heartbeat
LOAD_START=$(date +%s.%N)
LOADED=$($TOOL load "$B" cmp.in "$WORK/stream.jsonl")
LOAD_END=$(date +%s.%N)
echo "== loaded $LOADED fills into cmp.in in $(python3 -c "print(round($LOAD_END - $LOAD_START, 1))") s" >&2
cat > "$WORK/policy.toml" <<'TOML'
maintenance = []
[slippage]
pause = "group"
[losing_streak]
enabled = false
TOML

# --- backlog drain: every contender under the same timer -------------------------------
# Generous bound: a contender that has not drained within it is killed and reported.
DRAIN_TIMEOUT=$((600 + LOADED / 2000))
drain() { # name command...
  local name=$1
  shift
  echo "== drain: $name" >&2
  target/release/drain-timer --timeout "$DRAIN_TIMEOUT" -- "$@" > "$WORK/$name.drain.json" 2> "$WORK/$name.err" || true
  echo "   $(cat "$WORK/$name.drain.json")" >&2
}
# The ceiling runs before and after the guard: the better of the two is the row.
drain ceiling1 target/release/drain-ceiling "$B" cmp.in "$LOADED"
drain guard target/release/drain-guard --brokers "$B" --policy "$WORK/policy.toml" \
  --state-dir "$WORK/guard-state" --exec-result cmp.in --topic-prefix "$G" --messages "$LOADED"
drain ceiling2 target/release/drain-ceiling "$B" cmp.in "$LOADED"
drain plain "$PY" bench/peers/plain_consumer.py "$B" cmp.in cmp.plain.out "$LOADED"
drain quix "$PY" bench/peers/quix_guard.py "$B" cmp.in cmp.quix.out "$LOADED"
$TOOL trips "$B" ${G}risk_event > "$WORK/guard.triggers"
$TOOL trips "$B" cmp.plain.out > "$WORK/plain.triggers"
$TOOL trips "$B" cmp.quix.out > "$WORK/quix.triggers"

# --- latency: a low open-loop rate, each contender live, fresh topics every run -------
# guard-e2e starts its own guard on fresh topics each run; a peer gets fresh topics and
# a fresh process each run and is measured once it says it is ready.
peer_latency() { # name script run
  local in="lat.$1.in.$3" out="lat.$1.out.$3" said="$WORK/$1.lat.$3.out"
  $TOOL create "$B" "$in" "$out"
  "$PY" "bench/peers/$2" "$B" "$in" "$out" 999999999 > "$said" 2> "$WORK/$1.lat.$3.err" &
  PEER_PID=$!
  local waited=0
  until grep -qx ready "$said" 2>/dev/null; do
    sleep 0.1
    waited=$((waited + 1))
    if [ "$waited" -ge 900 ] || ! kill -0 "$PEER_PID" 2>/dev/null; then
      echo "peer $1 did not get ready:" >&2
      tail -5 "$WORK/$1.lat.$3.err" >&2
      break
    fi
  done
  target/release/guard-e2e --broker "$B" --rate "$LAT_RATE" --duration "$LAT_DURATION" --burst-every "$LAT_BURST" \
    --external "$in:$out" --samples "$WORK/$1.lat.$3.samples" | tail -1 > "$WORK/$1.lat.$3.json" || true
  kill "$PEER_PID" 2>/dev/null || true
  wait "$PEER_PID" 2>/dev/null || true
  PEER_PID=""
}
for run in $(seq "$LAT_RUNS"); do
  echo "== latency run $run/$LAT_RUNS: $LAT_RATE fills/s for $LAT_DURATION, a trip every $LAT_BURST fills" >&2
  target/release/guard-e2e --broker "$B" --rate "$LAT_RATE" --duration "$LAT_DURATION" --burst-every "$LAT_BURST" \
    --samples "$WORK/guard.lat.$run.samples" | tail -1 > "$WORK/guard.lat.$run.json" || true
  peer_latency plain plain_consumer.py "$run"
  peer_latency quix quix_guard.py "$run"
done

# --- the table and the JSON line ---------------------------------------------------------
python3 - "$WORK" "$LOADED" "$(nproc)" "$LAT_RUNS" <<'PY'
import glob, json, math, sys, datetime

work, n, cores, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])


def drained(name):
    try:
        d = json.loads(open(f"{work}/{name}.drain.json").read())
    except Exception:
        return None
    return d if d.get("messages") == n and d.get("msgs_per_s") else None


def latency(name):
    samples, lost = [], 0
    for path in glob.glob(f"{work}/{name}.lat.*.samples"):
        samples += [int(x) for x in open(path).read().split()]
    for run in range(1, runs + 1):
        try:
            lost += json.loads(open(f"{work}/{name}.lat.{run}.json").read())["lost"]
        except Exception:
            failed_runs.setdefault(name, []).append(run)
    if not samples:
        return None
    samples.sort()
    q = lambda p: samples[min(len(samples) - 1, math.ceil(p * len(samples)) - 1)] / 1000
    return {"trips": len(samples), "p50": q(0.50), "p99": q(0.99), "lost": lost}


def rate(d):
    return None if d is None else d["msgs_per_s"]


def trips(name):
    try:
        return sorted(open(f"{work}/{name}.triggers").read().split())
    except Exception:
        return None


failed_runs = {}
ceilings = [d for d in (drained("ceiling1"), drained("ceiling2")) if d]
ceiling = max(ceilings, key=lambda d: d["msgs_per_s"]) if ceilings else None
guard_trips = trips("guard")
rows = [
    ("no-op consumer, guard's settings (ceiling)", ceiling, None, None),
    ("noctria-guard (Rust)", drained("guard"), latency("guard"), guard_trips),
    ("confluent-kafka loop (Python)", drained("plain"), latency("plain"), trips("plain")),
    ("quixstreams 3.28.1 (Python)", drained("quix"), latency("quix"), trips("quix")),
]
g = rows[1][1]


def ratio(v, ref):
    return "" if v is None or not ref else f" ({v / ref:.2f})"


print(f"\nSlippage rule on tansu, {n} fills, {datetime.date.today()} on {cores} cores; drain timed from `ready` to `done`"
      f" by drain-timer (ratios relative to the guard); latency over {runs} runs per contender\n")
print("| implementation | drain msgs/s (×guard) | drain s | CPU s in drain | peak RSS MB | trigger→pause p50 / p99 ms (trips, lost) | trips | same trips as the guard |")
print("|---|---|---|---|---|---|---|---|")
for label, d, lat, trip_list in rows:
    thr = "failed" if d is None else f"{d['msgs_per_s']:,.0f}{ratio(d['msgs_per_s'], g and g['msgs_per_s'])}"
    secs = "-" if d is None else f"{d['seconds']:.2f}"
    cpu = "-" if d is None or d.get("cpu_s") is None else f"{d['cpu_s']:.1f}"
    rss = "-" if d is None or d.get("peak_rss_mb") is None else f"{d['peak_rss_mb']:.0f}"
    lt = "-" if lat is None else f"{lat['p50']:.1f} / {lat['p99']:.1f} ({lat['trips']}, lost {lat['lost']})"
    if trip_list is None:
        same, count = "-", "-"
    elif label.startswith("noctria"):
        same, count = "reference", len(trip_list)
    else:
        same = "yes" if trip_list == guard_trips else f"no ({len(set(trip_list) ^ set(guard_trips or []))} differ)"
        count = len(trip_list)
    print(f"| {label} | {thr} | {secs} | {cpu} | {rss} | {lt} | {count} | {same} |")
before, after = drained("ceiling1"), drained("ceiling2")
print(f"\nceiling before / after the guard: {rate(before)} / {rate(after)} msgs/s")
for name, bad in failed_runs.items():
    print(f"latency runs without a result for {name}: {bad}")

same = bool(guard_trips) and all(trips(p) == guard_trips for p in ("plain", "quix"))
print(json.dumps({
    "fills": n,
    "guard_msgs_per_s": rate(g),
    "ceiling_msgs_per_s": rate(ceiling),
    "python_loop_msgs_per_s": rate(rows[2][1]),
    "quix_msgs_per_s": rate(rows[3][1]),
    "guard_peak_rss_mb": None if g is None else g.get("peak_rss_mb"),
    "same_trips": same,
}))
PY

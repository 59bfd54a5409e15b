#!/usr/bin/env bash
# The runbook's toggle, over `guard pause` / `guard reduce-only` / `guard resume`.
#
#   ops/toggle_trading_pause.sh --env prod|stg|dev --on|--reduce-only|--off [--scope global|strategy:ID] [--reason TEXT]
#
# --on pauses, --reduce-only lets the scope only reduce positions, --off resumes.
# Brokers come from GUARD_BROKERS_<ENV> (e.g. GUARD_BROKERS_PROD) or GUARD_BROKERS;
# the operator is $GUARD_OPERATOR or $USER.
# The guard binary is $GUARD_BIN, else `guard` on PATH, else target/release/guard.
# Exit codes: those of `guard` (0 done, 1 failed); 2 for bad usage.
set -euo pipefail

# The comment block above, without its markers: the help stops at the first line
# that is not a comment, so code never leaks into it.
usage() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}
# Bad usage: the problem, the help on stderr, exit 2.
fail() {
  echo "toggle_trading_pause: $1" >&2
  usage >&2
  exit 2
}
# The value of flag $1, which must be there and must not be another flag.
value_of() {
  if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
    fail "$1 needs a value"
  fi
}

env_name=""; action=""; scope="global"; reason=""
while [ $# -gt 0 ]; do
  case "$1" in
    --env) value_of "$@"; env_name="$2"; shift 2 ;;
    --on) action="pause"; shift ;;
    --reduce-only) action="reduce-only"; shift ;;
    --off) action="resume"; shift ;;
    --scope) value_of "$@"; scope="$2"; shift 2 ;;
    --reason) value_of "$@"; reason="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument $1" ;;
  esac
done
case "$env_name" in
  prod|stg|dev) ;;
  *) echo "toggle_trading_pause: --env must be prod, stg or dev" >&2; exit 2 ;;
esac
[ -n "$action" ] || { echo "toggle_trading_pause: say --on (pause), --reduce-only or --off (resume)" >&2; exit 2; }
var="GUARD_BROKERS_$(echo "$env_name" | tr '[:lower:]' '[:upper:]')"
brokers="${!var:-${GUARD_BROKERS:-}}"
[ -n "$brokers" ] || { echo "toggle_trading_pause: set $var (or GUARD_BROKERS)" >&2; exit 2; }
bin="${GUARD_BIN:-$(command -v guard || echo "$(dirname "$0")/../target/release/guard")}"
operator="${GUARD_OPERATOR:-${USER:-}}"
case "$operator" in
  ""|unknown) echo "toggle_trading_pause: say who you are: set GUARD_OPERATOR (or USER)" >&2; exit 2 ;;
esac
case "$action" in
  pause) flag="on" ;;
  resume) flag="off" ;;
  *) flag="$action" ;;
esac
exec "$bin" "$action" --brokers "$brokers" --scope "$scope" --operator "$operator" \
  --reason "${reason:-toggle_trading_pause --env $env_name --$flag}"

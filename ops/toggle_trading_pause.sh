#!/usr/bin/env bash
# The runbook's toggle, over `guard pause` / `guard reduce-only` / `guard resume`.
#
#   ops/toggle_trading_pause.sh --env prod|stg|dev --on|--reduce-only|--off [--scope global|strategy:ID] [--reason TEXT]
#
# --on pauses, --reduce-only lets the scope only reduce positions, --off resumes.
# Brokers come from GUARD_BROKERS_<ENV> (e.g. GUARD_BROKERS_PROD) or GUARD_BROKERS;
# the operator is $GUARD_OPERATOR or $USER.
# The guard binary is $GUARD_BIN, else `guard` on PATH, else target/release/guard.
set -euo pipefail
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
env_name=""; action=""; scope="global"; reason=""
while [ $# -gt 0 ]; do
  case "$1" in
    --env) env_name="${2:-}"; shift 2 ;;
    --on) action="pause"; shift ;;
    --reduce-only) action="reduce-only"; shift ;;
    --off) action="resume"; shift ;;
    --scope) scope="${2:-}"; shift 2 ;;
    --reason) reason="${2:-}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "toggle_trading_pause: unknown argument $1" >&2; usage ;;
  esac
done
case "$env_name" in prod|stg|dev) ;; *) echo "toggle_trading_pause: --env must be prod, stg or dev" >&2; exit 2 ;; esac
[ -n "$action" ] || { echo "toggle_trading_pause: say --on (pause), --reduce-only or --off (resume)" >&2; exit 2; }
var="GUARD_BROKERS_$(echo "$env_name" | tr '[:lower:]' '[:upper:]')"
brokers="${!var:-${GUARD_BROKERS:-}}"
[ -n "$brokers" ] || { echo "toggle_trading_pause: set $var (or GUARD_BROKERS)" >&2; exit 2; }
bin="${GUARD_BIN:-$(command -v guard || echo "$(dirname "$0")/../target/release/guard")}"
operator="${GUARD_OPERATOR:-${USER:-unknown}}"
exec "$bin" "$action" --brokers "$brokers" --scope "$scope" --operator "$operator" \
  --reason "${reason:-toggle_trading_pause --env $env_name --$(case "$action" in pause) echo on ;; resume) echo off ;; *) echo "$action" ;; esac)}"

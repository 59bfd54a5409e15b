#!/usr/bin/env bash
# The runbook calls the toggle as ./ops/tools/toggle_trading_pause.sh: the same
# script as ops/toggle_trading_pause.sh, which see (--help).
set -euo pipefail
exec "$(dirname "$0")/../toggle_trading_pause.sh" "$@"

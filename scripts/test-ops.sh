#!/usr/bin/env bash
# The operations files, from a fresh clone: the Prometheus alert rules and their unit
# tests, the scrape config, the Grafana dashboard's queries, the Alertmanager routing,
# the systemd unit (where systemd-analyze is installed), every shell script of the
# repository under shellcheck, and the runbook's toggle script's usage errors.
# Installs promtool, amtool and shellcheck (Debian packages) when they are missing;
# prints one summary line at the end. Exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- tools ---------------------------------------------------------------------------
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-ops: ${missing[*]} missing; run as root or install them (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Only the tools are wanted: keep the packages' daemons from starting.
  rc=/usr/sbin/policy-rc.d
  own_rc=no
  if [ ! -e "$rc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$rc" && chmod +x "$rc" && own_rc=yes
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_rc" = yes ]; then rm -f "$rc"; fi
fi
echo "== $(promtool --version 2>&1 | head -1)"
echo "== $(amtool --version 2>&1 | head -1)"
echo "== shellcheck $(shellcheck --version | sed -n 's/^version: //p')"

passed=0
step() {
  echo "== $*"
  "$@"
  passed=$((passed + 1))
}

# --- Prometheus ----------------------------------------------------------------------
step promtool check rules deploy/prometheus/alerts.yml
step promtool test rules deploy/prometheus/alerts.test.yml
# The scrape config names its rule file relative to itself, as it is mounted.
step promtool check config deploy/prometheus/prometheus.yml
# Every query of the Grafana dashboard is valid PromQL: each becomes a recording rule
# (Grafana's $__rate_interval as 5m) in a rule file promtool checks. JSON is YAML.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - deploy/grafana/dashboards/guard.json >"$work/dashboard.rules.yml" <<'PY'
import json, sys
def exprs(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == "expr" and isinstance(x, str):
                yield x
            else:
                yield from exprs(x)
    elif isinstance(v, list):
        for x in v:
            yield from exprs(x)
queries = list(exprs(json.load(open(sys.argv[1]))))
assert queries, "the dashboard has no queries"
rules = [{"record": f"dashboard:query_{i}", "expr": q.replace("$__rate_interval", "5m")}
         for i, q in enumerate(queries)]
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, sys.stdout)
PY
step promtool check rules "$work/dashboard.rules.yml"

# --- Alertmanager --------------------------------------------------------------------
am=deploy/alertmanager/alertmanager.yml
step amtool check-config "$am"
# The escalation chain: each alert reaches the receivers the runbook names.
route() {
  local want="$1"; shift
  echo "== route $* -> $want"
  amtool config routes test --config.file="$am" --verify.receivers="$want" "$@" >/dev/null 2>&1 \
    || { echo "test-ops: $* is routed to $(amtool config routes test --config.file="$am" "$@" 2>/dev/null), not $want" >&2; exit 1; }
  passed=$((passed + 1))
}
route ops-oncall alertname=GuardDown severity=critical job=guard
route ops-oncall alertname=GuardNoReadyInstance severity=critical job=guard
route ops-oncall alertname=GuardCannotPersistState severity=critical job=guard
route ops-oncall alertname=GatewayFailingClosed severity=critical job=gateway
route risk-duty,ops-oncall alertname=GuardCommandUnacknowledged severity=critical job=guard
route risk-duty,default alertname=GuardScopeHeldLong severity=warning job=guard
route default alertname=GuardConsumerLag severity=warning job=guard
route default alertname=GuardDeadLetters severity=warning job=guard
route default alertname=GuardCheckpointFailures severity=warning job=guard
route default alertname=GuardDeliveryFailures severity=warning job=guard
route default alertname=SomethingElse

# --- systemd -------------------------------------------------------------------------
# `systemd-analyze verify` in a scratch root holding the unit, the system's own units
# and stand-ins for the guard binary and kill (it checks that ExecStart and
# ExecReload exist). Its warnings
# ("Unknown key …, ignoring") do not change its exit code: any output fails.
systemd_checked="skipped (no systemd-analyze)"
if command -v systemd-analyze >/dev/null 2>&1 && [ -d /usr/lib/systemd/system ]; then
  sysroot="$work/root"
  mkdir -p "$sysroot/etc/systemd/system" "$sysroot/usr/lib/systemd" "$sysroot/usr/local/bin"
  cp -r /usr/lib/systemd/system "$sysroot/usr/lib/systemd/"
  mkdir -p "$sysroot/bin"
  for stand_in in usr/local/bin/guard bin/kill; do
    printf '#!/bin/sh\n' >"$sysroot/$stand_in"
    chmod +x "$sysroot/$stand_in"
  done
  cp deploy/systemd/noctria-guard.service "$sysroot/etc/systemd/system/"
  echo "== systemd-analyze verify deploy/systemd/noctria-guard.service"
  said="$(systemd-analyze verify --root="$sysroot" noctria-guard.service 2>&1)" \
    || { echo "$said" >&2; exit 1; }
  [ -z "$said" ] || { echo "test-ops: systemd-analyze verify: $said" >&2; exit 1; }
  passed=$((passed + 1))
  exposure="$(systemd-analyze security --offline=yes --root="$sysroot" noctria-guard.service 2>/dev/null \
    | sed -n 's/^→ Overall exposure level for noctria-guard.service: \([0-9.]* [A-Z]*\).*/\1/p')" || true
  systemd_checked="verified${exposure:+, exposure $exposure}"
  echo "== systemd unit $systemd_checked"
fi

# --- shell scripts -------------------------------------------------------------------
mapfile -t scripts < <(find . -name '*.sh' -not -path '*/target/*' -not -path './.git/*' | sort)
step shellcheck "${scripts[@]}"

# --- the toggle's usage --------------------------------------------------------------
# Runs the toggle with $2…; wants exit code $1 and, for errors, a message on stderr.
toggle() {
  local want="$1"; shift
  local out err code=0
  out="$(mktemp)"; err="$(mktemp)"
  ./ops/tools/toggle_trading_pause.sh "$@" >"$out" 2>"$err" || code=$?
  echo "== toggle $* -> exit $code"
  if [ "$code" -ne "$want" ]; then
    echo "test-ops: toggle $* exited $code, not $want" >&2; cat "$err" >&2; exit 1
  fi
  if [ "$want" -eq 0 ]; then
    grep -q -- '--env prod|stg|dev' "$out" || { echo "test-ops: toggle $* printed no usage" >&2; exit 1; }
    if grep -qE '^(set |usage|while |case )' "$out"; then
      echo "test-ops: toggle $* printed code:" >&2; cat "$out" >&2; exit 1
    fi
  else
    head -1 "$err" | grep -q '^toggle_trading_pause: ' || { echo "test-ops: toggle $* said nothing" >&2; exit 1; }
  fi
  rm -f "$out" "$err"
  passed=$((passed + 1))
}
toggle 0 --help
toggle 0 -h
toggle 2 --env
toggle 2 --env prod --on --scope
toggle 2 --env --on
toggle 2 --env prod --on --reason
toggle 2 --bogus
# Nobody named: an order must say who gives it.
GUARD_OPERATOR=unknown GUARD_BROKERS=127.0.0.1:1 toggle 2 --env prod --on
GUARD_OPERATOR="" USER="" GUARD_BROKERS=127.0.0.1:1 toggle 2 --env prod --on

echo "== ops checks passed: $passed (alert rules and their tests, scrape config, dashboard queries, alertmanager routes, ${#scripts[@]} shell scripts, toggle usage; systemd unit $systemd_checked)"

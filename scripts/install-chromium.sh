#!/usr/bin/env bash
# Installs Chromium (Debian's `chromium` package) for the test that renders the
# `guard replay --html` page headless, and a font when the machine has none (text
# would render as empty boxes). Prints the browser's path on stdout; apt's output
# goes to stderr. Idempotent: a browser already installed is reused.
set -euo pipefail

browser() {
  command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

has_font() {
  find /usr/share/fonts /usr/local/share/fonts -type f \
    \( -name '*.ttf' -o -name '*.otf' -o -name '*.ttc' \) -print -quit 2>/dev/null | grep -q .
}

wanted=()
[ -n "$(browser)" ] || wanted+=(chromium)
has_font || wanted+=(fonts-dejavu-core)
if [ ${#wanted[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: ${wanted[*]} missing; run as root or install them (apt-get install ${wanted[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # A machine that never read the package lists does not know the package yet.
  if ! apt-cache show "${wanted[@]}" >/dev/null 2>&1; then
    echo "== apt-get update" >&2
    apt-get update -qq >&2
  fi
  echo "== installing ${wanted[*]}" >&2
  # Stale lists name files the mirror no longer has: read them again and retry once.
  apt-get install -y -qq --no-install-recommends "${wanted[@]}" >&2 || {
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${wanted[@]}" >&2
  }
fi
bin="$(browser)"
if [ -z "$bin" ]; then
  echo "install-chromium: chromium is installed but not on PATH" >&2
  exit 1
fi
echo "$bin"

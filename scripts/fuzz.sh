#!/usr/bin/env bash
# Fuzzes the message decoders and the policy reader with libFuzzer (cargo fuzz), each
# for FUZZ_SECONDS (default 60), starting from the seed corpus in fuzz/corpus/ (a
# copy: the repository's corpus is not rewritten). A crash fails the run and leaves
# its input under fuzz/artifacts/.
#
# cargo fuzz wants nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them, and --sanitizer none avoids needing a sanitizer runtime. Panics and aborts
# are still caught.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
if ! cargo fuzz --version > /dev/null 2>&1; then
  cargo install --locked --quiet cargo-fuzz@0.13.2
fi
for target in decode policy; do
  work="target/fuzz-corpus/$target"
  rm -rf "$work" && mkdir -p "$work" && cp fuzz/corpus/$target/* "$work/"
  echo "== fuzz $target for ${SECONDS_EACH}s"
  log="target/fuzz-$target.log"
  status=0
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "../$work" -- \
      -max_total_time="$SECONDS_EACH" -max_len=8192 -print_final_stats=1) > "$log" 2>&1 || status=$?
  grep -E "^(Done|INFO: seed corpus)|panicked|SUMMARY" "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz $target failed (exit $status); the last lines of $log:"; tail -20 "$log"
    exit 1
  fi
done
if compgen -G "fuzz/artifacts/*/*" > /dev/null; then
  echo "fuzzing found crashing inputs:"; ls fuzz/artifacts/*/
  exit 1
fi
echo "== fuzzing found nothing"

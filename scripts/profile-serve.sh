#!/usr/bin/env bash
# Profile the injector under the load generator: pass this script as loadgen's --server-bin.
# It runs `proxy-injector` (release build) as itself; for `serve` it first starts
# `perf record` on its own pid, which exec then makes the injector's. perf stops when the
# injector exits (loadgen kills it after each run) or after PROFILE_SECONDS (default 60),
# and leaves target/profile/serve.<pid>.perf. Example (BENCHMARKS.md, "What stops it"):
#   cargo build --release --workspace --bins
#   target/release/loadgen --server-bin scripts/profile-serve.sh --corpus 10kb --rate 0 --requests 60000
#   perf report -i target/profile/serve.<pid>.perf --no-children --sort dso,symbol -g none
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/target/release/proxy-injector"
if [[ "${1:-}" == serve ]]; then
  command -v perf >/dev/null || { echo "profile-serve.sh: perf is not installed (Debian: linux-perf)" >&2; exit 1; }
  mkdir -p "$repo/target/profile"
  out="$repo/target/profile/serve.$$.perf"
  echo "profile-serve.sh: recording the injector (pid $$) into $out" >&2
  perf record -F 1999 -g -p $$ -o "$out" -- sleep "${PROFILE_SECONDS:-60}" >/dev/null 2>&1 &
  sleep 0.2
fi
exec "$bin" "$@"

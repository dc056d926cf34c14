#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kubectl from their Go modules and
# caches them under $HOME/.cache/proxy-injector/controlplane/<k8s>-<etcd>/bin.
# Prints the bin directory on its last line. A cached build returns at once.
set -euo pipefail
cd "$(dirname "$0")"
source ./versions.env
cache="${PROXY_INJECTOR_CACHE:-$HOME/.cache/proxy-injector}/controlplane/${K8S_VERSION}-etcd${ETCD_VERSION}"
bin="$cache/bin"
want=(etcd kube-apiserver kube-controller-manager kubectl)
ok=1
for b in "${want[@]}"; do [[ -x "$bin/$b" ]] || ok=0; done
if [[ $ok == 1 ]]; then
  echo "control plane binaries cached in $bin" >&2
  echo "$bin"
  exit 0
fi
echo "building the control plane (kubernetes ${K8S_VERSION}, etcd ${ETCD_VERSION}) into $bin" >&2
echo "the first build takes a while (about 6-10 min on 2 cores, measured 6m18s); progress follows" >&2
mkdir -p "$cache"
tmp="$cache/bin.partial"
rm -rf "$tmp"; mkdir -p "$tmp"
start=$(date +%s)
echo "  fetching Go modules if needed (first time: a few hundred MB, 1-2 min)..." >&2
go mod download
echo "  modules ready ($(( $(date +%s) - start ))s); compiling" >&2
# -v prints each package as it is compiled; show a count every 100 so the terminal is never silent.
go build -trimpath -v -o "$tmp/" ./cmd/... 2>&1 | awk -v start="$start" '
  /^#|\.go:[0-9]+:/ { print > "/dev/stderr"; next }
  { n++; if (n % 100 == 0) { printf("  ... %d packages compiled (%ds)\n", n, systime()-start) > "/dev/stderr" } }
  END { printf("  ... %d packages compiled\n", n) > "/dev/stderr" }'
for b in "${want[@]}"; do
  [[ -x "$tmp/$b" ]] || { echo "build failed: $b missing" >&2; exit 1; }
done
rm -rf "$bin"; mv "$tmp" "$bin"
echo "control plane built in $(( $(date +%s) - start ))s: $bin" >&2
echo "$bin"

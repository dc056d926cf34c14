#!/usr/bin/env bash
# The container image, with podman (vfs storage: no overlay mounts, no daemon, no registry).
#   scripts/image.sh build   static binary (scripts/static-build.sh), then the image
#                            proxy-injector:0.1.0 from the Dockerfile (make image)
#   scripts/image.sh check   build, then prove the image (make image-check, part of make test):
#                            its metadata (user, entrypoint), its filesystem (the binary only),
#                            and the binary run from that filesystem under chroot as uid 65532:
#                            --version, certs, and serve answering /readyz and an injection over
#                            TLS (curl from outside; --namespaces, so no cluster is needed).
# Running the container itself needs rlimit and namespace changes this CI refuses; chroot runs
# the same files. Without podman (or root, for chroot) the check prints "skipped: ..." and exits
# 0; IMAGE_CHECK=required makes that an error. With $CI_SUMMARY set, a skip is recorded there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-check}"
image="localhost/proxy-injector:0.1.0"
podman=(podman --storage-driver vfs)
say() { echo "image: $*"; }
skip() {
  say "skipped: $*"
  if [[ -n "${CI_SUMMARY:-}" ]]; then
    printf '%-8s %s\n' "skipped" "image check: $*" >>"$CI_SUMMARY"
  fi
  if [[ "${IMAGE_CHECK:-}" == "required" ]]; then exit 1; fi
  exit 0
}
started=$SECONDS

case "$mode" in
  build | check) ;;
  *) echo "usage: $0 build|check" >&2; exit 2 ;;
esac
if ! command -v podman >/dev/null; then
  [[ "$mode" == build ]] && { say "podman is not installed: apt-get install podman" >&2; exit 1; }
  skip "podman is not installed (apt-get install podman; .ci/run installs it)"
fi
if [[ "$mode" == check ]]; then
  [[ "$(id -u)" == 0 ]] || skip "running the image's files under chroot needs root"
  for tool in curl chroot tar; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
  done
fi

say "1. static binary"
"$repo/scripts/static-build.sh"

say "2. podman build -t $image (FROM scratch, context: the static binary only)"
"${podman[@]}" rmi -f "$image" >/dev/null 2>&1 || true
"${podman[@]}" build --quiet -t "$image" -f "$repo/Dockerfile" "$repo" >/dev/null
say "built $image ($("${podman[@]}" image inspect --format '{{.Size}}' "$image") bytes)"
[[ "$mode" == build ]] && exit 0

fail() { say "FAILED: $*" >&2; exit 1; }
work="$(mktemp -d)"
serve_pid=""
cleanup() {
  [[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null || true
  [[ -n "${cid:-}" ]] && "${podman[@]}" rm -f "$cid" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

say "3. image metadata and filesystem"
user="$("${podman[@]}" image inspect --format '{{.Config.User}}' "$image")"
entry="$("${podman[@]}" image inspect --format '{{json .Config.Entrypoint}}' "$image")"
[[ "$user" == "65532:65532" ]] || fail "image user is '$user', expected 65532:65532"
[[ "$entry" == '["/proxy-injector"]' ]] || fail "image entrypoint is $entry"
cid="$("${podman[@]}" create "$image")"
root="$work/rootfs"
mkdir -p "$root"
"${podman[@]}" export "$cid" | tar -C "$root" -xf -
"${podman[@]}" rm "$cid" >/dev/null
cid=""
# podman adds empty mount points (dev, proc, sys, etc, run) to a created container; the files
# the image carries are the binary only.
files="$(cd "$root" && find . -type f | sort | tr '\n' ' ')"
[[ "$files" == "./proxy-injector " ]] || fail "the image holds more than the binary: $files"
say "user $user, entrypoint $entry, files: $files"

say "4. the image's binary under chroot, as uid 65532"
as_nonroot=(chroot --userspec=65532:65532 "$root")
version="$("${as_nonroot[@]}" /proxy-injector --version)"
say "--version: $version"
mkdir -p "$root/work"
chown 65532:65532 "$root/work"
"${as_nonroot[@]}" /proxy-injector certs --out /work/certs --dns localhost --ip 127.0.0.1 >/dev/null
[[ -s "$root/work/certs/tls.crt" && -s "$root/work/certs/ca.crt" ]] || fail "certs wrote no tls.crt/ca.crt"
say "certs: $(ls "$root/work/certs" | tr '\n' ' ')"
cat >"$root/work/namespaces.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  annotations:
    linkerd.io/inject: enabled
EOF
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${as_nonroot[@]}" /proxy-injector serve --listen "127.0.0.1:$port" \
  --tls-cert /work/certs/tls.crt --tls-key /work/certs/tls.key --namespaces /work/namespaces.yaml \
  --shutdown-delay-seconds 0 --drain-seconds 1 >"$work/serve.log" 2>&1 &
serve_pid=$!
https=(curl -sS --fail --max-time 5 --cacert "$root/work/certs/ca.crt")
ready=""
for _ in $(seq 1 100); do
  if ready="$("${https[@]}" "https://localhost:$port/readyz" 2>/dev/null)"; then break; fi
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; fail "serve exited"; }
  sleep 0.1
done
[[ "$ready" == ok* ]] || { cat "$work/serve.log" >&2; fail "no ok from /readyz within 10s"; }
say "serve: GET /readyz over TLS: $ready"
review='{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"image-check","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"shop","operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"shop"},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}'
answer="$("${https[@]}" -H 'Content-Type: application/json' --data "$review" "https://localhost:$port/inject")"
[[ "$answer" == *'"uid":"image-check"'* && "$answer" == *'"patch":'* ]] || fail "POST /inject: no patch in $answer"
say "serve: POST /inject over TLS: injected (an answer of ${#answer} bytes with a patch)"
kill -TERM "$serve_pid"
status=0
wait "$serve_pid" || status=$?
serve_pid=""
[[ "$status" == 0 ]] || { cat "$work/serve.log" >&2; fail "serve exited $status after SIGTERM"; }
say "serve: clean exit on SIGTERM"
say "image proven in $((SECONDS - started))s"

#!/usr/bin/env bash
# Regenerates go.mod/go.sum for the control-plane module from versions.env.
# k8s.io/kubernetes points its staging modules at ./staging/... (v0.0.0); a module that
# requires it must replace each of them with its published v0.X.Y. The list comes from
# k8s.io/kubernetes's own go.mod, so a version bump is one edit in versions.env.
set -euo pipefail
cd "$(dirname "$0")"
source ./versions.env
staging="v0.${K8S_VERSION#v1.}"
echo "control plane module: kubernetes ${K8S_VERSION} (staging ${staging}), etcd ${ETCD_VERSION}"
modfile="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
gover="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$modfile")"
{
  echo "module proxy-injector/controlplane"
  echo
  echo "go ${gover}"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes ${K8S_VERSION}"
  echo "	go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
  echo ")"
  echo
  echo "replace ("
  sed -n '/^replace (/,/^)/p' "$modfile" | sed -n 's#^\s*\(k8s.io/[A-Za-z0-9_.-]*\) => ./staging/.*#\t\1 => \1 '"${staging}"'#p'
  echo ")"
} > go.mod
rm -f go.sum
echo "resolving modules (go mod tidy; the first time downloads a few hundred MB)..."
go mod tidy
echo "go.mod regenerated"

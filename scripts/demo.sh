#!/usr/bin/env bash
# The main job, on one machine: local control plane up, injector serving, webhook registered,
# a namespace annotated, a Deployment created, and its pod shown injected.
#   scripts/demo.sh        run the demo (leaves everything running)
#   scripts/demo.sh down   stop the injector and the control plane
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
state="$repo/.local"
cluster="$repo/tests/controlplane/cluster.sh"
port="${DEMO_PORT:-18443}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_injector() {
  if [[ -f "$state/injector.pid" ]]; then
    local pid; pid="$(cat "$state/injector.pid")"
    kill "$pid" 2>/dev/null || true
    # SIGTERM: it keeps serving for its shutdown delay, then drains; wait until it is gone
    # (and its port free).
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    rm -f "$state/injector.pid"
  fi
}

if [[ "${1:-}" == "down" ]]; then
  stop_injector
  "$cluster" down
  exit 0
fi

say "building proxy-injector"
cargo build --quiet --bin proxy-injector
injector="$repo/target/debug/proxy-injector"

say "starting the local control plane (etcd, kube-apiserver, kube-controller-manager)"
"$cluster" up
bin="$("$repo/tests/controlplane/build.sh" 2>/dev/null | tail -n 1)"
export KUBECONFIG="$state/kubeconfig"
kubectl() { "$bin/kubectl" "$@"; }
# Waits (30 s at most) until namespace $1 has a pod with labels $2.
wait_for_pods() {
  for _ in $(seq 1 150); do
    [[ -n "$(kubectl -n "$1" get pods -l "$2" -o name 2>/dev/null)" ]] && return 0
    sleep 0.2
  done
}

say "making the webhook's certificates (proxy-injector certs)"
"$injector" certs --out "$state/certs" --dns localhost --ip 127.0.0.1

say "starting proxy-injector serve on https://127.0.0.1:${port}"
stop_injector
"$injector" serve --listen "127.0.0.1:${port}" --tls-cert "$state/certs/tls.crt" --tls-key "$state/certs/tls.key" \
  > "$state/injector.log" 2>&1 &
echo $! > "$state/injector.pid"
for _ in $(seq 1 100); do
  curl -sf --cacert "$state/certs/ca.crt" "https://127.0.0.1:${port}/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf --cacert "$state/certs/ca.crt" "https://127.0.0.1:${port}/readyz" >/dev/null \
  || { echo "the injector did not become ready; its log:"; cat "$state/injector.log"; exit 1; }

say "registering the MutatingWebhookConfiguration"
kubectl apply -f - <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: proxy-injector-demo
webhooks:
- name: inject.proxy-injector.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 10
  reinvocationPolicy: Never
  clientConfig:
    url: https://127.0.0.1:${port}/inject
    caBundle: $(base64 -w0 "$state/certs/ca.crt")
  namespaceSelector:
    matchExpressions:
    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}
    - {key: config.linkerd.io/admission-webhooks, operator: NotIn, values: [disabled]}
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods, services], scope: Namespaced}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: proxy-injector-demo-warnings
webhooks:
- name: warn.proxy-injector.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 3
  clientConfig:
    url: https://127.0.0.1:${port}/warn
    caBundle: $(base64 -w0 "$state/certs/ca.crt")
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [namespaces], scope: "*"}
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [resourcequotas, limitranges], scope: Namespaced}
  - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments, statefulsets, daemonsets], scope: Namespaced}
  - {apiGroups: [networking.k8s.io], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [networkpolicies], scope: Namespaced}
YAML
sleep 1

say "creating namespace demo, annotated linkerd.io/inject=enabled"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
kubectl annotate namespace demo linkerd.io/inject=enabled --overwrite
for _ in $(seq 1 100); do kubectl -n demo get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done

say "creating Deployment demo/hello (the controller-manager makes its pod)"
kubectl -n demo delete deployment hello --ignore-not-found >/dev/null
kubectl -n demo create deployment hello --image=nginx:1.27 --port=8080
wait_for_pods demo app=hello

say "the pod, as the API server stored it"
kubectl -n demo get pods -l app=hello \
  -o custom-columns='POD:.metadata.name,INIT:.spec.initContainers[*].name,CONTAINERS:.spec.containers[*].name,PROXY-IMAGE:.spec.initContainers[1].image'
say "the Event the injector recorded on the pod's ReplicaSet"
for _ in $(seq 1 40); do
  [[ -n "$(kubectl -n demo get events --field-selector reason=Injected -o name 2>/dev/null)" ]] && break
  sleep 0.25
done
kubectl -n demo get events --field-selector reason=Injected \
  -o custom-columns='OBJECT:.involvedObject.kind,NAME:.involvedObject.name,REASON:.reason,FROM:.reportingComponent,MESSAGE:.message'
say "a classic mistake: opting out on the Deployment instead of its pod template"
kubectl -n demo delete deployment oops --ignore-not-found >/dev/null
kubectl apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: oops
  namespace: demo
  annotations:
    linkerd.io/inject: disabled
spec:
  selector: {matchLabels: {app: oops}}
  template:
    metadata: {labels: {app: oops}}
    spec:
      containers: [{name: oops, image: nginx:1.27}]
YAML
say "the mesh's other classic failure: a default-deny egress NetworkPolicy cuts the proxies off"
kubectl -n demo delete networkpolicy default-deny-egress --ignore-not-found >/dev/null
kubectl apply -f - <<YAML
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-egress
  namespace: demo
spec:
  podSelector: {}
  policyTypes: [Egress]
YAML
kubectl -n demo delete networkpolicy default-deny-egress >/dev/null

say "a hardened namespace: PodSecurity baseline refuses linkerd-init's NET_ADMIN and NET_RAW"
kubectl delete namespace hardened --ignore-not-found --wait=false >/dev/null
for _ in $(seq 1 100); do kubectl get namespace hardened >/dev/null 2>&1 || break; sleep 0.2; done
kubectl create namespace hardened
kubectl annotate namespace hardened linkerd.io/inject=enabled
# The warning comes at the moment of the mistake: labelling an injected namespace.
kubectl label namespace hardened pod-security.kubernetes.io/enforce=baseline
for _ in $(seq 1 100); do kubectl -n hardened get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
kubectl -n hardened create deployment web --image=nginx:1.27
wait_for_pods hardened app=web
say "its pod is created, without the proxy (with Linkerd's injector the API server refuses it: 0 pods)"
kubectl -n hardened get pods -l app=web \
  -o custom-columns='POD:.metadata.name,INIT:.spec.initContainers[*].name,CONTAINERS:.spec.containers[*].name'
for _ in $(seq 1 40); do
  [[ -n "$(kubectl -n hardened get events --field-selector reason=InjectionSkipped -o name 2>/dev/null)" ]] && break
  sleep 0.25
done
kubectl -n hardened get events --field-selector reason=InjectionSkipped -o jsonpath='{range .items[*]}{.message}{"\n"}{end}'

echo
echo "injector log: $state/injector.log"
echo "use kubectl:  export KUBECONFIG=$state/kubeconfig; $bin/kubectl get pods -A"
echo "stop it all:  make down"

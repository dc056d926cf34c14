#!/usr/bin/env bash
# Local Kubernetes control plane on loopback: etcd + kube-apiserver + kube-controller-manager,
# built from source by build.sh. No Docker, no kubelet (pods are stored and stay Pending).
#
#   cluster.sh up [--until-exit PID]   start (or reuse) and write $STATE/kubeconfig
#   cluster.sh down                    stop everything and delete the state
#   cluster.sh status                  say what runs
#
# --until-exit PID: a watchdog stops the control plane when process PID exits, so a test run
# that crashes leaves nothing behind.
#
# Environment: PROXY_INJECTOR_STATE (default <repo>/.local), CP_ETCD_PORT (default 23790),
# CP_APISERVER_PORT (default 16443), CP_CM_QPS and CP_CM_BURST (the controller-manager's client
# limits; Kubernetes' defaults 20 and 30 when unset).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${PROXY_INJECTOR_STATE:-$repo/.local}"
cp="$state/controlplane"
etcd_port="${CP_ETCD_PORT:-23790}"
etcd_peer=$((etcd_port + 10))
api_port="${CP_APISERVER_PORT:-16443}"
kubeconfig="$state/kubeconfig"

log() { echo "[controlplane] $*" >&2; }

alive() { [[ -f "$cp/$1.pid" ]] && kill -0 "$(cat "$cp/$1.pid")" 2>/dev/null; }

stop_one() {
  local name=$1 pid
  [[ -f "$cp/$name.pid" ]] || return 0
  pid="$(cat "$cp/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$cp/$name.pid"
}

down() {
  # The watchdog runs this very function when its owner exits: do not kill ourselves.
  if [[ -f "$cp/watchdog.pid" && "$(cat "$cp/watchdog.pid")" != "$$" ]]; then stop_one watchdog; fi
  rm -f "$cp/watchdog.pid"
  stop_one kube-controller-manager
  stop_one kube-apiserver
  stop_one etcd
  rm -rf "$cp" "$kubeconfig"
  log "stopped"
}

gen_certs() {
  local d="$cp/pki"
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=local-controlplane-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > srv.ext
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile srv.ext -out apiserver.crt 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > cli.ext
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=local-admin" -keyout admin.key -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile cli.ext -out admin.crt 2>/dev/null
    # The client certificate the API server presents to webhooks (a webhook run with
    # --client-ca webhook-client-ca.crt accepts only callers holding it).
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=webhook-client-ca" \
      -keyout webhook-client-ca.key -out webhook-client-ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout webhook-client.key \
      -out webhook-client.csr 2>/dev/null
    openssl x509 -req -in webhook-client.csr -CA webhook-client-ca.crt -CAkey webhook-client-ca.key \
      -CAcreateserial -days 30 -extfile cli.ext -out webhook-client.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

# Admission configuration: the API server presents pki/webhook-client.crt to every webhook
# ("*" user) that asks for a client certificate.
write_admission_config() {
  local d="$cp/pki"
  cat > "$cp/webhook-clients.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: ${d}/webhook-client.crt
    client-key: ${d}/webhook-client.key
EOF
  cat > "$cp/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $cp/webhook-clients.kubeconfig
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $cp/webhook-clients.kubeconfig
EOF
}

write_kubeconfig() {
  local out=$1 d="$cp/pki"
  cat > "$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:${api_port}
    certificate-authority: ${d}/ca.crt
users:
- name: local-admin
  user:
    client-certificate: ${d}/admin.crt
    client-key: ${d}/admin.key
contexts:
- name: local
  context: {cluster: local, user: local-admin}
current-context: local
EOF
}

wait_for() {
  local what=$1 secs=$2; shift 2
  local start; start=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) - start > secs )); then
      log "$what did not become ready within ${secs}s; its log:"
      tail -n 30 "$cp/$what.log" >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

start() {
  local name=$1; shift
  # The API server calls webhooks on 127.0.0.1: make sure no proxy setting intercepts that.
  env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY NO_PROXY=127.0.0.1,localhost \
    setsid "$bin/$name" "$@" > "$cp/$name.log" 2>&1 < /dev/null &
  echo $! > "$cp/$name.pid"
}

up() {
  local until_pid=""
  if [[ "${1:-}" == "--until-exit" ]]; then until_pid="${2:?--until-exit needs a PID}"; fi
  if alive kube-apiserver && alive etcd && [[ -f "$kubeconfig" ]]; then
    # A control plane owned by a process that has exited is being torn down by its
    # watchdog: wait for that and start afresh rather than reuse it.
    if [[ -f "$cp/owner" ]] && ! kill -0 "$(cat "$cp/owner")" 2>/dev/null; then
      log "previous owner exited; restarting"
    else
      log "already running (kubeconfig $kubeconfig)"
      return 0
    fi
  fi
  down >/dev/null 2>&1 || true
  bin="$("$here/build.sh" | tail -n 1)"
  mkdir -p "$cp"
  log "generating certificates and keys"
  gen_certs
  write_admission_config
  local d="$cp/pki" t0; t0=$(date +%s)

  log "starting etcd on 127.0.0.1:${etcd_port}"
  start etcd --name local --data-dir "$cp/etcd" \
    --listen-client-urls "http://127.0.0.1:${etcd_port}" --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
    --listen-peer-urls "http://127.0.0.1:${etcd_peer}" --initial-advertise-peer-urls "http://127.0.0.1:${etcd_peer}" \
    --initial-cluster "local=http://127.0.0.1:${etcd_peer}" --unsafe-no-fsync --log-level warn
  wait_for etcd 60 curl -sf "http://127.0.0.1:${etcd_port}/health"

  log "starting kube-apiserver on 127.0.0.1:${api_port}"
  start kube-apiserver --etcd-servers "http://127.0.0.1:${etcd_port}" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "${api_port}" \
    --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" \
    --client-ca-file "$d/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --service-cluster-ip-range 127.1.0.0/24 --enable-aggregator-routing=true \
    --authorization-mode RBAC --allow-privileged=true \
    --enable-admission-plugins MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --admission-control-config-file "$cp/admission.yaml"
  wait_for kube-apiserver 120 curl -sf --cacert "$d/ca.crt" --cert "$d/admin.crt" --key "$d/admin.key" \
    "https://127.0.0.1:${api_port}/readyz"

  write_kubeconfig "$cp/admin.kubeconfig"
  log "starting kube-controller-manager"
  start kube-controller-manager --kubeconfig "$cp/admin.kubeconfig" --leader-elect=false \
    --service-account-private-key-file "$d/sa.key" --root-ca-file "$d/ca.crt" \
    --bind-address 127.0.0.1 --secure-port 0 --controllers '*,-nodeipam,-nodelifecycle,-ttl' \
    ${CP_CM_QPS:+--kube-api-qps "$CP_CM_QPS"} ${CP_CM_BURST:+--kube-api-burst "$CP_CM_BURST"}
  sleep 1
  alive kube-controller-manager || { log "kube-controller-manager exited:"; tail -n 30 "$cp/kube-controller-manager.log" >&2; return 1; }

  write_kubeconfig "$kubeconfig.tmp" && mv "$kubeconfig.tmp" "$kubeconfig"
  if [[ -n "$until_pid" ]]; then
    echo "$until_pid" > "$cp/owner"
    setsid bash -c "while kill -0 $until_pid 2>/dev/null; do sleep 0.5; done; exec '$here/cluster.sh' down" \
      > /dev/null 2>&1 < /dev/null &
    echo $! > "$cp/watchdog.pid"
  fi
  log "ready in $(( $(date +%s) - t0 ))s; use: export KUBECONFIG=$kubeconfig; kubectl is $bin/kubectl"
}

status() {
  for n in etcd kube-apiserver kube-controller-manager watchdog; do
    if alive "$n"; then echo "$n: running (pid $(cat "$cp/$n.pid"))"; else echo "$n: stopped"; fi
  done
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up [--until-exit PID] | down | status" >&2; exit 2 ;;
esac

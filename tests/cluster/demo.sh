#!/usr/bin/env bash
# The demo: a local cluster, the controller (running as its own ServiceAccount, with the RBAC we
# ship), and the Istio canary example walking through its steps, shown by
# `kubectl rollouts get --watch`. Manual pauses are promoted after a few seconds. Ctrl-C stops it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAMESPACE=${ROLLOUTS_DEMO_NAMESPACE:-rollouts-demo}
PROMOTE_AFTER=${ROLLOUTS_DEMO_PROMOTE_AFTER:-4}
BIN="$REPO_ROOT/target/debug"
DEMO_DIR="$CLUSTER_STATE/demo"
export PATH="$BIN:$TESTBIN:$PATH" KUBECONFIG="$KUBECONFIG_PATH"
mkdir -p "$DEMO_DIR"

children=()
stop() {
  trap - INT TERM EXIT
  for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  log "demo stopped. The cluster keeps running (make cluster-down stops it); controller log: $DEMO_DIR/controller.log"
}
trap stop INT TERM EXIT

"$CLUSTER_DIR_SCRIPTS/up.sh"

log "installing the CRD and the controller's RBAC"
kubectl apply -f "$REPO_ROOT/deploy/namespace.yaml" -f "$REPO_ROOT/crds/" -f "$REPO_ROOT/rbac/controller.yaml" >/dev/null

# The controller runs here, as a local process, but with the rollouts-controller ServiceAccount's
# token: it can do exactly what the shipped ClusterRole allows.
token=$(kubectl -n rollouts create token rollouts-controller --duration=12h)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
cat > "$DEMO_DIR/controller.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: demo, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: rollouts-controller, user: {token: "$token"}}]
contexts: [{name: demo, context: {cluster: demo, user: rollouts-controller}}]
current-context: demo
KC
log "starting the controller as system:serviceaccount:rollouts:rollouts-controller"
rollouts-controller run --kubeconfig "$DEMO_DIR/controller.kubeconfig" --settle-seconds 2 \
  --admin-address 127.0.0.1:0 >"$DEMO_DIR/controller.log" 2>&1 &
children+=($!)

if kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
  log "removing the previous demo's namespace $NAMESPACE"
  kubectl delete namespace "$NAMESPACE" --wait=true --timeout=120s >/dev/null
fi
log "applying examples/istio-canary.yaml in namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" >/dev/null
kubectl -n "$NAMESPACE" apply -f "$REPO_ROOT/examples/istio-canary.yaml" >/dev/null
kubectl rollouts -n "$NAMESPACE" status istio-demo --watch --timeout 120s

image=argoproj/rollouts-demo:yellow
log "changing the image to $image"
kubectl rollouts -n "$NAMESPACE" set image istio-demo "*=$image"

# Promotes at each manual pause after a few seconds, and says so; stops at Healthy.
promoter() {
  local ro="kubectl -n $NAMESPACE get rollout istio-demo -o"
  local steps phase reason step duration
  steps=$($ro jsonpath='{range .spec.strategy.canary.steps[*]}.{end}')
  while true; do
    sleep 1
    read -r phase reason step <<<"$($ro jsonpath='{.status.phase} {.status.pauseConditions[0].reason} {.status.currentStepIndex}' 2>/dev/null)" || continue
    if [ "$phase" = Healthy ]; then
      return
    fi
    [ "$phase" = Paused ] && [ "$reason" = CanaryPauseStep ] && [ "${step:-0}" -lt "${#steps}" ] || continue
    duration=$($ro jsonpath="{.spec.strategy.canary.steps[$step].pause.duration}")
    if [ -z "$duration" ]; then
      sleep "$PROMOTE_AFTER"
      echo ">>> demo: promoting at step $step (kubectl rollouts promote istio-demo)" >&2
      kubectl rollouts -n "$NAMESPACE" promote istio-demo >/dev/null
    fi
  done
}
promoter &
promoter_pid=$!
children+=("$promoter_pid")

kubectl rollouts -n "$NAMESPACE" get istio-demo --watch &
children+=($!)
wait "$promoter_pid"
sleep 2
log "the rollout is Healthy: every pod runs $image and the VirtualService is back to stable 100 / canary 0"

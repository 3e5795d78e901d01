#!/usr/bin/env bash
# Starts the local test cluster from the cached binaries (nothing is downloaded): etcd,
# kube-apiserver (RBAC, static tokens), kube-controller-manager (fast HPA), kube-scheduler and
# kwok with three fake nodes on 127.0.0.1 (how they and their pods behave: stages.yaml), with our
# CRDs and the routers' (crds.sh). Running it again while the cluster is up is a no-op.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for bin in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl; do
  [ -x "$TESTBIN/$bin" ] || die "$TESTBIN/$bin is missing: run 'make cluster-build' first"
done
for dir in "$GATEWAY_API_CRDS" "$ISTIO_CRDS"; do
  [ -d "$dir" ] || die "$dir is missing: run 'make cluster-build' first"
done
export PATH="$TESTBIN:$PATH" KWOK_WORKDIR="$CLUSTER_STATE/kwok"
READY_TIMEOUT=${ROLLOUTS_CLUSTER_TIMEOUT:-120}
USERS="rollouts-reader rollouts-writer nobody"

admin() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

print_usage() {
  cat >&2 <<MSG
[cluster] cluster '$CLUSTER_NAME' is up (Kubernetes $K8S_VERSION)
  export KUBECONFIG=$KUBECONFIG_PATH
  export PATH=$TESTBIN:\$PATH        # kubectl $K8S_VERSION
  kubectl get nodes
  RBAC users: $CLUSTER_STATE/users/<rollouts-reader|rollouts-writer|nobody>.kubeconfig
  stop it with: make cluster-down
MSG
}

# Prints the end of every component log, so a failed start says why.
show_logs() {
  local log
  for log in "$KWOK_WORKDIR/clusters/$CLUSTER_NAME/logs/"*.log; do
    [ -f "$log" ] || continue
    log "---- last lines of $(basename "$log")"
    tail -n 25 "$log" >&2
  done
}

healthy() { admin get --raw /readyz >/dev/null 2>&1; }
# Written last, so a half-finished start is never taken for a running cluster.
READY_MARKER="$CLUSTER_STATE/ready"

if kwokctl get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  if [ -f "$READY_MARKER" ] && healthy; then print_usage; exit 0; fi
  log "cluster '$CLUSTER_NAME' exists but does not answer; recreating it"
  "$CLUSTER_DIR_SCRIPTS/down.sh"
fi

start=$SECONDS
mkdir -p "$CLUSTER_STATE/users"
# One random token per RBAC test user; the apiserver reads them from a static token file.
: > "$CLUSTER_STATE/tokens.csv"
uid=1
for user in $USERS; do
  token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  echo "$token,$user,uid-$uid" >> "$CLUSTER_STATE/tokens.csv"
  echo "$token" > "$CLUSTER_STATE/users/$user.token"
  uid=$((uid + 1))
done

log "starting cluster '$CLUSTER_NAME' (timeout ${READY_TIMEOUT}s)"
if ! kwokctl -c "$CLUSTER_DIR_SCRIPTS/kwokctl.yaml" -c "$CLUSTER_DIR_SCRIPTS/stages.yaml" create cluster --name "$CLUSTER_NAME" \
    --kube-apiserver-binary "$TESTBIN/kube-apiserver" \
    --kube-controller-manager-binary "$TESTBIN/kube-controller-manager" \
    --kube-scheduler-binary "$TESTBIN/kube-scheduler" \
    --kwok-controller-binary "$TESTBIN/kwok" \
    --etcd-binary "$TESTBIN/etcd" \
    --kubeconfig "$KUBECONFIG_PATH" \
    --extra-args "kube-apiserver=token-auth-file=$CLUSTER_STATE/tokens.csv" \
    --wait "${READY_TIMEOUT}s" >"$CLUSTER_STATE/kwokctl.log" 2>&1; then
  tail -n 20 "$CLUSTER_STATE/kwokctl.log" >&2
  show_logs
  die "the cluster did not become ready within ${READY_TIMEOUT}s"
fi

# Waits until "$@" succeeds, or fails with the component logs.
wait_for() {
  local what=$1 deadline=$((SECONDS + READY_TIMEOUT)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then show_logs; die "$what: not ready within ${READY_TIMEOUT}s"; fi
    sleep 0.5
  done
}
wait_for "kube-apiserver" healthy
# Namespaces can't be created until the default ServiceAccount machinery is up.
wait_for "kube-controller-manager" admin get serviceaccount default -n default
admin apply -f "$CLUSTER_DIR_SCRIPTS/nodes.yaml" >/dev/null
KUBECONFIG=$KUBECONFIG_PATH "$CLUSTER_DIR_SCRIPTS/crds.sh"
wait_for "kwok nodes" admin wait --for=condition=Ready node --all --timeout=2s

# A kubeconfig per RBAC test user: same server and CA as the admin, authenticated by token.
server=$(admin config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(admin config view --raw --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
for user in $USERS; do
  cat > "$CLUSTER_STATE/users/$user.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: $user
  user: {token: "$(cat "$CLUSTER_STATE/users/$user.token")"}
contexts:
- name: $user
  context: {cluster: $CLUSTER_NAME, user: $user, namespace: default}
current-context: $user
KC
done

touch "$READY_MARKER"
log "cluster ready in $((SECONDS - start)) s"
print_usage

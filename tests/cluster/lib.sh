# Shared settings for the cluster scripts. Source it; don't run it.
CLUSTER_DIR_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_DIR_SCRIPTS/../.." && pwd)
# shellcheck source=versions.env
. "$CLUSTER_DIR_SCRIPTS/versions.env"

export GOTOOLCHAIN=local CGO_ENABLED=0
TESTBIN_ROOT=${ROLLOUTS_TESTBIN:-$HOME/.cache/rollouts-testbin}
TESTBIN="$TESTBIN_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
# A directory of its own, so that bumping Prometheus does not rebuild the control plane.
PROMETHEUS_BIN="$TESTBIN_ROOT/prometheus-$PROMETHEUS_VERSION"
# Cluster state (PKI, logs, kubeconfig) lives under target/, next to the build output.
CLUSTER_NAME=${ROLLOUTS_CLUSTER_NAME:-rollouts}
CLUSTER_STATE="$REPO_ROOT/target/cluster"
KUBECONFIG_PATH="$CLUSTER_STATE/kubeconfig"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

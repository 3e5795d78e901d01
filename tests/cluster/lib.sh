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
# The routers' CRDs, one directory per module version (crds.sh applies them).
GATEWAY_API_CRDS="$TESTBIN_ROOT/gateway-api-$GATEWAY_API_VERSION-crds"
ISTIO_CRDS="$TESTBIN_ROOT/istio-api-$ISTIO_API_VERSION-crds"
# Cluster state (PKI, logs, kubeconfig) lives under target/, next to the build output.
CLUSTER_NAME=${ROLLOUTS_CLUSTER_NAME:-rollouts}
CLUSTER_STATE="$REPO_ROOT/target/cluster"
KUBECONFIG_PATH="$CLUSTER_STATE/kubeconfig"

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# fetch_module_files MODULE VERSION DEST PATH...: downloads MODULE@vVERSION through the Go module
# proxy (checked against the checksum database) and copies PATH... (files or globs, relative to the
# module's root) into DEST. DEST appears only once complete, so an existing DEST means cached.
fetch_module_files() {
  local module=$1 version=$2 dest=$3 tmp json dir path; shift 3
  tmp=$(mktemp -d)
  # `go mod download` wants a module to run in; an empty one is enough.
  json=$(cd "$tmp" && go mod init rollouts.local/crds >/dev/null 2>&1 && go mod download -json "$module@v$version") ||
    { rm -rf "$tmp"; die "go mod download $module@v$version failed: $json"; }
  rm -rf "$tmp"
  dir=$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$json")
  [ -n "$dir" ] && [ -d "$dir" ] || die "go mod download $module@v$version gave no directory: $json"
  rm -rf "$dest.partial" && mkdir -p "$dest.partial"
  for path in "$@"; do
    # shellcheck disable=SC2086 # PATH may be a glob
    cp $dir/$path "$dest.partial/" || die "$module@v$version has no $path"
  done
  chmod -R u+w "$dest.partial"
  mv "$dest.partial" "$dest"
}

# fetch_router_crds: the Gateway API standard CRDs and Istio's CRDs into the cache, if not there.
fetch_router_crds() {
  if [ -d "$GATEWAY_API_CRDS" ]; then
    log "Gateway API $GATEWAY_API_VERSION CRDs: cached"
  else
    log "fetching the Gateway API $GATEWAY_API_VERSION standard CRDs"
    fetch_module_files sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION" "$GATEWAY_API_CRDS" 'config/crd/standard/*.yaml'
  fi
  if [ -d "$ISTIO_CRDS" ]; then
    log "Istio $ISTIO_API_VERSION CRDs: cached"
  else
    log "fetching the Istio $ISTIO_API_VERSION CRDs"
    fetch_module_files istio.io/api "$ISTIO_API_VERSION" "$ISTIO_CRDS" kubernetes/customresourcedefinitions.gen.yaml
  fi
}

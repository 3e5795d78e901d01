#!/usr/bin/env bash
# Builds the pinned test control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, etcd, kwok, kwokctl) and Prometheus (prometheus, promtool) from the Go module proxy
# into a cache outside the repo, and fetches the routers' CRDs (Gateway API, Istio) there too.
# Whatever is already in the cache is skipped.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null || die "Go is required (>= 1.26 for kwok $KWOK_VERSION); see README"
mkdir -p "$TESTBIN" "$PROMETHEUS_BIN"
log "cache: $TESTBIN, $PROMETHEUS_BIN"

# Runs "$@" and reports how long it took.
timed() {
  local what=$1 start=$SECONDS; shift
  log "$what ..."
  "$@"
  log "$what: done in $((SECONDS - start)) s"
}

# all_present DIR BINARY...
all_present() {
  local dir=$1 bin; shift
  for bin in "$@"; do [ -x "$dir/$bin" ] || return 1; done
}

# k8s.io/kubernetes publishes a go.mod that requires its staging modules at v0.0.0, so it can only
# be built through a module that replaces each of them with its v0.Y.Z tag. The replace list is
# generated from that published go.mod, and regenerated whenever K8S_VERSION changes.
k8s_wrapper() {
  local dir=$CLUSTER_DIR_SCRIPTS/wrappers/k8s staging_tag="v0.${K8S_VERSION#1.}" published module
  # go mod tidy marks the line `// indirect`, so match the version up to the end of the word.
  if grep -qE "k8s\.io/kubernetes v${K8S_VERSION//./\\.}( |\$)" "$dir/go.mod" 2>/dev/null; then return; fi
  log "generating $dir/go.mod for Kubernetes $K8S_VERSION"
  mkdir -p "$dir" && cd "$dir" && rm -f go.mod go.sum
  published=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  go mod init rollouts.local/k8s-testbin
  go mod edit -go="$(sed -n 's/^go //p' "$published")"
  go mod edit -godebug="$(sed -n 's/^godebug //p' "$published")"
  for module in $(grep -oE '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0\s*$' "$published" | awk '{print $1}' | sort -u); do
    go mod edit -replace="$module=$module@$staging_tag"
  done
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S_VERSION" \
    "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"
}

build_k8s() {
  local minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  local ldflags="-s -w" pkg
  # kwokctl runs `<binary> --version` and picks flags by the version it reads.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  (k8s_wrapper)
  cd "$CLUSTER_DIR_SCRIPTS/wrappers/k8s"
  GOBIN=$TESTBIN go install -trimpath -ldflags "$ldflags" tool
}

# etcd's server module has replace lines, so `go install` refuses it; a wrapper that requires it
# builds it. `go build -o` names the binary etcd (go install would call it "server").
etcd_wrapper() {
  local dir=$CLUSTER_DIR_SCRIPTS/wrappers/etcd
  if grep -qE "go\.etcd\.io/etcd/server/v3 v${ETCD_VERSION//./\\.}( |\$)" "$dir/go.mod" 2>/dev/null; then return; fi
  log "generating $dir/go.mod for etcd $ETCD_VERSION"
  mkdir -p "$dir" && cd "$dir" && rm -f go.mod go.sum
  go mod init rollouts.local/etcd-testbin
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
}

build_etcd() {
  (etcd_wrapper)
  cd "$CLUSTER_DIR_SCRIPTS/wrappers/etcd"
  go build -trimpath -ldflags "-s -w" -o "$TESTBIN/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  GOBIN=$TESTBIN go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@v$KWOK_VERSION"
}

# remove_all_sd leaves out the service discoveries (cloud SDKs): the tests push samples, they scrape nothing.
build_prometheus() {
  GOBIN=$PROMETHEUS_BIN go install -trimpath -tags remove_all_sd \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/prometheus@v$PROMETHEUS_MODULE_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@v$PROMETHEUS_MODULE_VERSION"
}

total_start=$SECONDS
if all_present "$TESTBIN" kube-apiserver kube-controller-manager kube-scheduler kubectl; then
  log "Kubernetes $K8S_VERSION: cached"
else
  timed "building Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)" build_k8s
fi
if all_present "$TESTBIN" etcd; then log "etcd $ETCD_VERSION: cached"; else timed "building etcd $ETCD_VERSION" build_etcd; fi
if all_present "$TESTBIN" kwok kwokctl; then log "kwok $KWOK_VERSION: cached"; else timed "building kwok $KWOK_VERSION" build_kwok; fi
if all_present "$PROMETHEUS_BIN" prometheus promtool; then
  log "Prometheus $PROMETHEUS_VERSION: cached"
else
  timed "building Prometheus $PROMETHEUS_VERSION (prometheus, promtool)" build_prometheus
fi
if [ -d "$GATEWAY_API_CRDS" ] && [ -d "$ISTIO_CRDS" ]; then
  log "Gateway API $GATEWAY_API_VERSION and Istio $ISTIO_API_VERSION CRDs: cached"
else
  timed "fetching the Gateway API $GATEWAY_API_VERSION and Istio $ISTIO_API_VERSION CRDs" fetch_router_crds
fi
log "all binaries and CRDs ready in $((SECONDS - total_start)) s ($(du -sh "$TESTBIN" | cut -f1) in $TESTBIN, $(du -sh "$PROMETHEUS_BIN" | cut -f1) in $PROMETHEUS_BIN)"

#!/usr/bin/env bash
# Installs every CRD the end-to-end tests use into the cluster $KUBECONFIG points at, and waits
# until all are Established: ours (crds/), the routers' real ones fetched by `make cluster-build`
# (the Gateway API standard channel, Istio's) and ApisixRoute's, which we write ourselves
# (tests/fixtures/crds/). Ingress is built in. up.sh runs it; run it by hand for another cluster:
#   KUBECONFIG=/path/to/kubeconfig tests/cluster/crds.sh
# The routers' CRDs are fetched first if they are not cached (that needs Go).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT=${ROLLOUTS_CLUSTER_TIMEOUT:-120}
kubectl=kubectl
if [ -x "$TESTBIN/kubectl" ]; then kubectl=$TESTBIN/kubectl; fi

if ! [ -d "$GATEWAY_API_CRDS" ] || ! [ -d "$ISTIO_CRDS" ]; then
  command -v go >/dev/null || die "the routers' CRDs are not cached and Go is missing: run 'make cluster-build'"
  fetch_router_crds
fi

# Server-side: the largest of them (HTTPRoute, Istio's DestinationRule) don't fit client-side
# apply's last-applied-configuration annotation. Ours stay client-side, as users apply them.
"$kubectl" apply --server-side --force-conflicts --field-manager=rollouts-test-harness \
  -f "$GATEWAY_API_CRDS/" -f "$ISTIO_CRDS/" -f "$REPO_ROOT/tests/fixtures/crds/" >/dev/null
"$kubectl" apply -f "$REPO_ROOT/crds/" >/dev/null

# The CRDs not Established yet, one per line (`kubectl wait --all` takes seconds even when none is).
not_established() {
  "$kubectl" get customresourcedefinitions \
    -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Established")].status}{"\n"}{end}' |
    awk '$2 != "True" {print $1}'
}
deadline=$((SECONDS + READY_TIMEOUT))
until pending=$(not_established) && [ -z "$pending" ]; do
  [ $SECONDS -lt $deadline ] || die "CRDs not Established within ${READY_TIMEOUT}s: ${pending//$'\n'/ }"
  sleep 0.2
done

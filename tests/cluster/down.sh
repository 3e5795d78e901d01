#!/usr/bin/env bash
# Stops the local test cluster and every process it started.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export PATH="$TESTBIN:$PATH" KWOK_WORKDIR="$CLUSTER_STATE/kwok"

pid_dir="$KWOK_WORKDIR/clusters/$CLUSTER_NAME/pids"
if [ -x "$TESTBIN/kwokctl" ] && kwokctl get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  kwokctl delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1 || log "kwokctl delete failed; killing what is left"
fi
# Whatever kwokctl could not stop (a half-created cluster, a crashed delete) is killed by pid.
if [ -d "$pid_dir" ]; then
  for pid_file in "$pid_dir"/*.pid; do
    [ -f "$pid_file" ] || continue
    pid=$(cat "$pid_file")
    kill -9 "$pid" 2>/dev/null || true
  done
fi
# Processes started from this cluster's directory that have no pid file left.
pkill -9 -f "$KWOK_WORKDIR/clusters/$CLUSTER_NAME/" 2>/dev/null || true
rm -rf "$KWOK_WORKDIR/clusters/$CLUSTER_NAME" "$CLUSTER_STATE/users" "$CLUSTER_STATE/tokens.csv" "$CLUSTER_STATE/ready"
log "cluster '$CLUSTER_NAME' is down"

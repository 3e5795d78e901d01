#!/usr/bin/env bash
# The demo: a local cluster, the controller (running as its own ServiceAccount, with the RBAC we
# ship), and the Istio canary example, shown by `kubectl rollouts get --watch`, in two acts:
#   1. an update walks through its steps to Healthy; manual pauses are promoted after a few seconds;
#   2. the next update runs under a background analysis against a real Prometheus; the canary's
#      success rate drops and the controller rolls the update back on its own.
# Ctrl-C stops it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAMESPACE=${ROLLOUTS_DEMO_NAMESPACE:-rollouts-demo}
PROMOTE_AFTER=${ROLLOUTS_DEMO_PROMOTE_AFTER:-4}
BIN="$REPO_ROOT/target/debug"
DEMO_DIR="$CLUSTER_STATE/demo"
export PATH="$BIN:$TESTBIN:$PROMETHEUS_BIN:$PATH" KUBECONFIG="$KUBECONFIG_PATH"
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
watch_pid=$!
children+=("$watch_pid")
wait "$promoter_pid"
sleep 2
kill "$watch_pid" 2>/dev/null || true
log "the rollout is Healthy: every pod runs $image and the VirtualService is back to stable 100 / canary 0"

# ---- Act 2: a background analysis rolls a bad update back, with nobody deciding anything.

ro() { kubectl -n "$NAMESPACE" get rollout istio-demo -o "jsonpath=$1"; }

# What a stuck act 2 leaves to look at: the rollout, its runs, its events, the controller's log.
show_state() {
  kubectl rollouts -n "$NAMESPACE" get istio-demo >&2 || true
  kubectl -n "$NAMESPACE" get analysisruns -o wide >&2 || true
  kubectl -n "$NAMESPACE" get events --sort-by=.lastTimestamp 2>/dev/null | tail -n 15 >&2 || true
  log "---- last lines of $DEMO_DIR/controller.log"
  tail -n 25 "$DEMO_DIR/controller.log" >&2 || true
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every second until it succeeds; past SECONDS,
# shows the state and fails the demo.
wait_until() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      show_state
      die "act 2: $what did not happen within ${timeout}s"
    fi
    sleep 1
  done
}

# A real Prometheus, as the e2e tests run it (tests/src/prometheus.rs): on a free loopback port,
# storage under the demo's directory, the remote-write receiver on, and no scrape jobs: the demo
# pushes every sample.
PROMETHEUS_DIR="$DEMO_DIR/prometheus"
start_prometheus() {
  local port _
  [ -x "$PROMETHEUS_BIN/prometheus" ] && [ -x "$PROMETHEUS_BIN/promtool" ] ||
    die "$PROMETHEUS_BIN is missing prometheus or promtool: run 'make cluster-build'"
  rm -rf "$PROMETHEUS_DIR"
  mkdir -p "$PROMETHEUS_DIR"
  echo 'global: {}' > "$PROMETHEUS_DIR/prometheus.yml"
  for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 30000))
    # Something listens there already: another port.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    "$PROMETHEUS_BIN/prometheus" --config.file="$PROMETHEUS_DIR/prometheus.yml" \
      --storage.tsdb.path="$PROMETHEUS_DIR/tsdb" --web.listen-address="127.0.0.1:$port" \
      --web.enable-remote-write-receiver --log.level=warn >>"$PROMETHEUS_DIR/prometheus.log" 2>&1 &
    prometheus_pid=$!
    children+=("$prometheus_pid")
    PROMETHEUS_URL="http://127.0.0.1:$port"
    for _ in $(seq 150); do
      # Exited: the port was taken after all; another one.
      kill -0 "$prometheus_pid" 2>/dev/null || break
      if promtool check ready --url="$PROMETHEUS_URL" >/dev/null 2>&1; then return; fi
      sleep 0.2
    done
    kill "$prometheus_pid" 2>/dev/null || true
  done
  tail -n 20 "$PROMETHEUS_DIR/prometheus.log" >&2 || true
  die "prometheus did not start (log: $PROMETHEUS_DIR/prometheus.log)"
}
start_prometheus
log "act 2: Prometheus $PROMETHEUS_VERSION runs at $PROMETHEUS_URL (log: $PROMETHEUS_DIR/prometheus.log)"

# The canary's success rate, as a gauge the demo sets: every 2 s, the value in $RATE_FILE is
# pushed (remote write, through promtool) as demo_request_success_rate{rollout="istio-demo"}.
# It stands in for what a real setup queries: the mesh's request metrics of the canary's pods
# (examples/analysis/istio-background-analysis.yaml divides istio_requests_total without 5xx by
# all of it, selected by the canary's rollouts-pod-template-hash).
RATE_FILE="$DEMO_DIR/success-rate"
echo 1 > "$RATE_FILE"
pusher() {
  while true; do
    printf 'demo_request_success_rate{rollout="istio-demo"} %s\n' "$(cat "$RATE_FILE")" |
      promtool push metrics --label=job= "$PROMETHEUS_URL" >/dev/null 2>>"$PROMETHEUS_DIR/push.log" ||
      echo "push failed at $(date +%T)" >>"$PROMETHEUS_DIR/push.log"
    sleep 2
  done
}
pusher &
children+=($!)

# Measured every 5 s with no end (a background analysis may run as long as the update does); one
# bad measurement is tolerated, the second fails the run, and a failed run aborts the update.
log "act 2: applying the AnalysisTemplate success-rate (Prometheus at $PROMETHEUS_URL)"
kubectl -n "$NAMESPACE" apply -f - >/dev/null <<YAML
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
    - name: rollout
  metrics:
    - name: success-rate
      interval: 5s
      failureLimit: 1
      successCondition: len(result) > 0 && result[0] >= 0.99
      provider:
        prometheus:
          address: $PROMETHEUS_URL
          query: 'demo_request_success_rate{rollout="{{args.rollout}}"}'
YAML
# From step 3 (setWeight 1) on: the first pause (step 1) warms the canary up with no traffic,
# where a success rate would mean nothing. The run then lasts until the update ends.
log "act 2: adding a background analysis to the rollout (canary.analysis, startingStep 3: from setWeight 1)"
kubectl -n "$NAMESPACE" patch rollout istio-demo --type=merge -p '{"spec":{"strategy":{"canary":{"analysis":{
  "templates":[{"templateName":"success-rate"}],
  "startingStep":3,
  "args":[{"name":"rollout","value":"istio-demo"}]}}}}}' >/dev/null

image=argoproj/rollouts-demo:green
log "act 2: changing the image to $image"
kubectl rollouts -n "$NAMESPACE" set image istio-demo "*=$image"
kubectl rollouts -n "$NAMESPACE" get istio-demo --watch &
watch_pid=$!
children+=("$watch_pid")

paused_at() { [ "$(ro '{.status.phase} {.status.pauseConditions[0].reason} {.status.currentStepIndex}')" = "Paused CanaryPauseStep $1" ]; }
# The background run is Running and has had a good measurement: the canary looked fine so far.
measured_good() {
  local run good
  [ "$(ro '{.status.canary.currentBackgroundAnalysisRunStatus.status}')" = Running ] || return 1
  run=$(ro '{.status.canary.currentBackgroundAnalysisRunStatus.name}')
  good=$(kubectl -n "$NAMESPACE" get analysisrun "$run" -o jsonpath='{.status.metricResults[0].successful}')
  [ "${good:-0}" -ge 1 ]
}
degraded() { [ "$(ro '{.status.phase}')" = Degraded ]; }
canary_weight_zero() {
  [ "$(kubectl -n "$NAMESPACE" get virtualservice istio-demo -o jsonpath='{.spec.http[0].route[1].weight}')" = 0 ]
}

# Only the warm-up pause is promoted in this act; the pause at setWeight 1 (step 4) waits for a
# promote that never comes, so the analysis alone decides how the update ends.
wait_until 120 "the pause at step 1" paused_at 1
sleep "$PROMOTE_AFTER"
echo ">>> demo: promoting at step 1 (kubectl rollouts promote istio-demo)" >&2
kubectl rollouts -n "$NAMESPACE" promote istio-demo >/dev/null
wait_until 120 "the pause at step 4 (setWeight 1)" paused_at 4
wait_until 60 "a good measurement of the background analysis run" measured_good
sleep "$PROMOTE_AFTER"
echo ">>> demo: the canary starts failing: success rate 0.82" >&2
echo 0.82 > "$RATE_FILE"

wait_until 90 "the controller aborting the update" degraded
wait_until 60 "the canary's weight going back to 0" canary_weight_zero
sleep 2
kill "$watch_pid" 2>/dev/null || true
echo >&2
log "the controller aborted the update on its own:"
log "  status.message: $(ro '{.status.message}')"
echo >&2
kubectl rollouts -n "$NAMESPACE" get istio-demo
echo >&2
cat >&2 <<MSG
[cluster] act 2: the background analysis measured the canary every 5 s; once its success rate was
[cluster] 0.82, the second bad measurement failed the run, and the controller aborted the update:
[cluster] the VirtualService is back to stable 100 / canary 0 and the stable pods still run the
[cluster] previous image; the canary's pods go after abortScaleDownDelaySeconds (30 s by default).
[cluster] Nobody promoted past step 4 or aborted anything.
[cluster] To try the update again (a new analysis run, named after the failed one with .1):
[cluster]   export KUBECONFIG=$KUBECONFIG_PATH PATH=$BIN:$TESTBIN:\$PATH
[cluster]   echo 1 > $RATE_FILE    # the canary recovers (while the demo runs)
[cluster]   kubectl rollouts -n $NAMESPACE retry rollout istio-demo
[cluster]   kubectl rollouts -n $NAMESPACE promote istio-demo    # at each pause
MSG
# On a terminal, the controller, Prometheus and the samples keep going for that, until Ctrl-C.
if [ -t 0 ] && [ -t 2 ]; then
  log "the controller and Prometheus keep running: retry from another shell; Ctrl-C stops the demo"
  wait "${children[0]}"
else
  log "not on a terminal: the demo ends here, and the controller with it (run make demo in one to retry)"
fi

#!/usr/bin/env bash
# `make demo`: a local cluster (gearmand + 2 storage nodes) on a free loopback port, the
# sample logs shipped into it, a distributed grep and the cluster status; then everything
# is stopped. Installs gearmand first when it is missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."
LOGMR="$PWD/.venv/bin/logmr"
PY="$PWD/.venv/bin/python"

if ! command -v gearmand >/dev/null 2>&1 && [ ! -x /usr/sbin/gearmand ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing gearmand (Debian package gearman-job-server)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gearman-job-server >/dev/null
  else
    echo "logmr demo: gearmand is not installed; install it with" \
         "'sudo apt-get install gearman-job-server' and run 'make demo' again" >&2
    exit 2
  fi
fi
GEARMAND=$(command -v gearmand || echo /usr/sbin/gearmand)

DEMO="$PWD/.demo"
rm -rf "$DEMO" && mkdir -p "$DEMO"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export LOGMR_SERVERS="127.0.0.1:$PORT"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_until() {  # wait_until SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "logmr demo: timed out waiting for $what" >&2; exit 2; fi
    sleep 0.1
  done
}

echo "==> gearmand on $LOGMR_SERVERS (sqlite queue in $DEMO)"
"$GEARMAND" --listen=127.0.0.1 --port="$PORT" --log-file="$DEMO/gearmand.log" \
  --queue-type=libsqlite3 --libsqlite3-db="$DEMO/queue.sqlite" --verbose=WARNING &
pids+=($!)
wait_until 20 gearmand "$LOGMR" status
for n in 1 2; do
  "$LOGMR" worker --data-dir "$DEMO/node$n" --node-id "node$n" 2>"$DEMO/node$n.log" &
  pids+=($!)
done
nodes_up() { [ "$("$LOGMR" status --format json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))')" = 2 ]; }
wait_until 20 "two storage nodes" nodes_up

echo "==> logmr ship samples/*.log"
for f in samples/*.log; do "$LOGMR" ship --host demo-web "$f"; done
total=$(cat samples/*.log | wc -l)
stored() { [ "$("$LOGMR" grep -c '')" = "$total" ]; }
wait_until 60 "$total lines to be stored" stored

echo
echo "==> logmr grep -c 'GET /presentations'     (GNU grep on the files says $(cat samples/*.log | grep -c 'GET /presentations'))"
"$LOGMR" grep -c 'GET /presentations'
echo
echo "==> logmr grep --limit 5 ' 404 '"
"$LOGMR" grep --limit 5 '" 404 '
echo
echo "==> logmr grep --since 2015-10-25T04:00+01:00 --until 2015-10-25T04:12+01:00 ''"
"$LOGMR" grep --since 2015-10-25T04:00+01:00 --until 2015-10-25T04:12+01:00 ''
echo
echo "==> logmr report --summary --top-urls --status --sessions --limit 5"
"$LOGMR" report --summary --top-urls --status --sessions --limit 5
echo
echo "==> logmr status"
"$LOGMR" status
echo
echo "demo done: the cluster is stopped now; its data stays in $DEMO"

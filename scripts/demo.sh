#!/usr/bin/env bash
# `make demo`: a local cluster (gearmand with its sqlite queue + 2 storage nodes) on a free
# loopback port, the sample logs shipped into it, a distributed grep and a report; then the
# cluster is stopped. Installs gearmand first when it is missing and we are root; without
# gearmand (and without root) it runs the same grep and report on the files instead.
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
    echo "logmr demo: gearmand is not installed and this is not root, so the demo runs in" \
         "file mode (install it with 'sudo apt-get install gearman-job-server' for a cluster)"
    echo
    echo "==> logmr grep -c 'GET /presentations' samples/*.log"
    "$LOGMR" grep -c 'GET /presentations' samples/*.log
    echo "==> logmr report --summary --top-urls --status --sessions --limit 5 samples/*.log"
    "$LOGMR" report --summary --top-urls --status --sessions --limit 5 samples/*.log
    exit 0
  fi
fi

DEMO="$PWD/.demo"
rm -rf "$DEMO"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export LOGMR_SERVERS="127.0.0.1:$PORT"
trap '"$LOGMR" cluster down --data-dir "$DEMO" >/dev/null 2>&1 || true' EXIT

echo "==> logmr cluster up --background --nodes 2 --port $PORT"
"$LOGMR" cluster up --background --nodes 2 --port "$PORT" --data-dir "$DEMO"

echo "==> logmr ship samples/*.log"
for f in samples/*.log; do "$LOGMR" ship --host demo-web "$f"; done
total=$(cat samples/*.log | wc -l)
deadline=$((SECONDS + 60))
until [ "$("$LOGMR" grep -c '')" = "$total" ]; do
  if [ $SECONDS -ge $deadline ]; then echo "logmr demo: timed out waiting for $total lines" >&2; exit 2; fi
  sleep 0.2
done

echo
echo "==> logmr grep -c 'GET /presentations'     (GNU grep on the files says $(cat samples/*.log | grep -c 'GET /presentations'))"
"$LOGMR" grep -c 'GET /presentations'
echo
echo "==> logmr grep --limit 5 '\" 404 '"
"$LOGMR" grep --limit 5 '" 404 '
echo
echo "==> logmr report --summary --top-urls --status --sessions --limit 5"
"$LOGMR" report --summary --top-urls --status --sessions --limit 5
echo
echo "==> logmr status"
"$LOGMR" status
echo
"$LOGMR" cluster down --data-dir "$DEMO"
echo "demo done: the cluster is stopped; its data stays in $DEMO"

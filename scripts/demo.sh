#!/usr/bin/env bash
# The embedded default: Lytics sandbox + SFTP server on loopback, `airflow standalone` on SQLite,
# the example jobs from include/jobs, and one Mapp SFTP export run end to end.
# Usage: scripts/demo.sh [stop]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"  # the stand-ins (lytics_sandbox) are imported from the checkout, not the installed package
DEMO="$ROOT/.demo"
BIN="$ROOT/.venv/bin"
LYTICS_PORT="${LYTICS_PORT:-8765}"
SFTP_PORT="${SFTP_PORT:-2222}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
DEMO_DAG="${DEMO_DAG:-lytics_mapp_high_value_daily}"
DEMO_AUDIENCE_SIZE="${DEMO_AUDIENCE_SIZE:-5000}"

stop() {
  for name in airflow sandbox; do
    if [[ -f "$DEMO/$name.pid" ]]; then
      kill -- "-$(cat "$DEMO/$name.pid")" 2>/dev/null || kill "$(cat "$DEMO/$name.pid")" 2>/dev/null || true
      rm -f "$DEMO/$name.pid"
    fi
  done
}

if [[ "${1:-}" == "stop" ]]; then stop; echo "demo stopped"; exit 0; fi

stop
mkdir -p "$DEMO/sftp/upload" "$DEMO/data"  # /upload is the Mapp example job's folder
export PATH="$ROOT/.venv/bin:$PATH"  # airflow standalone starts its components as `airflow ...`
export AIRFLOW_HOME="$DEMO/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
export LYTICS_JOBS_DIR="$ROOT/include/jobs"
export LYTICS_DATA_DIR="$DEMO/data"
export AIRFLOW_CONN_LYTICS_DEFAULT="{\"conn_type\":\"lytics\",\"host\":\"http://127.0.0.1:$LYTICS_PORT\",\"password\":\"sandbox-token\",\"extra\":{\"bulk_url\":\"http://127.0.0.1:$LYTICS_PORT\"}}"
SFTP_CONN="{\"conn_type\":\"sftp\",\"host\":\"127.0.0.1\",\"port\":$SFTP_PORT,\"login\":\"lytics\",\"password\":\"sandbox-pass\",\"extra\":{\"no_host_key_check\":true}}"
export AIRFLOW_CONN_MAPP_SFTP="$SFTP_CONN"
export AIRFLOW_CONN_LYTICS_SFTP="$SFTP_CONN"

echo "==> starting the Lytics sandbox (:$LYTICS_PORT) and the SFTP server (:$SFTP_PORT)"
setsid "$BIN/python" -m lytics_sandbox --lytics-port "$LYTICS_PORT" --sftp-port "$SFTP_PORT" \
  --sftp-root "$DEMO/sftp" --audience "high_value=$DEMO_AUDIENCE_SIZE" --audience "all_users=$((DEMO_AUDIENCE_SIZE * 4))" \
  >"$DEMO/sandbox.log" 2>&1 &
echo $! >"$DEMO/sandbox.pid"

echo "==> checking the job configs"
"$BIN/lytics-airflow" validate "$LYTICS_JOBS_DIR"

echo "==> starting airflow standalone on SQLite (logs: $DEMO/airflow.log)"
setsid "$BIN/airflow" standalone >"$DEMO/airflow.log" 2>&1 &
echo $! >"$DEMO/airflow.pid"

wait_for() {  # wait_for <seconds> <description> <command...>
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$limit"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$DEMO/airflow.pid")" 2>/dev/null; then
      echo "airflow standalone exited; see $DEMO/airflow.log" >&2
      exit 1
    fi
    sleep 1
  done
  echo "timed out waiting for $what; see $DEMO/airflow.log" >&2
  exit 1
}
wait_for 240 "the Airflow API server" curl -sf "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health"
wait_for 240 "DAG $DEMO_DAG to be parsed" bash -c "'$BIN/airflow' dags list -o plain 2>/dev/null | grep -q '$DEMO_DAG'"

echo "==> triggering $DEMO_DAG"
"$BIN/airflow" dags unpause "$DEMO_DAG" >/dev/null
RUN_ID="demo__$(date -u +%Y%m%dT%H%M%S)"
"$BIN/airflow" dags trigger "$DEMO_DAG" --run-id "$RUN_ID" >/dev/null
state=""
for _ in $(seq 300); do
  state=$("$BIN/airflow" dags list-runs "$DEMO_DAG" -o json 2>/dev/null \
    | "$BIN/python" "$ROOT/scripts/run_state.py" "$RUN_ID" || true)
  [[ "$state" == "success" || "$state" == "failed" ]] && break
  sleep 2
done
echo "    run $RUN_ID: ${state:-unknown}"
[[ "$state" == "success" ]] || { echo "the demo run did not succeed; see $DEMO/airflow.log" >&2; exit 1; }

"$BIN/python" "$ROOT/scripts/demo_check.py" --sftp-root "$DEMO/sftp" --lytics-url "http://127.0.0.1:$LYTICS_PORT" \
  --audience high_value --job "$ROOT/include/jobs/mapp_high_value_daily.yaml"

PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
echo
echo "Airflow UI:   http://127.0.0.1:$AIRFLOW_PORT  (user admin, password in $PASSWORDS)"
echo "Stop it with: make demo-stop"

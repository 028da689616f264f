#!/usr/bin/env bash
# The embedded default, every example job: the stand-ins of lytics_sandbox (Lytics, SFTP, moto, the
# GCS and Pub/Sub emulators, the vendors' stand-ins, Azurite when npx is on PATH) in one process,
# `airflow standalone` on SQLite with their connections, then every DAG of include/jobs triggered
# once through the REST API and a table of what each run did (.demo/demo-table.md).
# Usage: scripts/demo.sh [stop]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"  # the stand-ins (lytics_sandbox) are imported from the checkout, not the installed package
DEMO="$ROOT/.demo"
BIN="$ROOT/.venv/bin"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
DEMO_AUDIENCE_SIZE="${DEMO_AUDIENCE_SIZE:-300}"
DEMO_TIMEOUT="${DEMO_TIMEOUT:-900}"
JOBS="$ROOT/include/jobs"
STANDS="$DEMO/stands"

stop() {
  for name in airflow sandbox; do
    if [[ -f "$DEMO/$name.pid" ]]; then
      pid="$(cat "$DEMO/$name.pid")"
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 -- "-$pid" 2>/dev/null || true
      rm -f "$DEMO/$name.pid"
    fi
  done
}

if [[ "${1:-}" == "stop" ]]; then stop; echo "demo stopped"; exit 0; fi

stop
rm -rf "$STANDS"  # fresh stand-ins, so every run starts from an empty baseline
mkdir -p "$STANDS"
export PATH="$ROOT/.venv/bin:$PATH"  # airflow standalone starts its components as `airflow ...`

echo "==> checking the job configs"
"$BIN/lytics-airflow" validate "$JOBS"

echo "==> starting every stand-in the jobs need (log: $DEMO/sandbox.log)"
setsid "$BIN/python" -m lytics_sandbox --demo "$JOBS" --demo-root "$STANDS" \
  --demo-audience-size "$DEMO_AUDIENCE_SIZE" >"$DEMO/sandbox.log" 2>&1 &
echo $! >"$DEMO/sandbox.pid"
for _ in $(seq 180); do
  [[ -f "$STANDS/env.json" ]] && break
  kill -0 "$(cat "$DEMO/sandbox.pid")" 2>/dev/null || { echo "the stand-ins exited; see $DEMO/sandbox.log" >&2; exit 1; }
  sleep 1
done
[[ -f "$STANDS/env.json" ]] || { echo "the stand-ins did not start; see $DEMO/sandbox.log" >&2; exit 1; }
eval "$("$BIN/python" -c 'import json, shlex, sys
described = json.load(open(sys.argv[1]))
for name, value in sorted(described["env"].items()):
    print(f"export {name}={shlex.quote(value)}")
for name, why in sorted(described["skipped"].items()):
    line = "    not running: %s (%s)" % (name, why)
    print("echo " + shlex.quote(line))' "$STANDS/env.json")"

export AIRFLOW_HOME="$DEMO/airflow"
# SQLite waits up to a minute for a lock (77 DAGs' runs write at once) instead of failing at 5 s
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db?timeout=60"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW_PARALLELISM:-4}"
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False  # only the demo's own runs; unpausing adds no scheduled run
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT=60  # tasks wait for a busy API server instead of failing
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=2
export LYTICS_JOBS_DIR="$JOBS"
export PYTHONWARNINGS=ignore

# A fresh metadata DB each time (a migrated copy is kept), so no run of an earlier demo is left to schedule
mkdir -p "$AIRFLOW_HOME"
rm -rf "$AIRFLOW_HOME"/airflow.db* "$AIRFLOW_HOME/logs"
if [[ -f "$DEMO/airflow.template.db" ]]; then
  cp "$DEMO/airflow.template.db" "$AIRFLOW_HOME/airflow.db"
else
  echo "==> creating the Airflow metadata DB (once)"
  "$BIN/airflow" db migrate >"$DEMO/airflow-migrate.log" 2>&1
  cp "$AIRFLOW_HOME/airflow.db" "$DEMO/airflow.template.db"
fi

echo "==> starting airflow standalone on SQLite (logs: $DEMO/airflow.log)"
setsid "$BIN/airflow" standalone >"$DEMO/airflow.log" 2>&1 &
echo $! >"$DEMO/airflow.pid"

PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
for _ in $(seq 300); do
  curl -sf "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null 2>&1 && [[ -f "$PASSWORDS" ]] && break
  kill -0 "$(cat "$DEMO/airflow.pid")" 2>/dev/null || { echo "airflow standalone exited; see $DEMO/airflow.log" >&2; exit 1; }
  sleep 1
done

echo "==> triggering every example DAG through the REST API"
status=0
"$BIN/python" -m lytics_sandbox.demo_runner --url "http://127.0.0.1:$AIRFLOW_PORT" --password-file "$PASSWORDS" \
  --jobs-dir "$JOBS" --stands "$STANDS/env.json" --out "$DEMO/demo-table.md" --timeout "$DEMO_TIMEOUT" \
  --max-active "$AIRFLOW__CORE__PARALLELISM" --run-timeout "${DEMO_RUN_TIMEOUT:-180}" || status=$?

echo
echo "Airflow UI:   http://127.0.0.1:$AIRFLOW_PORT  (user admin, password in $PASSWORDS)"
echo "Stop it with: make demo-stop"
exit "$status"

"""Print the state of one DAG run from `airflow dags list-runs -o json` on stdin (log lines skipped)."""

from __future__ import annotations

import json
import sys


def main() -> int:
    run_id = sys.argv[1]
    for line in sys.stdin:
        if not line.lstrip().startswith("["):
            continue
        try:
            runs = json.loads(line)
        except ValueError:
            continue
        if isinstance(runs, list):
            for run in runs:
                if isinstance(run, dict) and run.get("run_id") == run_id:
                    print(run.get("state") or "")
                    return 0
    print("")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real DAG run (`airflow dags test`) of a generated Mapp export while the Lytics sandbox injects
429s, a 503 and dropped connections mid-scan: the CSV on the SFTP server still holds every member
of the audience exactly once."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from lytics_sandbox.faults import FaultRule
from tests.e2e.conftest import run_airflow
from tests.helpers import lytics_conn

SCAN = r"/api/segment/[^/]+/scan"
JOB = """\
type: mapp_sftp_export
audience: all_users
sftp_conn_id: mapp_sftp
folder: /drop
field_mapping:
  email: user.Email
  first_name: user.FirstName
keep_updated: true
time_of_day: "02:30"
timezone: America/New_York
"""


def test_dag_run_delivers_every_member_once_through_faults(
    airflow_home, lytics_sandbox, sftp_server, tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "fault_mapp.yaml").write_text(JOB)
    (sftp_server.root / "drop").mkdir(parents=True)
    lytics_sandbox.faults.add(FaultRule("429", path_regex=SCAN, after=2, times=2))
    lytics_sandbox.faults.add(FaultRule("drop", path_regex=SCAN, after=6, times=2))
    lytics_sandbox.faults.add(FaultRule("5xx", path_regex=SCAN, after=12, times=1, status=503))
    env = {
        **airflow_home,
        "LYTICS_JOBS_DIR": str(jobs),
        "LYTICS_DATA_DIR": str(tmp_path / "data"),
        "AIRFLOW_CONN_LYTICS_DEFAULT": lytics_conn(lytics_sandbox.base_url),
        "AIRFLOW_CONN_MAPP_SFTP": sftp_server.conn_json,
    }
    result = run_airflow(env, "dags", "test", "lytics_fault_mapp", "2026-11-23T07:30:00+00:00", timeout=600)
    assert "success" in (result.stdout + result.stderr).lower()

    assert lytics_sandbox.faults.injected["429"] == 2
    assert lytics_sandbox.faults.injected["drop"] == 2
    assert lytics_sandbox.faults.injected["5xx"] == 1
    files = list((sftp_server.root / "drop").iterdir())
    assert [f.name for f in files] == ["export-lytics-All_Users-20261123073000.csv"]
    with files[0].open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    expected = list(lytics_sandbox.expected_members("all_users"))
    assert [r["user.Email"] for r in rows] == [m["email"] for m in expected]
    assert len({r["user.Email"] for r in rows}) == len(expected)
    assert [r["user.FirstName"] for r in rows] == [m["first_name"] for m in expected]
    assert all("all_users" in r["user.CustomAttribute.SegmentMembership"].split(",") for r in rows)
    state = json.loads((tmp_path / "data" / "lytics_fault_mapp" / "state.json").read_text())
    assert state["last_report"]["members"] == len(expected)
    assert state["last_report"]["delivery"]["rows"] == len(expected)

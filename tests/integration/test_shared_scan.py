"""Jobs on the same audience share one scan: one pays the API calls, each keeps its own snapshot."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from lytics_provider.operators.lytics import LyticsAudienceScanOperator
from lytics_provider.pipeline import http
from lytics_provider.pipeline.csv_render import CsvRowRenderer
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.shared_scan import LeaseLost, ScanLease, SharedScanArea
from lytics_provider.pipeline.snapshot import Snapshot, count_changes
from lytics_provider.pipeline.workarea import data_root
from lytics_sandbox.faults import FaultRule
from tests.helpers import lytics_conn, make_context, run_task

SCAN = r"/api/segment/[^/]+/scan"
AUDIENCE = "all_users"
PAGE = 50
JOB_FIELDS = {
    "s3": ["email", "first_name"],
    "mapp": ["email", "last_name"],
    "dotdigital": ["email", "country"],
    "icontact": ["email", "user_id"],
}
UNION = sorted({name for fields in JOB_FIELDS.values() for name in fields})


@pytest.fixture(autouse=True)
def _env(lytics_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LYTICS_SHARED_SCAN_POLL_SECONDS", "0.05")
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.01)


def _scan_op(job: str, fields: list[str] | None, **kwargs) -> LyticsAudienceScanOperator:
    kwargs.setdefault("scan_fields", UNION)
    return LyticsAudienceScanOperator(
        task_id="scan", audience=AUDIENCE, job_id=job, page_size=PAGE, fields=fields, **kwargs
    )


def _scan_calls(sandbox) -> int:
    return sandbox.calls.get("segment_scan", 0)


def _pages(sandbox) -> int:
    return -(-sandbox.audience(AUDIENCE).size // PAGE)


def _records(path: str) -> list[dict]:
    with Snapshot(path) as snap:
        return list(snap.iter_records())


def _expected_uids(sandbox) -> list[str]:
    return [m["_uid"] for m in sandbox.expected_members(AUDIENCE)]


def _area() -> SharedScanArea:
    (key,) = os.listdir(data_root() / "shared_scans")
    return SharedScanArea(key)


def test_four_jobs_on_one_audience_make_one_scans_api_calls(lytics_sandbox) -> None:
    results = {job: run_task(_scan_op(job, fields), make_context()) for job, fields in JOB_FIELDS.items()}

    assert _scan_calls(lytics_sandbox) == _pages(lytics_sandbox)
    assert lytics_sandbox.calls["v2_segment_get"] == 4
    expected = _expected_uids(lytics_sandbox)
    paths = {result["snapshot"] for result in results.values()}
    assert len(paths) == 4
    for job, result in results.items():
        records = _records(result["snapshot"])
        assert [r["_uid"] for r in records] == expected
        assert result["members"] == len(expected)
        assert all(set(JOB_FIELDS[job]) <= set(r) for r in records)
        with Snapshot(result["snapshot"]) as snap:
            assert snap.stored_digest_fields == sorted({"_uid", *JOB_FIELDS[job]})
    scanner = results["s3"]
    assert scanner["scan_shared_from"] is None
    assert scanner["api_calls"] == 1 + _pages(lytics_sandbox)
    for job in ("mapp", "dotdigital", "icontact"):
        assert results[job]["scan_shared_from"] == str(_area().completed_scans()[0].directory)
        assert results[job]["api_calls"] == 1  # the audience lookup only


def test_a_change_in_a_field_a_job_does_not_use_is_no_change_for_it(lytics_sandbox) -> None:
    first = run_task(_scan_op("mapp", JOB_FIELDS["mapp"]), make_context(run_id="run1"))
    own = run_task(_scan_op("mapp", JOB_FIELDS["mapp"], scan_max_age_minutes=0), make_context(run_id="run2"))
    # run1 read the union (first_name, country, user_id too), run2 scanned only mapp's fields
    assert set(_records(first["snapshot"])[0]) > set(_records(own["snapshot"])[0])
    counts = count_changes(first["snapshot"], own["snapshot"])
    assert (counts.enters, counts.exits, counts.changes) == (0, 0, 0)


def test_concurrent_jobs_one_scans_the_other_waits_and_reads(lytics_sandbox) -> None:
    lytics_sandbox.page_delay = 0.005
    start = threading.Barrier(2)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def run(job: str) -> None:
        try:
            start.wait()
            results[job] = run_task(_scan_op(job, JOB_FIELDS[job]), make_context())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in ("s3", "mapp")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert _scan_calls(lytics_sandbox) == _pages(lytics_sandbox)
    assert sorted(r["scan_shared_from"] is None for r in results.values()) == [False, True]
    expected = _expected_uids(lytics_sandbox)
    for result in results.values():
        assert [r["_uid"] for r in _records(result["snapshot"])] == expected


def test_a_crashed_scanners_lease_is_taken_over_and_the_scan_resumes(lytics_sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, max_attempts=1))
    lytics_sandbox.faults.add(FaultRule("5xx", path_regex=SCAN, after=12, times=1, status=502))
    with monkeypatch.context() as crash:
        crash.setattr(ScanLease, "release", lambda self: None)  # dies without a word
        with pytest.raises(ServiceError):
            run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context())
    area = _area()
    lease = area.current_lease()
    assert lease is not None and not lease.released
    record = json.loads((area.directory / f"lease.{lease.number}").read_text())
    (area.directory / f"lease.{lease.number}").write_text(
        json.dumps({**record, "heartbeat": time.time() - 600})
    )
    before = _scan_calls(lytics_sandbox)

    result = run_task(_scan_op("mapp", JOB_FIELDS["mapp"]), make_context())

    assert _scan_calls(lytics_sandbox) - before == _pages(lytics_sandbox) - 12
    assert [r["_uid"] for r in _records(result["snapshot"])] == _expected_uids(lytics_sandbox)
    assert result["scan_shared_from"] is None
    assert area.current_lease().number == lease.number + 1


def test_a_retry_of_the_crashed_task_takes_its_lease_over_at_once(lytics_sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, max_attempts=1))
    monkeypatch.setenv("LYTICS_SHARED_SCAN_STALE_SECONDS", "3600")
    lytics_sandbox.faults.add(FaultRule("5xx", path_regex=SCAN, after=7, times=1, status=502))
    with monkeypatch.context() as crash:
        crash.setattr(ScanLease, "release", lambda self: None)
        with pytest.raises(ServiceError):
            run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context())
    before = _scan_calls(lytics_sandbox)
    result = run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context())
    assert _scan_calls(lytics_sandbox) - before == _pages(lytics_sandbox) - 7
    assert [r["_uid"] for r in _records(result["snapshot"])] == _expected_uids(lytics_sandbox)


def test_a_scanner_that_lost_its_lease_stops() -> None:
    area = SharedScanArea("k", root=data_root() / "shared_scans")
    first = area.acquire(None, ["_uid"], "a run", resume_within=60)
    assert first is not None
    Snapshot(first.scan_dir / "snapshot.db").close()
    assert area.acquire(None, ["_uid"], "b run", resume_within=60) is None  # lease.1 exists
    second = area.acquire(area.current_lease(), ["_uid"], "b run", resume_within=60)
    assert second is not None and second.scan_id == first.scan_id  # resumes the unfinished scan
    with pytest.raises(LeaseLost):
        first.heartbeat(force=True)


def test_a_scan_older_than_the_window_is_not_reused(lytics_sandbox) -> None:
    run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context())
    (scan,) = _area().completed_scans()
    done = scan.directory / "scan.json"
    done.write_text(json.dumps({**json.loads(done.read_text()), "finished_at": time.time() - 31 * 60}))
    lytics_sandbox.set_churn(AUDIENCE, exits=3, enters=4, changes=0)
    lytics_sandbox.set_version(AUDIENCE, 1)
    before = _scan_calls(lytics_sandbox)

    result = run_task(_scan_op("mapp", JOB_FIELDS["mapp"]), make_context())

    assert _scan_calls(lytics_sandbox) - before == _pages(lytics_sandbox)
    assert result["scan_shared_from"] is None
    assert [r["_uid"] for r in _records(result["snapshot"])] == _expected_uids(lytics_sandbox)


def test_scan_max_age_zero_scans_alone(lytics_sandbox) -> None:
    run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context())
    result = run_task(_scan_op("mapp", JOB_FIELDS["mapp"], scan_max_age_minutes=0), make_context())
    assert _scan_calls(lytics_sandbox) == 2 * _pages(lytics_sandbox)
    assert result["scan_shared_from"] is None
    assert all(set(r) == {"_uid", "email", "last_name"} for r in _records(result["snapshot"]))
    assert len(_area().completed_scans()) == 1


def test_a_user_limit_job_scans_alone(lytics_sandbox) -> None:
    run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context())
    result = run_task(_scan_op("mapp", JOB_FIELDS["mapp"], user_limit=120), make_context())
    assert result["members"] == 120 and result["scan_shared_from"] is None


def test_a_job_needing_a_field_the_fresh_scan_lacks_scans_itself(lytics_sandbox) -> None:
    run_task(_scan_op("s3", JOB_FIELDS["s3"], scan_fields=None), make_context())
    result = run_task(_scan_op("mapp", JOB_FIELDS["mapp"], scan_fields=None), make_context())
    assert _scan_calls(lytics_sandbox) == 2 * _pages(lytics_sandbox)
    assert result["scan_shared_from"] is None
    assert all("last_name" in r for r in _records(result["snapshot"]))
    # an all-fields scan holds every field: the next job reads it
    run_task(_scan_op("all", None, scan_fields=None), make_context())
    calls = _scan_calls(lytics_sandbox)
    reader = run_task(_scan_op("dotdigital", JOB_FIELDS["dotdigital"], scan_fields=None), make_context())
    assert _scan_calls(lytics_sandbox) == calls and reader["scan_shared_from"] is not None


def test_the_next_run_of_a_job_does_not_get_its_last_runs_scan_again(lytics_sandbox) -> None:
    run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context(run_id="run1"))
    lytics_sandbox.set_churn(AUDIENCE, exits=2, enters=5, changes=0)
    lytics_sandbox.set_version(AUDIENCE, 1)
    before = _scan_calls(lytics_sandbox)
    second = run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context(run_id="run2"))
    assert second["scan_shared_from"] is None
    assert [r["_uid"] for r in _records(second["snapshot"])] == _expected_uids(lytics_sandbox)
    retried = run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context(run_id="run2"))
    assert retried["snapshot"] == second["snapshot"]
    assert _scan_calls(lytics_sandbox) - before == _pages(lytics_sandbox)


def test_a_file_drop_reading_another_jobs_scan_renders_the_same_rows(lytics_sandbox) -> None:
    mine = CsvRowRenderer(("email", "last_name"))
    other = CsvRowRenderer(("email", "first_name"))
    alone = run_task(
        _scan_op("mapp_alone", JOB_FIELDS["mapp"], scan_max_age_minutes=0, row_renderer=mine),
        make_context(),
    )
    run_task(_scan_op("s3", JOB_FIELDS["s3"], row_renderer=other), make_context())
    shared = run_task(_scan_op("mapp", JOB_FIELDS["mapp"], row_renderer=mine), make_context())
    assert shared["scan_shared_from"] is not None
    with Snapshot(alone["snapshot"]) as snap:
        pages = snap.rendered_pages(mine.signature)
        assert pages is not None
        expected = "".join(page.text for page in pages)
    with Snapshot(shared["snapshot"]) as snap:
        assert snap.rendered_pages(mine.signature) is None  # rows rendered for the other layout dropped
        rendered = "".join(mine.render(batch).text for batch in snap.iter_record_batches())
    assert rendered == expected


def test_shared_scans_keep_only_the_newest(lytics_sandbox) -> None:
    run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context(run_id="run1"))
    run_task(_scan_op("s3", JOB_FIELDS["s3"]), make_context(run_id="run2"))
    dirs = [p for p in _area().directory.iterdir() if p.is_dir()]
    assert len(dirs) == 1 and Path(dirs[0], "scan.json").exists()

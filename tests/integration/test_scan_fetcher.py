"""The scan fetcher child process: same pages as in-process, same errors, nothing leaked, nothing left."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.lytics import CursorExpiredError, LyticsHook
from lytics_provider.hooks.task_errors import PermanentTaskError
from lytics_provider.pipeline import scan_fetcher
from lytics_provider.pipeline.http import AuthError, ServiceError
from lytics_sandbox.faults import FaultRule
from tests.helpers import lytics_conn

SCAN = r"/api/segment/[^/]+/scan"
TOKEN = "sandbox-token"


@pytest.fixture(autouse=True)
def _conn(lytics_sandbox, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, token=TOKEN))


def _members(body: bytes) -> list[dict]:
    return json.loads(body)["data"]


def _segment_id(hook: LyticsHook, slug: str = "all_users") -> str:
    return hook.get_segment(slug)["id"]


def test_child_pages_equal_in_process_pages(lytics_sandbox) -> None:
    hook = LyticsHook()
    segment = _segment_id(hook)
    here = list(hook.scan_segment_raw(segment, limit=70, fields=["email"]))
    calls_here = hook.calls
    child = list(hook.scan_segment_raw(segment, limit=70, fields=["email"], in_subprocess=True))
    assert [(_members(p.body), p.count, bool(p.next_cursor)) for p in child] == [
        (_members(p.body), p.count, bool(p.next_cursor)) for p in here
    ]
    assert sum(p.count for p in child) == len(list(lytics_sandbox.expected_members("all_users")))
    assert hook.calls - calls_here == len(child)


def test_child_retries_and_its_warnings_reach_the_task_log(lytics_sandbox, caplog) -> None:
    lytics_sandbox.faults.add(FaultRule("429", path_regex=SCAN, after=2, times=1, retry_after=0))
    lytics_sandbox.faults.add(FaultRule("drop", path_regex=SCAN, after=4, times=1))
    hook = LyticsHook()
    job = _job(hook, _segment_id(hook), limit=100)
    with caplog.at_level(logging.WARNING, logger="test.scan"):
        pages = list(scan_fetcher.SubprocessScan(job, logging.getLogger("test.scan")))
    assert sum(p.count for p in pages) == len(list(lytics_sandbox.expected_members("all_users")))
    assert lytics_sandbox.faults.injected["429"] == 1 and lytics_sandbox.faults.injected["drop"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("429" in line and "retrying" in line for line in warnings)
    assert any("retrying" in line and "429" not in line for line in warnings)
    assert not any(TOKEN in line for line in caplog.messages)


def test_errors_arrive_as_the_in_process_exceptions(lytics_sandbox, monkeypatch) -> None:
    hook = LyticsHook()
    segment = _segment_id(hook)
    first = next(hook.scan_segment_raw(segment, limit=100))
    lytics_sandbox.faults.add(FaultRule("expired_cursor", path_regex=SCAN, times=1))
    with pytest.raises(CursorExpiredError):
        list(LyticsHook().scan_segment_raw(segment, start=first.next_cursor, in_subprocess=True))

    wrong = lytics_conn(lytics_sandbox.base_url, token="wrong-token")
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", wrong)
    with pytest.raises(AuthError) as caught:
        list(LyticsHook().scan_segment_raw(segment, in_subprocess=True))
    assert caught.value.status == 401
    assert "wrong-token" not in str(caught.value)
    assert isinstance(caught.value, AirflowFailException)
    assert "connection 'lytics_default'" in str(caught.value) and "Password field" in str(caught.value)


def test_a_permanent_error_in_the_child_fails_the_task_at_once(lytics_sandbox) -> None:
    with pytest.raises(PermanentTaskError) as caught:
        list(LyticsHook().scan_segment_raw("no-such-segment", in_subprocess=True))
    assert isinstance(caught.value, AirflowFailException) and not isinstance(caught.value, CursorExpiredError)
    assert caught.value.status == 404
    assert "segment not found: no-such-segment" in str(caught.value)
    assert lytics_sandbox.calls_to("segment_scan") == 1


def test_token_is_never_on_the_command_line_or_in_the_environment(lytics_sandbox, monkeypatch) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_popen = subprocess.Popen

    def recording_popen(args, **kwargs):
        seen.append((list(args), dict(kwargs.get("env") or {})))
        return real_popen(args, **kwargs)

    monkeypatch.setattr(scan_fetcher.subprocess, "Popen", recording_popen)
    hook = LyticsHook()
    pages = list(hook.scan_segment_raw(_segment_id(hook), in_subprocess=True))
    assert pages and len(seen) == 1
    args, env = seen[0]
    assert not any(TOKEN in arg for arg in args)
    assert not any(TOKEN in value for value in env.values())
    assert not any(name.startswith("AIRFLOW") for name in env)


def test_stopping_early_ends_the_child(lytics_sandbox) -> None:
    hook = LyticsHook()
    scan = scan_fetcher.SubprocessScan(_job(hook, _segment_id(hook)), logging.getLogger(__name__))
    pages = iter(scan)
    assert next(pages).count == 10
    pid = scan.pid
    assert pid is not None
    pages.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_killed_child_fails_the_scan_instead_of_ending_it(lytics_sandbox) -> None:
    hook = LyticsHook()
    scan = scan_fetcher.SubprocessScan(_job(hook, _segment_id(hook)), logging.getLogger(__name__))
    pages = iter(scan)
    next(pages)
    assert scan.pid is not None
    os.kill(scan.pid, signal.SIGKILL)
    with pytest.raises(ServiceError, match="ended before the scan finished"):
        for _ in pages:
            pass


def _job(hook: LyticsHook, segment: str, limit: int = 10) -> scan_fetcher.ScanJob:
    client = hook.get_conn()
    return scan_fetcher.ScanJob(
        base_url=client.base_url,
        headers=dict(client.headers),
        segment_id=segment,
        limit=limit,
        base_delay=0.01,
        secrets=(TOKEN,),
    )

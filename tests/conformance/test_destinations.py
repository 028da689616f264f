"""The conformance suite: every registered destination shows the same properties.

A destination takes part by its module in ``tests/conformance/destinations/``; each test here
runs its job through the real job type (config -> DAG tasks), against the destination's stand-in.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tests.conformance.conftest import AUDIENCE_SIZE
from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, registered
from tests.conformance.runner import JobRun

REPORT_KEYS = {"audience", "members", "enters", "exits", "changes", "delivery", "dry_run"}
"""Keys every destination's run report (the ``report`` task's XCom) carries."""


KNOWN_FAILURES: dict[tuple[str, str], str] = {}
"""Properties a destination fails today: (property, destination) -> the exact failing behaviour."""


def where(prop: str, predicate: Any = None) -> list[Any]:
    """The registered destinations ``predicate`` accepts, known failures of ``prop`` marked xfail."""
    params = []
    for d in registered():
        if predicate is not None and not predicate(d):
            continue
        reason = KNOWN_FAILURES.get((prop, d.name))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(d, id=d.name, marks=marks))
    return params


@pytest.fixture
def target(destination: Destination, stands: Stands) -> Target:
    return destination.setup(stands)


def members(stands: Stands) -> list[dict[str, Any]]:
    return list(stands.lytics.expected_members(AUDIENCE))


def deliverable(destination: Destination, rows: list[dict[str, Any]]) -> set[str]:
    return {key for key in map(destination.key, rows) if key is not None}


def job(stands: Stands, target: Target, day: int = 23, **params: Any) -> JobRun:
    return JobRun(target.config, job_id=f"{stands.name}_job", day=day, **params)


@pytest.mark.parametrize("destination", where("dry_run"))
def test_dry_run_sends_nothing(destination: Destination, stands: Stands, target: Target) -> None:
    before = target.state()
    xcoms = job(stands, target, dry_run=True).run()
    assert target.received() == 0
    assert target.state() == before
    assert xcoms["report"]["dry_run"] is True


@pytest.mark.parametrize("destination", where("churn"))
def test_first_run_then_one_percent_churn(destination: Destination, stands: Stands, target: Target) -> None:
    first = members(stands)
    job(stands, target).run()
    assert target.held() == deliverable(destination, first)
    after_first, state_first = target.received(), target.state()
    assert after_first == len(deliverable(destination, first))

    step = AUDIENCE_SIZE // 100
    stands.lytics.account.set_churn(AUDIENCE, exits=step, enters=step, changes=0)
    stands.lytics.set_version(AUDIENCE, 1)
    second = members(stands)
    old, new = {m["_uid"] for m in first}, {m["_uid"] for m in second}
    entered = [m for m in second if m["_uid"] not in old]
    exited = [m for m in first if m["_uid"] not in new]
    assert len(entered) == len(exited) == step
    report = job(stands, target, 24).run()["report"]
    assert (report["enters"], report["exits"]) == (step, step)

    sent = target.received() - after_first
    if destination.semantic == "churn":
        expected_sent = deliverable(destination, entered)
        expected_held = deliverable(destination, first) | expected_sent
        if destination.removes_exits:
            expected_sent |= deliverable(destination, exited)
            expected_held -= deliverable(destination, exited)
        assert sent == len(expected_sent)
        assert target.held() == expected_held
    else:
        assert target.held() == deliverable(destination, second)
        state = target.state()
        changed = {name for name in state if state_first.get(name) != state[name]}
        assert set(state_first) <= set(state) and len(changed) == 1, f"the run changed {sorted(changed)}"


@pytest.mark.parametrize("destination", where("interrupted_delivery", lambda d: d.interruptible))
def test_interrupted_delivery_retried_delivers_every_member_once(
    destination: Destination, stands: Stands, target: Target
) -> None:
    expected = deliverable(destination, members(stands))
    run = job(stands, target)
    run.run(until="scan")
    with target.interrupt(), pytest.raises(Exception):  # noqa: B017 - any failure of the attempt
        run.run()
    assert "deliver" not in run.done
    run.run()
    assert target.held() == expected
    if destination.semantic == "churn":
        assert target.received() == len(expected)
    else:
        assert sorted(target.state()) == sorted(n for n in target.state() if not n.startswith("."))
        assert len(target.state()) == 1


@pytest.mark.parametrize("destination", where("rejects", lambda d: d.rejects))
def test_bad_rows_land_in_rejects_with_reasons(
    destination: Destination, stands: Stands, target: Target
) -> None:
    rows = members(stands)
    bad = {m["_uid"] for m in rows if destination.key(m) is None}
    assert bad, "the conformance audience holds members with invalid emails"
    xcoms = job(stands, target).run()
    rejects = read_rejects(find_rejects_file(xcoms))
    assert {reject_uid(r) for r in rejects} == bad
    assert all((r.get("reason") or "").strip() for r in rejects)
    assert target.held() == deliverable(destination, rows)


def reject_uid(row: dict[str, Any]) -> str | None:
    """The member a reject names (``uid``, ``_uid``, the rejected ``record``'s ``_uid``, or ``id``)."""
    return row.get("uid") or row.get("_uid") or (row.get("record") or {}).get("_uid") or row.get("id")


def find_rejects_file(xcoms: dict[str, Any]) -> Path:
    for task in ("deliver", "report"):
        value = xcoms.get(task) or {}
        for source in (value, value.get("delivery") or {}):
            if source.get("rejects_file"):
                return Path(source["rejects_file"])
    raise AssertionError(f"no rejects_file in the deliver or report XCom: {json.dumps(xcoms)[:2000]}")


def read_rejects(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl" or text.lstrip().startswith("{"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(csv.DictReader(text.splitlines()))


@pytest.mark.parametrize("destination", where("permanent_error"))
def test_permanent_error_fails_fast(destination: Destination, stands: Stands, target: Target) -> None:
    target.break_credentials()
    run = job(stands, target)
    run.run(until="scan")
    with pytest.raises(AirflowFailException):
        run.run()
    assert target.received() == 0


@pytest.mark.parametrize("destination", where("report_shape"))
def test_run_report_has_the_same_shape(destination: Destination, stands: Stands, target: Target) -> None:
    report = job(stands, target).run()["report"]
    assert set(report) >= REPORT_KEYS, f"missing {sorted(REPORT_KEYS - set(report))}"
    assert report["members"] == AUDIENCE_SIZE and report["enters"] == AUDIENCE_SIZE
    assert isinstance(report["delivery"], dict) and report["delivery"]
    json.dumps(report)


@pytest.mark.parametrize("destination", where("no_secret_in_logs"))
def test_no_secret_in_task_logs(
    destination: Destination, stands: Stands, target: Target, caplog: pytest.LogCaptureFixture, capfd: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    job(stands, target).run()
    target.break_credentials()
    run = job(stands, target, 24, full_refresh=True)
    with pytest.raises(Exception) as failure:
        run.run()
    out, err = capfd.readouterr()
    text = "\n".join([caplog.text, out, err, str(failure.value), repr(failure.value)])
    assert caplog.records, "the tasks logged nothing to check"
    assert target.secret not in text
    assert target.secret not in json.dumps(run.xcoms, default=str)

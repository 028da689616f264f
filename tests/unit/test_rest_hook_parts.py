"""The generic parts vendor hooks declare themselves with: connection naming, error envelopes,
regional hosts, batched lookups, list lookups, size groups and planned bulk jobs."""

from __future__ import annotations

from typing import Any

import pytest

from lytics_provider.hooks.batched_lookup import chunks, lookup_in_batches
from lytics_provider.hooks.bulk_jobs import PlannedJobs, wait_for_answer
from lytics_provider.hooks.list_lookup import by_id_or_name, list_choices
from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_errors import code_and_message, error_reader
from lytics_provider.hooks.size_groups import size_groups
from lytics_provider.sync.wait import BulkJobTimeout


class AcmeHook(RestHook):
    conn_type = "acme"
    hook_name = "Acme"
    regional_hosts = {"US": "https://us.acme.example", "EU": "https://eu.acme.example"}
    credentials_fix = "the Acme key in Password."


class Answer:
    def __init__(self, body: Any = None, text: str = "") -> None:
        self.body, self.text = body, text

    def json(self) -> Any:
        if self.body is None:
            raise ValueError("not JSON")
        return self.body


def test_connection_names_follow_the_conn_type() -> None:
    assert (AcmeHook.conn_name_attr, AcmeHook.default_conn_name) == ("acme_conn_id", "acme_default")
    assert AcmeHook().acme_conn_id == "acme_default"
    assert AcmeHook("a1").conn_id == "a1"
    assert AcmeHook(acme_conn_id="a2").conn_id == "a2"
    with pytest.raises(TypeError, match="other_conn_id"):
        AcmeHook(other_conn_id="x")
    assert AcmeHook("a3").auth_fix() == "Check connection 'a3': the Acme key in Password."


def test_regional_hosts() -> None:
    hook = AcmeHook("a")
    assert hook.default_api_url() == "https://us.acme.example"
    hook.extra = {"region": " eu "}
    assert hook.default_api_url() == "https://eu.acme.example"
    hook.extra = {"region": "ap"}
    with pytest.raises(ValueError, match="region 'AP' must be US or EU"):
        hook.default_api_url()


def test_error_reader_frames_the_vendor_envelope() -> None:
    @error_reader
    def read(body: dict[str, Any]) -> str | None:
        return str(body["message"]) if "message" in body else None

    assert read(Answer({"message": "bad key"})) == "bad key"
    assert read(Answer({"other": 1})) == "{'other': 1}"
    assert read(Answer([1, 2])) == "[1, 2]"
    assert read(Answer(None, "x" * 400)) == "x" * 300
    pair = code_and_message("code", "msg")
    assert pair(Answer({"code": 400, "msg": "no"})) == "400: no"
    assert pair(Answer({"msg": "no"})) == "no"


def test_chunks_and_batched_lookup() -> None:
    assert list(chunks([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    asked: list[list[str]] = []

    def lookup(keys: list[str]) -> list[tuple[str, str]]:
        asked.append(keys)
        return [(k, k.upper()) for k in keys if k != "b"]

    assert lookup_in_batches(["a", "b", "c"], 2, lookup) == {"a": "A", "c": "C"}
    assert asked == [["a", "b"], ["c"]]


def test_list_by_id_or_name() -> None:
    lists = [{"id": 1, "name": "One"}, {"id": 2, "name": "Two"}, {"id": 3, "name": "Two"}]
    assert by_id_or_name(lists, "2") == (lists[1], "")
    assert by_id_or_name(lists, "One") == (lists[0], "")
    assert by_id_or_name(lists, "Two", noun="audiences") == (None, "matches several audiences")
    assert by_id_or_name(lists, "Zero") == (None, "not found")
    assert list_choices(lists[:2]) == "1 (One), 2 (Two)"


def test_size_groups() -> None:
    assert size_groups(["aa", "bbb", "c", "dddd", "e"], len, 5) == [["aa", "bbb"], ["c", "dddd"], ["e"]]
    assert size_groups(["a", "b", "c"], len, 100, max_items=2) == [["a", "b"], ["c"]]
    assert size_groups(["toolong", "a"], len, 3) == [["toolong"], ["a"]]


def test_wait_for_answer_returns_the_last_answer() -> None:
    answers = iter([{"status": "pending"}, {"status": "done", "n": 3}])
    assert wait_for_answer(lambda: next(answers), ("pending",), 0, 10, "job 1", lambda _: None) == {
        "status": "done",
        "n": 3,
    }
    with pytest.raises(BulkJobTimeout, match="job 2"):
        wait_for_answer(lambda: {"status": "pending"}, ("pending",), 0, 0, "job 2", lambda _: None)


class Steps:
    def __init__(self) -> None:
        self.steps: dict[str, Any] = {}

    def step(self, key: str) -> Any:
        return self.steps.get(key)

    def set_step(self, key: str, value: Any) -> None:
        self.steps[key] = value


class Jobs(PlannedJobs):
    default_timeout = 60.0


def test_planned_jobs_start_once_and_keep_the_wait_settings() -> None:
    jobs = Jobs(poll_interval=2.0)
    assert (jobs.poll_interval, jobs.timeout) == (2.0, 60.0)
    jobs.plan = Steps()  # type: ignore[assignment]
    started: list[str] = []

    def start() -> str:
        started.append("job")
        return f"j{len(started)}"

    assert jobs.planned_job("k", start) == "j1"
    assert jobs.planned_job("k", start) == "j1"
    assert (started, jobs.jobs) == (["job"], 1)
    jobs.forget_job("k")
    assert jobs.planned_job("k", start) == "j2"


@pytest.mark.parametrize("conn_type", ["hubspot", "klaviyo", "mailchimp", "sfmc", "iterable", "dotdigital"])
def test_airflow_builds_each_hook_from_its_connection(conn_type: str) -> None:
    from airflow.models.connection import Connection

    hook = Connection(conn_id=f"c_{conn_type}", conn_type=conn_type, password="key-us1").get_hook()
    assert isinstance(hook, RestHook) and hook.conn_id == f"c_{conn_type}"

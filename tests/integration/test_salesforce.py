"""Salesforce: the hook against its stand-in, the example config, the registration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lytics_provider.hooks.salesforce import SalesforceHook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_sandbox.salesforce import SalesforceSandbox

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "salesforce_export.yaml"
DECLARATION = REPO / "lytics_provider" / "integrations" / "salesforce.yaml"


@pytest.fixture
def stand_in() -> Iterator[SalesforceSandbox]:
    sandbox = SalesforceSandbox().start()
    yield sandbox
    sandbox.stop()


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_config_loads() -> None:
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == []
    assert [job.config.type for job in jobs] == ["salesforce_export"]


def test_hook_connects_to_the_stand_in(
    stand_in: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = f'{{"conn_type": "salesforce", "host": "{stand_in.url}"}}'
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", connection)
    assert SalesforceHook().test_connection() == (True, "TODO: the message a working connection returns")

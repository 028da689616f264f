"""Stand-ins shared by the integration tests: the Lytics and Dotdigital sandboxes, each started once
per test session and reset to a new account before every test that uses it.

A module picks the Lytics account its tests see by overriding ``lytics_account``; it changes a
stand-in's settings for its own tests by overriding ``lytics`` or ``dd`` with a fixture of the same
name that takes the original (``reset`` puts every setting back before the next test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lytics_provider.operators.dotdigital import _DotdigitalDeliveryOperator
from lytics_provider.pipeline import http
from lytics_sandbox.dotdigital import DotdigitalSandbox, connection_json
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import lytics_conn


@pytest.fixture(scope="session")
def lytics_stand_in() -> Iterator[LyticsSandbox]:
    """The Lytics API stand-in, started once per session."""
    with LyticsSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def dotdigital_stand_in() -> Iterator[DotdigitalSandbox]:
    """The Dotdigital API stand-in, started once per session."""
    with DotdigitalSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    """The account the Lytics stand-in serves in a test (the default synthetic account)."""
    return SyntheticAccount()


@pytest.fixture
def lytics(
    lytics_stand_in: LyticsSandbox, lytics_account: SyntheticAccount, monkeypatch: pytest.MonkeyPatch
) -> LyticsSandbox:
    """The session's Lytics stand-in serving ``lytics_account``, as the default Lytics connection."""
    lytics_stand_in.reset(lytics_account)
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_stand_in.base_url))
    return lytics_stand_in


@pytest.fixture
def dd(
    dotdigital_stand_in: DotdigitalSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> DotdigitalSandbox:
    """The session's Dotdigital stand-in as a new account, as the default Dotdigital connection.

    Also gives the test its own data directory (state kept there, not in ``LYTICS_STATE_URL``)
    and takes the waits out of retries and bulk-job polls.
    """
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LYTICS_STATE_URL", raising=False)
    monkeypatch.delenv("LYTICS_STATE_CONN_ID", raising=False)
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    monkeypatch.setattr(_DotdigitalDeliveryOperator, "sleep", staticmethod(lambda seconds: None))
    dotdigital_stand_in.reset()
    monkeypatch.setenv("AIRFLOW_CONN_DOTDIGITAL_DEFAULT", connection_json(dotdigital_stand_in))
    return dotdigital_stand_in

"""The exit guard's verdicts and its message."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.pipeline.exit_guard import MassExitError, check_exits, enforce


def test_exits_over_the_fraction_and_the_floor_are_blocked() -> None:
    verdict = check_exits(exits=300, previous=1000)
    assert verdict.over_limit and verdict.blocked and verdict.status == "blocked"
    with pytest.raises(MassExitError) as info:
        enforce(verdict, "dd_export")
    message = str(info.value)
    assert "300 of 1000 members" in message and "(30.0%)" in message
    assert "allow_mass_exit: true" in message and "raise max_exit_fraction" in message
    assert "'dd_export'" in message
    assert isinstance(info.value, AirflowFailException)  # Airflow does not retry it


def test_exits_at_the_fraction_pass() -> None:
    assert check_exits(exits=250, previous=1000).status == "ok"
    assert check_exits(exits=251, previous=1000).status == "blocked"


def test_the_floor_lets_small_audiences_through() -> None:
    assert check_exits(exits=99, previous=100).status == "ok"
    assert check_exits(exits=100, previous=100).status == "blocked"
    assert check_exits(exits=5, previous=6, min_exits=5).status == "blocked"
    assert check_exits(exits=0, previous=10, min_exits=0).status == "ok"


def test_allow_mass_exit_lets_the_run_through_and_says_so() -> None:
    verdict = check_exits(exits=900, previous=1000, allow_mass_exit=True)
    assert verdict.over_limit and not verdict.blocked
    enforce(verdict)
    assert verdict.as_report()["status"] == "allowed"


def test_a_fraction_of_one_never_blocks() -> None:
    assert check_exits(exits=1000, previous=1000, max_exit_fraction=1.0).status == "ok"


@pytest.mark.parametrize(("fraction", "floor"), [(0, 100), (1.5, 100), (0.25, -1)])
def test_bad_settings_are_refused(fraction, floor) -> None:
    with pytest.raises(ValueError, match=r"max_exit_fraction|exit_guard_min_exits"):
        check_exits(1, 1, fraction, floor)

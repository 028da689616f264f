"""The end of a continuous file sequence: "If no next file is received, the continuous import will
stop and a new export will need to be configured" (Lytics, S3 ``prefix_timestamp.json`` imports).

A run of a continuous import that finds no file after the last one imported records the stop in
the job state and fails without retries, naming the file it expected. Every later run of the same
configuration is skipped with that message. Configuring a new import, i.e. changing ``bucket``,
``prefix``, ``starting_file`` or ``since`` (usually ``starting_file``: the sequence's next file),
lifts the stop; files imported before are still never imported again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from lytics_provider.files.listing import SequenceNaming
from lytics_provider.pipeline.workarea import JobState

STATE_KEY = "continuous_stopped"
#: the options that make a new configuration of the import (changing one restarts the sequence)
SEQUENCE_OPTIONS = ("bucket", "prefix", "starting_file", "since")
RESTART = (
    "to restart, configure a new import: set starting_file to the next file of the sequence "
    "(or change bucket, prefix or since); files imported before are not imported again"
)


def expected_next(last_key: str, naming: SequenceNaming) -> str:
    """The name the next file of the sequence after ``last_key`` has, with its timestamp in words."""
    folder, _, name = last_key.rpartition("/")
    match = naming.pattern.match(name)
    if match is None:
        return f"a {naming.label} file after {last_key}"
    start, end = match.span("ts")
    hint = f"{name[:start]}<timestamp after {match.group('ts')}>{name[end:]}"
    return f"{folder}/{hint}" if folder else hint


@dataclass
class SequenceStop:
    """Whether a continuous import has stopped, and stopping it.

    :param state: the job's committed state.
    :param options: the import's sequence options (:data:`SEQUENCE_OPTIONS`) as configured now.
    :param naming: how the sequence's files are named.
    :param log: where the restart is logged.
    """

    state: JobState
    options: Mapping[str, Any]
    naming: SequenceNaming
    log: logging.Logger

    def check(self) -> None:
        """Skip the run when the import stopped under the same configuration; forget a stop that
        a new configuration lifted."""
        stopped = self.state.get(STATE_KEY)
        if not stopped:
            return
        if stopped.get("options") == dict(self.options):
            raise AirflowSkipException(f"{stopped['message']} (stopped {stopped['at']})")
        self.log.info("New configuration %s: the continuous import restarts", dict(self.options))
        self.state.update(**{STATE_KEY: None})

    def stop(self, last_key: str) -> NoReturn:
        """Record the stop after ``last_key`` and fail the run (no retry brings the file back)."""
        message = (
            f"Continuous import stopped: no next file after {last_key} "
            f"(expected {expected_next(last_key, self.naming)}); {RESTART}"
        )
        at = datetime.now(UTC).isoformat(timespec="seconds")
        self.state.update(
            **{STATE_KEY: {"after": last_key, "options": dict(self.options), "message": message, "at": at}}
        )
        raise AirflowFailException(message)

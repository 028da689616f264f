"""Where a job keeps its files between tasks and runs.

``LYTICS_DATA_DIR`` (default ``$AIRFLOW_HOME/lytics_data``) holds, per job::

    <job_id>/state.json            committed state: last delivered snapshot, watermarks
    <job_id>/runs/<run_id>/...     one run's snapshot, staged files and rejects

With CeleryExecutor the directory must be a volume shared by the workers (docker-compose mounts
one). Names depend only on the job and the run, so a retried task finds its own earlier work.
With ``LYTICS_STATE_URL`` set, the committed state lives in object storage and ``state.json``
here is a cache (see ``pipeline.state_store``); ``pipeline.retention`` prunes old run dirs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any


def data_root() -> Path:
    """The root data directory."""
    root = os.environ.get("LYTICS_DATA_DIR")
    if not root:
        root = str(Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow")) / "lytics_data")
    return Path(root)


def safe_name(text: str) -> str:
    """A file-system-safe version of ``text`` (run ids carry ``:`` and ``+``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def job_dir(job_id: str) -> Path:
    """The directory of one job."""
    return data_root() / safe_name(job_id)


RUN_STARTED_MARKER = ".run_started"


def run_dir(job_id: str, run_id: str) -> Path:
    """The directory of one run of one job (created, with a marker holding when it was started)."""
    path = job_dir(job_id) / "runs" / safe_name(run_id)
    marker = path / RUN_STARTED_MARKER
    if not marker.exists():
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(marker, str(time.time_ns()))
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JobState:
    """The committed state of a job, saved atomically as JSON.

    With ``LYTICS_STATE_URL`` set the state object in that store is the authority: it is read on
    every ``load`` and written on every ``update``; ``state.json`` in the data dir is a local cache.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.path = job_dir(job_id) / "state.json"

    def _load_local(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def load(self) -> dict[str, Any]:
        """The saved state, or an empty dict."""
        from lytics_provider.pipeline import state_store

        if state_store.state_root() is None:
            return self._load_local()
        state = state_store.read_state(self.job_id) or {}
        if state != self._load_local():
            atomic_write_text(self.path, json.dumps(state, indent=2, sort_keys=True, default=str))
        return state

    def get(self, key: str, default: Any = None) -> Any:
        """One value of the saved state."""
        return self.load().get(key, default)

    def update(self, **values: Any) -> dict[str, Any]:
        """Merge ``values`` into the state and save it; return the new state."""
        from lytics_provider.pipeline import state_store

        state = self.load()
        state.update(values)
        text = json.dumps(state, indent=2, sort_keys=True, default=str)
        if state_store.state_root() is not None:
            state_store.write_state(self.job_id, text)
        atomic_write_text(self.path, text)
        return state

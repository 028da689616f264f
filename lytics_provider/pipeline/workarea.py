"""Where a job keeps its files between tasks and runs.

``LYTICS_DATA_DIR`` (default ``$AIRFLOW_HOME/lytics_data``) holds, per job::

    <job_id>/state.json            committed state: last delivered snapshot, watermarks
    <job_id>/runs/<run_id>/...     one run's snapshot, staged files and rejects

With CeleryExecutor the directory must be a volume shared by the workers (docker-compose mounts
one). Names depend only on the job and the run, so a retried task finds its own earlier work.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
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


def run_dir(job_id: str, run_id: str) -> Path:
    """The directory of one run of one job (created)."""
    path = job_dir(job_id) / "runs" / safe_name(run_id)
    path.mkdir(parents=True, exist_ok=True)
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
    """The committed state of a job, saved atomically as JSON."""

    def __init__(self, job_id: str) -> None:
        self.path = job_dir(job_id) / "state.json"

    def load(self) -> dict[str, Any]:
        """The saved state, or an empty dict."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def get(self, key: str, default: Any = None) -> Any:
        """One value of the saved state."""
        return self.load().get(key, default)

    def update(self, **values: Any) -> dict[str, Any]:
        """Merge ``values`` into the state and save it; return the new state."""
        state = self.load()
        state.update(values)
        atomic_write_text(self.path, json.dumps(state, indent=2, sort_keys=True, default=str))
        return state

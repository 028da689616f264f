"""What a job type sees while it adds its tasks to a DAG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JobContext:
    """The DAG under construction, its id and the config file it came from."""

    dag: Any
    job_id: str
    source: Path

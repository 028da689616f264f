"""Trigger and manifest files: a small file written after the data file, describing it.

Partners that poll a folder start their import when the trigger appears (BlueKai-style
``<name>.trigger`` holding the name, size and MD5), so it is uploaded only after the data file
has landed under its final name; a retry rewrites both, data first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BODY = "{name}\n{size}\n{md5}\n"
_READ_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TriggerFile:
    """How the trigger file is named and what it holds.

    :param suffix: appended to the data file's name (``x.gz`` → ``x.gz.trigger``).
    :param body: text template with ``{name}`` (data file name), ``{size}`` (bytes), ``{md5}``
        and ``{sha256}`` (hex digests of the data file as uploaded) and ``{rows}``.
    """

    suffix: str = ".trigger"
    body: str = DEFAULT_BODY

    def __post_init__(self) -> None:
        if not self.suffix or "/" in self.suffix:
            raise ValueError(
                f"trigger suffix {self.suffix!r} must be a non-empty name ending, e.g. '.trigger'"
            )

    def name_for(self, data_name: str) -> str:
        """The trigger's name for a data file name."""
        return f"{data_name}{self.suffix}"

    def write(self, data_path: Path, data_name: str, rows: int) -> Path:
        """Write the trigger for ``data_path`` beside it; return its path."""
        md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
        with open(data_path, "rb") as handle:
            while chunk := handle.read(_READ_BYTES):
                md5.update(chunk)
                sha256.update(chunk)
                size += len(chunk)
        text = self.body.format(
            name=data_name, size=size, md5=md5.hexdigest(), sha256=sha256.hexdigest(), rows=rows
        )
        target = data_path.with_name(self.name_for(data_name))
        target.write_text(text, encoding="utf-8", newline="")
        return target

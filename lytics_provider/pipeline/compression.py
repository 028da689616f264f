"""Streamed gzip and zip compression for file drops and imports.

Writers wrap a binary target: ``gz`` is a gzip member with mtime 0 (the same input always gives
the same bytes, so a retried export uploads an identical file); ``zip`` is an archive holding one
deflated entry (ZIP64-capable, so any size works). Readers detect the format from the file name.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

Compression = Literal["none", "gz", "zip"]
COMPRESSIONS: tuple[str, ...] = ("none", "gz", "zip")
GZIP_LEVEL = 6
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def compressed_name(name: str, compression: str) -> str:
    """The file name after compression: ``x.csv`` → ``x.csv.gz`` (gz) or ``x.zip`` (zip)."""
    if compression == "gz":
        return f"{name}.gz"
    if compression == "zip":
        stem = name.rsplit(".", 1)[0] if "." in name else name
        return f"{stem}.zip"
    if compression == "none":
        return name
    raise ValueError(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")


@contextmanager
def compress_to(target: IO[bytes], compression: str, inner_name: str) -> Iterator[IO[bytes]]:
    """Yield a writable binary stream whose bytes reach ``target`` compressed.

    ``inner_name`` is the entry name inside a zip archive. ``target`` is left open.
    """
    if compression == "none":
        yield target
    elif compression == "gz":
        with gzip.GzipFile(
            filename="", fileobj=target, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
        ) as stream:
            yield stream  # type: ignore[misc]
    elif compression == "zip":
        with zipfile.ZipFile(target, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
            info = zipfile.ZipInfo(inner_name, date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, mode="w", force_zip64=True) as stream:
                yield stream
    else:
        raise ValueError(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")


def detect_compression(name: str) -> str:
    """Compression implied by a file name: ``.gz`` → gz, ``.zip`` → zip, else none."""
    lower = name.lower()
    if lower.endswith(".gz"):
        return "gz"
    if lower.endswith(".zip"):
        return "zip"
    return "none"


@contextmanager
def open_decompressed(path: Path, compression: str) -> Iterator[IO[bytes]]:
    """Open a local file for streamed reading of its uncompressed bytes.

    A zip archive must hold exactly one file (directories are ignored).
    """
    if compression == "none":
        with open(path, "rb") as handle:
            yield handle
    elif compression == "gz":
        with gzip.open(path, "rb") as handle:
            yield handle  # type: ignore[misc]
    elif compression == "zip":
        with zipfile.ZipFile(path) as archive:
            entries = [info for info in archive.infolist() if not info.is_dir()]
            if len(entries) != 1:
                raise ValueError(
                    f"{path.name}: a zip import must hold exactly one file, found {len(entries)}; "
                    "upload one archive per file"
                )
            with archive.open(entries[0]) as handle:
                yield handle
    else:
        raise ValueError(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")

"""A missing Azure Blob Storage container as the error a job's owner can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def container_must_exist(container: str) -> Iterator[None]:
    """Raise ``FileNotFoundError`` naming ``container`` when Azure answers ``ContainerNotFound``.

    :param container: the container the calls inside the block use.
    """
    from azure.core.exceptions import ResourceNotFoundError

    try:
        yield
    except ResourceNotFoundError as exc:
        if "ContainerNotFound" in str(getattr(exc, "error_code", "") or exc):
            raise FileNotFoundError(
                f"Azure container {container!r} does not exist; create it or fix the job's `container`"
            ) from exc
        raise

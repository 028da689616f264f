"""Calls that take at most so many keys: cut the keys into chunks, gather what each call answers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive chunks of at most ``size`` items.

    :param items: the items, in order.
    :param size: items per chunk (the API's limit per call).
    """
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def lookup_in_batches(
    keys: Sequence[str], size: int, lookup: Callable[[list[str]], Iterable[tuple[str, str]]]
) -> dict[str, str]:
    """``key -> id`` of the keys the service knows, asking for at most ``size`` keys a call.

    :param keys: what to look up (emails, external ids).
    :param size: keys per call.
    :param lookup: one call: the ``(key, id)`` pairs it found for a chunk of keys.
    """
    found: dict[str, str] = {}
    for chunk in chunks(keys, size):
        found.update(lookup(chunk))
    return found

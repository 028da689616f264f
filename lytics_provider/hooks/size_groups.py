"""Cut a sequence of messages into consecutive calls within a count and a byte limit."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from lytics_provider.sync.event_batches import BatchLimits, Entry, cut_calls

T = TypeVar("T")


def size_groups(
    items: Sequence[T], size_of: Callable[[T], int], max_bytes: int, max_items: int = sys.maxsize
) -> list[list[T]]:
    """Consecutive groups of ``items`` whose sizes add up to at most ``max_bytes`` and that hold at
    most ``max_items`` each (an item over ``max_bytes`` goes alone), as
    :func:`~lytics_provider.sync.event_batches.cut_calls` cuts entries.

    :param items: the messages, in order.
    :param size_of: the bytes one message counts toward a call.
    :param max_bytes: bytes per call.
    :param max_items: messages per call.
    """
    entries = [Entry(str(index), size_of(item), {}) for index, item in enumerate(items)]
    limits = BatchLimits(max_entries=max_items, max_bytes=max_bytes, max_entry_bytes=max_bytes)
    return [[items[int(entry.key)] for entry in call] for call in cut_calls(entries, limits)]

"""Paging styles of the REST hook base, as small strategies.

Each style turns "GET one page" into "every page": :meth:`pages` takes a ``get(path, params)``
callable that returns ``(decoded body, response headers)`` (the hook's retrying, budgeted call)
and yields the items of each page. ``items_key`` is a dotted path into the body (``data`` or
``meta.items``); None means the body itself is the list.

- :class:`OffsetPaging`: ``limit``/``offset`` until ``total`` is reached or a page is empty
  (``stop_on_short_page`` also stops at a page shorter than asked); :func:`skip_select` is the
  ``select``/``skip`` variant that stops at a short page (Dotdigital).
- :class:`CursorPaging`: sends the cursor the previous page named, until it is empty.
- :class:`LinkPaging`: follows the ``Link: <...>; rel="next"`` header, or a next-page URL in the
  body, until there is none.

A cursor or next URL that repeats the previous one raises :class:`PagingError` instead of
reading the same page forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests

PageGetter = Callable[[str, dict[str, Any]], tuple[Any, Mapping[str, str]]]
"""``get(path_or_url, params) -> (decoded body, response headers)``."""


class PagingError(Exception):
    """The API's paging answers cannot be followed (a cursor or next URL that does not advance)."""


class Paging(Protocol):
    """A paging style: yields the items of every page of ``path``."""

    items_key: str | None

    def pages(self, get: PageGetter, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]: ...


def dig(body: Any, key: str | None) -> Any:
    """The value at dotted ``key`` of a decoded body (the body itself for None; None when absent)."""
    if key is None:
        return body
    value = body
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def items_of(body: Any, key: str | None) -> list[Any]:
    """The list of items at ``key`` (empty for a missing key or an empty body)."""
    value = dig(body, key)
    return list(value) if isinstance(value, list) else []


@dataclass(frozen=True)
class OffsetPaging:
    """``limit``/``offset`` paging; ``total_key`` names the collection size when the API sends it."""

    page_size: int = 100
    limit_param: str = "limit"
    offset_param: str = "offset"
    items_key: str | None = None
    total_key: str | None = "total"
    stop_on_short_page: bool = False

    def pages(self, get: PageGetter, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        offset = 0
        while True:
            query = {**params, self.limit_param: self.page_size, self.offset_param: offset}
            body, _ = get(path, query)
            items = items_of(body, self.items_key)
            yield items
            offset += len(items)
            total = dig(body, self.total_key) if self.total_key else None
            if not items or (total is not None and offset >= int(total)):
                return
            if self.stop_on_short_page and len(items) < self.page_size:
                return


def skip_select(page_size: int = 1000) -> OffsetPaging:
    """``select``/``skip`` paging of a bare list that ends at a page shorter than ``select``."""
    return OffsetPaging(
        page_size=page_size,
        limit_param="select",
        offset_param="skip",
        items_key=None,
        total_key=None,
        stop_on_short_page=True,
    )


@dataclass(frozen=True)
class CursorPaging:
    """Cursor paging: the body's ``next_key`` names the next page's ``cursor_param``."""

    cursor_param: str = "cursor"
    next_key: str = "next"
    items_key: str | None = "data"
    page_size: int | None = None
    size_param: str = "limit"

    def pages(self, get: PageGetter, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        cursor = ""
        while True:
            query = dict(params)
            if self.page_size:
                query[self.size_param] = self.page_size
            if cursor:
                query[self.cursor_param] = cursor
            body, _ = get(path, query)
            yield items_of(body, self.items_key)
            following = dig(body, self.next_key)
            if not following:
                return
            if str(following) == cursor:
                raise PagingError(f"{path}: the next-page cursor repeats the current one ({self.next_key})")
            cursor = str(following)


def next_link(headers: Mapping[str, str]) -> str:
    """The ``rel="next"`` URL of a ``Link`` header, or ""."""
    value = headers.get("Link") or headers.get("link") or ""
    for link in requests.utils.parse_header_links(value) if value else []:
        if "next" in str(link.get("rel", "")).split():
            return str(link.get("url") or "")
    return ""


@dataclass(frozen=True)
class LinkPaging:
    """Next-URL paging: the ``Link`` header's ``rel="next"``, else the body's ``next_url_key``."""

    items_key: str | None = "data"
    next_url_key: str | None = None
    page_size: int | None = None
    size_param: str = "limit"

    def pages(self, get: PageGetter, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        query = dict(params)
        if self.page_size:
            query[self.size_param] = self.page_size
        target = path
        while True:
            body, headers = get(target, query)
            yield items_of(body, self.items_key)
            following = next_link(headers)
            if not following and self.next_url_key:
                following = str(dig(body, self.next_url_key) or "")
            if not following:
                return
            if following == target:
                raise PagingError(f"{path}: the next-page URL repeats the current one")
            target, query = following, {}

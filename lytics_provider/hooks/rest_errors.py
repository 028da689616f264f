"""Error envelopes of the REST hook base: the text of a vendor's 4xx/5xx body.

A hook's ``error_text`` turns an error response into the words that end up in the task's error.
Every vendor shares the frame (a body that is not JSON, or not the vendor's envelope, is shown
cut to 300 characters); only the reading of the envelope differs, so a vendor writes that part
alone and :func:`error_reader` adds the frame::

    @error_reader
    def acme_error(body: dict[str, Any]) -> str | None:
        \"\"\"The text of an Acme error body (``{"error": {"message": ...}}``).\"\"\"
        return str(body["error"]["message"]) if isinstance(body.get("error"), dict) else None

    class AcmeHook(RestHook):
        error_text = staticmethod(acme_error)

:func:`code_and_message` is the reader of the common ``{"<code>": ..., "<message>": ...}`` envelope.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

SHOWN_CHARS = 300
"""Characters of a body shown when it is not the vendor's envelope."""

BodyReader = Callable[[Any], "str | None"]
"""Reads a decoded error body; None when the body is not the vendor's envelope."""


def error_reader(read: BodyReader | None = None, *, shapes: tuple[type, ...] = (dict,)) -> Any:
    """Make a hook's ``error_text`` from ``read``, which gets the decoded body when it is one of
    ``shapes`` (a JSON object by default) and returns its text, or None to show the body as it is.

    Used bare (``@error_reader``) or with ``shapes`` (``@error_reader(shapes=(dict, list))``).

    :param read: the reader of the vendor's envelope.
    :param shapes: the JSON types ``read`` is given; any other body is shown as it is.
    """
    if read is None:
        return functools.partial(error_reader, shapes=shapes)

    @functools.wraps(read)
    def text(response: Any) -> str:
        try:
            body = response.json()
        except ValueError:
            return str(response.text)[:SHOWN_CHARS]
        found = read(body) if isinstance(body, shapes) else None
        return str(body)[:SHOWN_CHARS] if found is None else found

    return text


def code_and_message(code: str, message: str) -> Callable[[Any], str]:
    """The ``error_text`` of an envelope with a code and a message: ``"<code>: <message>"``, either
    alone when the other is empty.

    :param code: the key of the error code (or title).
    :param message: the key of the message (or detail).
    """

    @error_reader
    def read(body: dict[str, Any]) -> str | None:
        if not (body.get(code) or body.get(message)):
            return None
        return f"{body.get(code) or ''}: {body.get(message) or ''}".strip(": ")

    return read

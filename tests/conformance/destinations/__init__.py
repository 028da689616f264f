"""The registered destinations: how to configure a job of each type against its stand-in, and how
to read back what the stand-in received.

A destination registers by its own module in this package, which defines ``DESTINATION`` (or a
list ``DESTINATIONS``): a :class:`Destination` whose ``setup`` gets the shared :class:`Stands`
(servers started once per session) and returns a :class:`Target` for one test: the job config, the
secret that must never reach a log, and readers of the stand-in's state. A destination that needs
its own server defines a session-scoped fixture in the same module and names it in ``stand``; the
suite's ``conftest.py`` collects those fixtures. Nothing central is edited to add one.
"""

from __future__ import annotations

import csv
import importlib
import io
import pkgutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, Literal

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer

AUDIENCE = "conformance"
Semantic = Literal["churn", "replace"]
"""``churn``: a Keep Updated run sends only enters (and exits, when the destination removes them);
``replace``: each run writes the whole audience to one place (a new file, or the swapped-in table)
and leaves everything else as it was."""


@dataclass
class Stands:
    """The stand-ins a test's destination asked for (by fixture name), and the test's private names.

    ``stands.<fixture name>`` is the value of that session fixture (``stands.sftp_stand``).
    """

    lytics: Any
    servers: dict[str, Any] = field(default_factory=dict)
    monkeypatch: Any = None
    cleanup: ExitStack = field(default_factory=ExitStack)
    """Closed after the test: context managers a destination entered for it."""
    name: str = field(default_factory=lambda: f"c{uuid.uuid4().hex[:10]}")

    def __getattr__(self, name: str) -> Any:
        servers = self.__dict__.get("servers") or {}
        if name in servers:
            return servers[name]
        raise AttributeError(f"no stand-in {name!r}; name its fixture in the destination's stand")


@dataclass
class Target:
    """One destination set up for one test."""

    config: dict[str, Any]
    secret: str
    held: Callable[[], set[str]]
    """Keys of the members the destination holds now (sync) or in its newest file (file drop)."""
    received: Callable[[], int]
    """Member rows the destination has accepted since the test began (every send counts)."""
    state: Callable[[], dict[str, bytes]]
    """Everything at the destination, to show that a run changed nothing else."""
    break_credentials: Callable[[], None]
    """Make the destination refuse the job permanently (a wrong password, token or bucket)."""
    interrupt: Callable[[], Any]
    """A context manager: delivery fails part-way while it is active."""


@dataclass(frozen=True)
class Destination:
    """A destination's registration in the conformance suite."""

    name: str
    job_type: str
    semantic: Semantic
    setup: Callable[[Stands], Target]
    key: Callable[[dict[str, Any]], str | None]
    """The key the destination holds a member under; None when the member must land in rejects."""
    removes_exits: bool = False
    rejects: bool = True
    """Members can be rejected (bad rows land in a rejects file with reasons)."""
    stand: str | tuple[str, ...] = ()
    """The session fixtures (stand-ins) the destination needs, beyond the Lytics stand-in."""
    interruptible: bool = True
    """``Target.interrupt`` makes a delivery fail part-way (False: no fault injection in the stand-in yet)."""

    @property
    def stands(self) -> tuple[str, ...]:
        return (self.stand,) if isinstance(self.stand, str) else tuple(self.stand)


def destination_modules() -> list[ModuleType]:
    """This package's modules, each one destination's registration (``_``-prefixed ones are helpers)."""
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
        if not info.name.startswith("_")
    ]


def registered() -> list[Destination]:
    """Every registered destination, by name."""
    found: list[Destination] = []
    for module in destination_modules():
        one = getattr(module, "DESTINATION", None)
        found.extend([one] if one is not None else getattr(module, "DESTINATIONS", []))
    names = [d.name for d in found]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise AssertionError(f"destinations registered twice: {duplicated}")
    return sorted(found, key=lambda d: d.name)


# -- readers shared by the registrations --------------------------------------------------------------


def valid_email(member: dict[str, Any]) -> str | None:
    email = member.get("email") or ""
    return email if "@" in email else None


def uid(member: dict[str, Any]) -> str | None:
    return member["_uid"]


def csv_column(body: bytes, column: int | str) -> list[str]:
    """The values of one column (an index, skipping the header, or a header name) of a CSV body."""
    text = body.decode("utf-8")
    if isinstance(column, int):
        return [row[column] for row in list(csv.reader(io.StringIO(text, newline="")))[1:]]
    return [row[column] for row in csv.DictReader(io.StringIO(text, newline=""))]


def count_bodies(server: SandboxHTTPServer, route_name: str, count: Callable[[Request], int]) -> list[int]:
    """Wrap a route's handler so every request it serves (2xx) adds ``count(request)`` to a list."""
    seen: list[int] = []
    for index, route in enumerate(server.routes):
        if route.name != route_name:
            continue
        handler = route.handler

        def counted(request: Request, handler: Callable[[Request], Response] = handler) -> Response:
            response = handler(request)
            if 200 <= response.status < 300:
                seen.append(count(request))
            return response

        server.routes[index] = replace(route, handler=counted)
    return seen


@contextmanager
def failing(
    monkeypatch: Any, owner: Any, name: str, message: str = "connection lost mid-delivery"
) -> Iterator[None]:
    """While active, ``owner.name`` raises ``ConnectionError`` instead of running (a lost connection)."""
    original = getattr(owner, name)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError(message)

    monkeypatch.setattr(owner, name, broken)
    try:
        yield
    finally:
        monkeypatch.setattr(owner, name, original)


@dataclass
class ObjectStoreReadback:
    """What a ``replace`` destination holds in a bucket whose objects are gzip CSVs keyed by ``_uid``.

    :param objects: every object's body by name, oldest first.
    """

    objects: Callable[[], dict[str, bytes]]

    @staticmethod
    def keys(body: bytes) -> list[str]:
        import gzip

        return csv_column(gzip.decompress(body), "_uid")

    def held(self) -> set[str]:
        found = list(self.objects().values())
        return set(self.keys(found[-1])) if found else set()

    def received(self) -> int:
        return sum(len(self.keys(body)) for body in self.objects().values())

    def target(self, config: dict[str, Any], secret: str, interrupt: Callable[[], Any]) -> Target:
        def break_credentials() -> None:
            config["bucket"] = f"{config['bucket']}-missing"

        return Target(config, secret, self.held, self.received, self.objects, break_credentials, interrupt)

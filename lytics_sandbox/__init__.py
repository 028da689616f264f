"""Loopback sandboxes for tests and demos: a Lytics API emulator and an SFTP server.

Names are imported lazily so ``import lytics_sandbox`` stays cheap (asyncssh is only
needed by :class:`SFTPSandbox`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lytics_sandbox.faults import FaultPlan, FaultRule
    from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.sftp import SFTPSandbox
    from lytics_sandbox.synth import Audience, SyntheticAccount

_EXPORTS = {
    "Audience": "synth",
    "SyntheticAccount": "synth",
    "FaultPlan": "faults",
    "FaultRule": "faults",
    "Request": "httpserver",
    "Response": "httpserver",
    "SandboxHTTPServer": "httpserver",
    "json_response": "httpserver",
    "LyticsSandbox": "lytics",
    "SFTPSandbox": "sftp",
}

__all__ = [
    "Audience",
    "FaultPlan",
    "FaultRule",
    "LyticsSandbox",
    "Request",
    "Response",
    "SFTPSandbox",
    "SandboxHTTPServer",
    "SyntheticAccount",
    "json_response",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

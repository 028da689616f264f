"""The GA4 Measurement Protocol's documented limits, checked before anything is sent.

``/mp/collect`` answers 2xx to every request, valid or not, and drops what breaks a rule; only the
validation server (``/debug/mp/collect``) says why. So every request is checked here first and a
member whose event would be dropped lands in the rejects with the rule it breaks (the validation
server's ``validationCode`` and a description in its manner).

Source: "Measurement Protocol reference" and "Validate events" (limitations, reserved names),
https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference and
https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_EVENTS_PER_REQUEST = 25
MAX_PARAMS_PER_EVENT = 25
MAX_USER_PROPERTIES = 25
MAX_NAME_LENGTH = 40
"""Event and parameter names."""
MAX_USER_PROPERTY_NAME_LENGTH = 24
MAX_USER_PROPERTY_VALUE_LENGTH = 36
MAX_PARAM_VALUE_LENGTH = 100
MAX_BODY_BYTES = 130_000
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_", "gtag.")
RESERVED_EVENT_NAMES = frozenset(
    {
        "ad_activeview", "ad_click", "ad_exposure", "ad_impression", "ad_query", "ad_reward",
        "adunit_exposure", "app_background", "app_clear_data", "app_exception", "app_remove",
        "app_store_refund", "app_store_subscription_cancel", "app_store_subscription_convert",
        "app_store_subscription_renew", "app_update", "app_upgrade", "dynamic_link_app_open",
        "dynamic_link_app_update", "dynamic_link_first_open", "error", "first_open", "first_visit",
        "in_app_purchase", "notification_dismiss", "notification_foreground", "notification_open",
        "notification_receive", "os_update", "session_start", "session_start_with_rollout",
        "user_engagement",
    }
)  # fmt: skip
RESERVED_PARAM_NAMES = frozenset({"firebase_conversion"})
RESERVED_USER_PROPERTY_NAMES = frozenset(
    {"first_open_after_install", "first_open_time", "first_visit_time", "last_deep_link_referrer", "user_id"}
)


@dataclass(frozen=True)
class Violation:
    """One broken rule, as the validation server would report it."""

    field_path: str
    code: str
    description: str

    def __str__(self) -> str:
        return f"{self.code} at {self.field_path}: {self.description}"


def name_problem(name: str, what: str, reserved: frozenset[str] = frozenset()) -> Violation | None:
    """Why ``name`` cannot be an event / parameter name (None when it can)."""
    if not NAME.fullmatch(name):
        return Violation(
            what,
            "NAME_INVALID",
            f"{what} name {name!r} must start with a letter and hold only letters, digits and underscores",
        )
    if len(name) > MAX_NAME_LENGTH:
        return Violation(
            what, "NAME_INVALID", f"{what} name {name!r} is longer than {MAX_NAME_LENGTH} characters"
        )
    if name in reserved or name.startswith(RESERVED_PREFIXES):
        return Violation(what, "NAME_RESERVED", f"{what} name {name!r} is reserved by Google Analytics")
    return None


def event_name_problem(name: str) -> Violation | None:
    return name_problem(name, "event", RESERVED_EVENT_NAMES)


def param_name_problem(name: str) -> Violation | None:
    return name_problem(name, "param", RESERVED_PARAM_NAMES)


def user_property_name_problem(name: str) -> Violation | None:
    if not NAME.fullmatch(name) or len(name) > MAX_USER_PROPERTY_NAME_LENGTH:
        return Violation(
            "user_properties",
            "NAME_INVALID",
            f"user property name {name!r} must be a letter, then letters, digits or underscores, at most "
            f"{MAX_USER_PROPERTY_NAME_LENGTH} characters",
        )
    if name in RESERVED_USER_PROPERTY_NAMES or name.startswith(RESERVED_PREFIXES):
        return Violation("user_properties", "NAME_RESERVED", f"user property name {name!r} is reserved")
    return None


def _value_problem(path: str, value: Any, limit: int) -> Violation | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return Violation(
            path, "VALUE_INVALID", f"{path} must be a string or a number, not {type(value).__name__}"
        )
    if isinstance(value, str) and len(value) > limit:
        return Violation(
            path, "VALUE_OUT_OF_BOUNDS", f"{path} is {len(value)} characters; at most {limit} are accepted"
        )
    return None


def validate_payload(payload: Mapping[str, Any], identifier: str) -> list[Violation]:
    """Every rule one ``/mp/collect`` request body breaks.

    :param identifier: ``client_id`` (gtag.js streams) or ``app_instance_id`` (Firebase streams).
    """
    found: list[Violation] = []
    if not str(payload.get(identifier) or "").strip():
        found.append(Violation(identifier, "VALUE_REQUIRED", f"{identifier} is required and is empty"))
    events = list(payload.get("events") or [])
    if not events:
        found.append(Violation("events", "VALUE_REQUIRED", "a request carries at least one event"))
    if len(events) > MAX_EVENTS_PER_REQUEST:
        found.append(
            Violation(
                "events", "EXCEEDED_MAX_ENTITIES", f"{len(events)} events; at most {MAX_EVENTS_PER_REQUEST}"
            )
        )
    for index, event in enumerate(events):
        problem = event_name_problem(str(event.get("name") or ""))
        if problem:
            found.append(Violation(f"events[{index}].name", problem.code, problem.description))
        params = dict(event.get("params") or {})
        if len(params) > MAX_PARAMS_PER_EVENT:
            found.append(
                Violation(
                    f"events[{index}].params",
                    "EXCEEDED_MAX_ENTITIES",
                    f"{len(params)} params; at most {MAX_PARAMS_PER_EVENT} per event",
                )
            )
        for name, value in params.items():
            path = f"events[{index}].params.{name}"
            problem = param_name_problem(name) or _value_problem(path, value, MAX_PARAM_VALUE_LENGTH)
            if problem:
                found.append(Violation(path, problem.code, problem.description))
    properties = dict(payload.get("user_properties") or {})
    if len(properties) > MAX_USER_PROPERTIES:
        found.append(
            Violation(
                "user_properties", "EXCEEDED_MAX_ENTITIES", f"at most {MAX_USER_PROPERTIES} user properties"
            )
        )
    for name, holder in properties.items():
        path = f"user_properties.{name}.value"
        value = holder.get("value") if isinstance(holder, Mapping) else holder
        problem = user_property_name_problem(name) or _value_problem(
            path, value, MAX_USER_PROPERTY_VALUE_LENGTH
        )
        if problem:
            found.append(problem)
    size = len(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    if size > MAX_BODY_BYTES:
        found.append(
            Violation("", "VALUE_OUT_OF_BOUNDS", f"the body is {size} bytes; at most {MAX_BODY_BYTES}")
        )
    return found

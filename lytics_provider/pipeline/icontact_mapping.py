"""The iContact default mappings, exactly as the integration documents them.

``icontact_users`` (one record per contact, :func:`map_contact`)
    Every row of :data:`USER_MAPPING`: the source field (the contact's field in iContact's
    snake_case naming; the API's camelCase keys are renamed by :data:`API_TO_SOURCE`), the
    Lytics field, and the transform. ``email(email)`` is LQL ``email()``: trimmed, lower-cased,
    and dropped when it is not an address; ``emaildomain(email)`` is the lower-cased part after
    ``@`` of that address. ``create_date`` (type ``date``) becomes RFC 3339 UTC; a timestamp
    without an offset is read in the job's source timezone (iContact reports US Eastern time).
    Every other field is a string. Empty values are left out, so a blank in iContact never
    erases a value Lytics already holds.

``icontact_activity`` (:func:`event_record` per event, :class:`ProfileAggregate` per contact)
    Each bounce, open, click and unsubscribe becomes one *event* record with its raw fields and a
    stable ``event_id``. The conditional table of :data:`ACTIVITY_MAPPING` is evaluated by
    :class:`ProfileAggregate`, one per contact, with LQL's semantics, over every event the job
    has imported for that contact:

    * ``count(event_type) IF eq(event_type, T)`` → number of events of type ``T``;
    * ``min/max(epochms()) IF ...`` → earliest / latest event time (epoch milliseconds) of the
      matching events;
    * ``map("email", epochms()) IF event_type IN (open, click, unsubscribe)`` →
      ``{"email": latest such time}``;
    * ``set("email") IF ...`` → ``["email"]`` once the contact has such an event;
    * ``valuect(hash(urlmain(event_url)))`` → for events with a URL (clicks): count per
      ``hash(urlmain(url))``, where ``urlmain`` keeps host + path (no scheme, query or
      fragment) and ``hash`` is LQL ``hash.sip``: SipHash-2-4 with key (0, 1) read as a signed
      64-bit integer, written as its decimal string (map keys are strings).

    Fields whose condition never matched are left out (Lytics leaves such fields unset).
    Aggregates merge associatively (:meth:`ProfileAggregate.merge`), so the state of earlier runs
    plus this run's new events gives exactly the values of all events at once; the import
    writes the resulting *profile* record (absolute values, idempotent to replay) for every
    contact whose activity changed.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

DEFAULT_SOURCE_TIMEZONE = "America/New_York"
EVENT_TYPES = ("bounce", "open", "click", "unsubscribe")
ENGAGED = ("open", "click", "unsubscribe")

# iContact API contact keys -> the seed's source field names.
API_TO_SOURCE: dict[str, str] = {
    "contactId": "id",
    "email": "email",
    "prefix": "prefix",
    "firstName": "first_name",
    "lastName": "last_name",
    "suffix": "suffix",
    "street": "street",
    "street2": "street_line_2",
    "city": "city",
    "state": "state",
    "postalCode": "postal_code",
    "phone": "phone",
    "fax": "fax",
    "business": "business",
    "status": "status",
    "bounceCount": "bounce_count",
    "createDate": "create_date",
}


@dataclass(frozen=True)
class UserMapping:
    """One row of the ``icontact_users`` table."""

    source: str
    field: str
    description: str
    type: str
    unique_id: bool = False


@dataclass(frozen=True)
class ActivityMapping:
    """One row of the ``icontact_activity`` table."""

    source: str
    conditional: str
    field: str
    description: str
    type: str
    unique_id: bool = False


USER_MAPPING: tuple[UserMapping, ...] = (
    UserMapping("bounce_count", "ic_bounce_count", "iContact Bounce Count", "string"),
    UserMapping("business", "ic_business", "iContact Business", "string"),
    UserMapping("city", "city", "City", "string"),
    UserMapping("create_date", "ic_user_created", "iContact User Created", "date"),
    UserMapping("email(email)", "email", "Email Address", "string", unique_id=True),
    UserMapping("emaildomain(email)", "email_domain", "Email Domain", "string"),
    UserMapping("fax", "fax", "Fax Number", "string"),
    UserMapping("first_name", "first_name", "First Name", "string"),
    UserMapping("id", "ic_contact_id", "iContact Distinct ID", "string", unique_id=True),
    UserMapping("last_name", "last_name", "Last Name", "string"),
    UserMapping("phone", "phone", "Phone Number", "string"),
    UserMapping("postal_code", "postal_code", "Postal Code", "string"),
    UserMapping("prefix", "prefix", "Prefix", "string"),
    UserMapping("state", "region", "State/Province", "string"),
    UserMapping("status", "ic_status", "iContact Status", "string"),
    UserMapping("street", "street_address", "Street Address", "string"),
    UserMapping("street_line_2", "address_2", "Address Line 2", "string"),
    UserMapping("suffix", "suffix", "Suffix", "string"),
)

_ENGAGED_IF = 'IF event_type IN ("open", "click", "unsubscribe")'

# Per event type: (event type, Lytics field, description), in the seed's row order. The same
# tables drive :data:`ACTIVITY_MAPPING` and :meth:`ProfileAggregate.fields`.
COUNT_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("bounce", "email_bouncect", "Email Bounce Count"),
    ("click", "email_click_ct", "Email Click Count"),
    ("open", "email_open_ct", "Email Open Count"),
    ("unsubscribe", "email_unsubscribect", "Email Unsubscribe Count"),
)
LAST_TIME_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("click", "email_last_click_ts", "Email Last click"),
    ("open", "email_last_open_ts", "Email Last open"),
    ("bounce", "email_lastbounce_ts", "Email Last bounce"),
    ("unsubscribe", "email_lastunsubscribe_ts", "Email Last unsubscribe"),
)
FIRST_TIME_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("click", "email_first_click_ts", "Email First click"),
    ("open", "email_first_open_ts", "First Email Opened"),
    ("bounce", "email_firstbounce_ts", "Email First bounce"),
    ("unsubscribe", "email_firstunsubscribe_ts", "Email First unsubscribe"),
)


def _per_event_type(
    source: str, kind: str, rows: tuple[tuple[str, str, str], ...]
) -> tuple[ActivityMapping, ...]:
    """One ``source IF eq(event_type, T)`` row per event type ``T`` of ``rows``."""
    return tuple(
        ActivityMapping(source, f'IF eq(event_type, "{event}")', name, text, kind)
        for event, name, text in rows
    )


ACTIVITY_MAPPING: tuple[ActivityMapping, ...] = (
    ActivityMapping("contact_id", "", "ic_contact_id", "iContact Distinct ID", "string", unique_id=True),
    *_per_event_type("count(event_type)", "int", COUNT_FIELDS),
    ActivityMapping(
        'map("email", epochms())',
        _ENGAGED_IF,
        "last_channel_activities",
        "Last Activity By Channel",
        "map[string]time",
    ),
    *_per_event_type("max(epochms())", "date", LAST_TIME_FIELDS),
    ActivityMapping("max(epochms())", _ENGAGED_IF, "last_active_ts", "Last Active", "date"),
    *_per_event_type("min(epochms())", "date", FIRST_TIME_FIELDS),
    ActivityMapping('set("email")', _ENGAGED_IF, "channels", "All Channels Used", "[]string"),
    ActivityMapping(
        "valuect(hash(urlmain(event_url)))", "", "hashedurls", "Hashed Urls Visited", "map[string]intsum"
    ),
)

# -- LQL functions --------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def lql_email(value: Any) -> str | None:
    """LQL ``email()``: the trimmed, lower-cased address, or None when it is not one."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if _EMAIL.match(text) else None


def lql_emaildomain(value: Any) -> str | None:
    """LQL ``emaildomain()``: the domain of a valid address, lower-cased."""
    address = lql_email(value)
    return address.rpartition("@")[2] if address else None


def urlmain(url: Any) -> str | None:
    """LQL ``urlmain()``: host + path, without scheme, query string or fragment."""
    if not isinstance(url, str) or not url.strip():
        return None
    parts = urlsplit(url.strip())
    main = f"{parts.netloc}{parts.path}"
    return main or None


_M64 = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M64


def siphash24(k0: int, k1: int, data: bytes) -> int:
    """SipHash-2-4 of ``data`` with the 128-bit key ``(k0, k1)``; an unsigned 64-bit int."""
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573

    def rounds(n: int) -> None:
        nonlocal v0, v1, v2, v3
        for _ in range(n):
            v0 = (v0 + v1) & _M64
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _M64
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _M64
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _M64
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)

    tail = len(data) % 8
    for (m,) in struct.iter_unpack("<Q", data[: len(data) - tail]):
        v3 ^= m
        rounds(2)
        v0 ^= m
    last = (len(data) & 0xFF) << 56
    for i, byte in enumerate(data[len(data) - tail :]):
        last |= byte << (8 * i)
    v3 ^= last
    rounds(2)
    v0 ^= last
    v2 ^= 0xFF
    rounds(4)
    return v0 ^ v1 ^ v2 ^ v3


def lql_hash(text: str) -> str:
    """LQL ``hash()`` (``hash.sip``): SipHash-2-4 key (0, 1) as a signed 64-bit int, as text."""
    value = siphash24(0, 1, text.encode())
    return str(value - (1 << 64) if value >= 1 << 63 else value)


def parse_time(value: Any, tz: str = DEFAULT_SOURCE_TIMEZONE) -> datetime | None:
    """An iContact timestamp (ISO 8601, ``T`` or space, optional offset) as an aware datetime."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.year < 1971 or text.startswith("0000"):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed


def epochms(value: Any, tz: str = DEFAULT_SOURCE_TIMEZONE) -> int | None:
    """LQL ``epochms()`` of an iContact timestamp."""
    parsed = parse_time(value, tz)
    return None if parsed is None else int(parsed.timestamp() * 1000)


def rfc3339(value: Any, tz: str = DEFAULT_SOURCE_TIMEZONE) -> str | None:
    """An iContact timestamp as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    parsed = parse_time(value, tz)
    return None if parsed is None else parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- icontact_users -------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def source_fields(contact: dict[str, Any]) -> dict[str, Any]:
    """An API contact renamed to the seed's source field names (unknown keys are dropped)."""
    return {API_TO_SOURCE[key]: value for key, value in contact.items() if key in API_TO_SOURCE}


def _transform(row: UserMapping, tz: str) -> Callable[[dict[str, Any]], Any]:
    if row.source == "email(email)":
        return lambda src: lql_email(src.get("email"))
    if row.source == "emaildomain(email)":
        return lambda src: lql_emaildomain(src.get("email"))
    if row.type == "date":
        return lambda src: rfc3339(src.get(row.source), tz)
    return lambda src: _text(src.get(row.source))


@dataclass
class ContactResult:
    """A mapped contact, or why it could not be imported; ``notes`` lists dropped bad values."""

    record: dict[str, Any] | None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


class ContactMapper:
    """Apply :data:`USER_MAPPING` to API contacts."""

    def __init__(self, source_timezone: str = DEFAULT_SOURCE_TIMEZONE) -> None:
        ZoneInfo(source_timezone)
        self.rows = [(row, _transform(row, source_timezone)) for row in USER_MAPPING]

    def map(self, contact: dict[str, Any]) -> ContactResult:
        """One ``icontact_users`` record; a contact without an id is rejected."""
        src = source_fields(contact)
        if _text(src.get("id")) is None:
            return ContactResult(None, "contact has no contactId")
        record: dict[str, Any] = {}
        notes: list[str] = []
        for row, transform in self.rows:
            value = transform(src)
            if value is not None:
                record[row.field] = value
            elif row.source == "email(email)" and _text(src.get("email")):
                notes.append("email is not a valid address; email and email_domain left out")
            elif row.type == "date" and _text(src.get(row.source)):
                notes.append(f"{row.source} is not a timestamp; {row.field} left out")
        return ContactResult(record, None, notes)


# -- icontact_activity ----------------------------------------------------------------------------

ACTIVITY_KINDS: dict[str, tuple[str, str]] = {
    # collection key -> (event_type, time field)
    "bounces": ("bounce", "bounceTime"),
    "opens": ("open", "openTime"),
    "clicks": ("click", "clickTime"),
    "unsubscribes": ("unsubscribe", "unsubscribeTime"),
}


@dataclass(frozen=True)
class Event:
    """One activity event read from a message's activity collection."""

    message_id: str
    event_type: str
    contact_id: str
    time: str
    ts: int
    url: str | None = None

    @property
    def event_id(self) -> str:
        """Stable id: message, type, contact, time in ms and (for clicks) the hashed URL."""
        tail = f":{lql_hash(self.url)}" if self.url else ""
        return f"{self.message_id}:{self.event_type}:{self.contact_id}:{self.ts}{tail}"


def read_event(
    message_id: str, collection: str, row: dict[str, Any], tz: str = DEFAULT_SOURCE_TIMEZONE
) -> Event | str:
    """An :class:`Event` from one activity row, or the reason it cannot be used."""
    event_type, time_field = ACTIVITY_KINDS[collection]
    contact_id = _text(row.get("contactId"))
    if contact_id is None:
        return f"{event_type} without contactId"
    raw_time = row.get(time_field)
    ts = epochms(raw_time, tz)
    if ts is None:
        return f"{event_type} with unreadable {time_field} {str(raw_time)[:40]!r}"
    url = _text(row.get("clickLink")) if event_type == "click" else None
    return Event(str(message_id), event_type, contact_id, rfc3339(raw_time, tz) or "", ts, url)


def event_record(event: Event) -> dict[str, Any]:
    """The ``icontact_activity`` record of one event (raw fields)."""
    record: dict[str, Any] = {
        "record_type": "event",
        "event_id": event.event_id,
        "ic_contact_id": event.contact_id,
        "contact_id": event.contact_id,
        "message_id": event.message_id,
        "event_type": event.event_type,
        "event_time": event.time,
        "epochms": event.ts,
    }
    if event.url:
        record["event_url"] = event.url
    return record


@dataclass
class ProfileAggregate:
    """The seed's conditional aggregations for one contact; see the module docstring."""

    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    hashedurls: dict[str, int] = field(default_factory=dict)

    def add(self, event_type: str, ts: int, url: str | None = None) -> None:
        """Account for one event."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        self.counts[event_type] = self.counts.get(event_type, 0) + 1
        self.first[event_type] = min(self.first.get(event_type, ts), ts)
        self.last[event_type] = max(self.last.get(event_type, ts), ts)
        main = urlmain(url)
        if main:
            key = lql_hash(main)
            self.hashedurls[key] = self.hashedurls.get(key, 0) + 1

    def add_event(self, event: Event) -> None:
        """Account for one :class:`Event`."""
        self.add(event.event_type, event.ts, event.url)

    def merge(self, other: ProfileAggregate) -> ProfileAggregate:
        """Fold ``other`` into this aggregate (associative and commutative); return self."""
        for kind, count in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + count
        for kind, ts in other.first.items():
            self.first[kind] = min(self.first.get(kind, ts), ts)
        for kind, ts in other.last.items():
            self.last[kind] = max(self.last.get(kind, ts), ts)
        for key, count in other.hashedurls.items():
            self.hashedurls[key] = self.hashedurls.get(key, 0) + count
        return self

    def fields(self) -> dict[str, Any]:
        """The Lytics user fields of :data:`ACTIVITY_MAPPING` (without ``ic_contact_id``)."""
        out: dict[str, Any] = {}
        for kind, name, _ in COUNT_FIELDS:
            if self.counts.get(kind):
                out[name] = self.counts[kind]
        engaged = [self.last[k] for k in ENGAGED if k in self.last]
        if engaged:
            out["last_channel_activities"] = {"email": max(engaged)}
        out.update({name: self.last[kind] for kind, name, _ in LAST_TIME_FIELDS if kind in self.last})
        if engaged:
            out["last_active_ts"] = max(engaged)
        out.update({name: self.first[kind] for kind, name, _ in FIRST_TIME_FIELDS if kind in self.first})
        if engaged:
            out["channels"] = ["email"]
        if self.hashedurls:
            out["hashedurls"] = dict(sorted(self.hashedurls.items()))
        return out

    def to_state(self) -> dict[str, Any]:
        """JSON-safe state for :meth:`from_state`."""
        return {"c": self.counts, "f": self.first, "l": self.last, "h": self.hashedurls}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> ProfileAggregate:
        """Rebuild an aggregate saved with :meth:`to_state`."""
        state = state or {}
        return cls(
            dict(state.get("c") or {}),
            dict(state.get("f") or {}),
            dict(state.get("l") or {}),
            dict(state.get("h") or {}),
        )

    @classmethod
    def of(cls, events: Iterable[Event]) -> ProfileAggregate:
        """The aggregate of ``events``."""
        agg = cls()
        for event in events:
            agg.add_event(event)
        return agg


def profile_record(contact_id: str, aggregate: ProfileAggregate) -> dict[str, Any]:
    """The ``icontact_activity`` profile record of one contact (absolute values)."""
    return {"record_type": "profile", "ic_contact_id": contact_id, **aggregate.fields()}

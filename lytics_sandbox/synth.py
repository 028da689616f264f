"""Deterministic synthetic Lytics account: audiences, user profiles and schema.

Nothing proportional to an audience's size is ever stored. Users are numbered by a global index
``i >= 0`` and every profile is a pure function of ``(seed, i, rev(i))``.

Membership (audience ``A`` declared with size ``N``, base offset ``b``, churn per version step
``e`` exits, ``n`` enters, ``c`` changes, current version ``v``):

* members of version ``v`` = global indices ``range(b + v*e, b + N + v*n)``, in that order;
  member ``k`` is user ``b + v*e + k`` and the size is ``N + v*(n - e)``;
* step ``v-1 -> v`` therefore removes users ``range(b + (v-1)*e, b + v*e)`` and adds users
  ``range(b + N + (v-1)*n, b + N + v*n)``;
* step ``t`` (1-based) changes field values of users ``range(b + N//2 + (t-1)*c, b + N//2 + t*c)``;
  all of them are members on both sides of the step (so a diff of versions ``t-1`` and ``t`` shows
  exactly ``e`` removed, ``n`` added and ``c`` changed) whenever ``t*e <= N//2 + (t-1)*c`` and
  ``N//2 + t*c <= N + (t-1)*n``, which the default churn meets at every version.

``rev(i)`` = how many (audience, step <= its version) pairs changed user ``i``. A change moves
``score_engagement`` (by 37 mod 101), ``scores.momentum`` and ``last_active_ts``; identity fields
(``_uid``, ``email``, ``user_id``, names) never change. ``segments`` lists the audiences whose
current window contains the user.

Base offsets: the largest audience (first one on ties) starts at 0; every other audience starts at
``sha256(slug) mod (largest_size - size + 1)``, so at version 0 each is a subset of the largest.
Default churn per step: ``max(1, N // 20)`` for each of exits, enters and changes.
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_AUDIENCES: dict[str, int] = {"all_users": 2000, "high_value": 500, "newsletter": 1000}

_M64 = (1 << 64) - 1
_EPOCH = 1_672_531_200  # 2023-01-01T00:00:00Z
_TWO_YEARS = 2 * 365 * 86_400
_HALF_YEAR = 182 * 86_400
_UID_MASK = (1 << 48) - 1

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ben", "Chloe", "Dara", "Elena", "Finn", "Grace", "Hugo", "Ines", "Jonas",
    "Kai", "Lena", "Liam", "Maya", "Mateo", "Nina", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara",
    "Umar", "Vera", "Wen", "Xavier", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen", "Khan",
    "Lopez", "Moreau", "Novak", "Okafor", "Patel", "Quist", "Rossi", "Silva", "Tanaka", "Usman",
    "Varga", "Weber", "Xu", "Yilmaz", "Zimmer",
)  # fmt: skip
CITIES = (
    ("London", "GB"), ("Manchester", "GB"), ("Dublin", "IE"), ("Paris", "FR"), ("Lyon", "FR"),
    ("Berlin", "DE"), ("Munich", "DE"), ("Madrid", "ES"), ("Lisbon", "PT"), ("Amsterdam", "NL"),
    ("New York", "US"), ("Chicago", "US"), ("Portland", "US"), ("Austin", "US"), ("Toronto", "CA"),
    ("Sydney", "AU"), ("Tokyo", "JP"), ("Singapore", "SG"), ("Cape Town", "ZA"), ("Sao Paulo", "BR"),
)  # fmt: skip

_EMAIL_RE = re.compile(r"^[a-z]+\.[a-z]+(\d+)@example\.com$")
_USER_ID_RE = re.compile(r"^u(\d+)$")

SCHEMA_FIELDS: tuple[tuple[str, str, str, bool, bool], ...] = (
    # id, type, shortdesc, is_identifier, is_pii
    ("_uid", "string", "Lytics unique id", True, False),
    ("email", "string", "Email Address", True, True),
    ("user_id", "string", "User ID", True, False),
    ("first_name", "string", "First Name", False, True),
    ("last_name", "string", "Last Name", False, True),
    ("city", "string", "City", False, False),
    ("country", "string", "Country (ISO 3166-1 alpha-2)", False, False),
    ("score_engagement", "int", "Engagement score (0-100)", False, False),
    ("scores", "map[string]number", "Behavioral scores", False, False),
    ("segments", "[]string", "Audience memberships", False, False),
    ("created_ts", "date", "Profile creation time", False, False),
    ("last_active_ts", "date", "Last activity time", False, False),
    ("_created", "date", "First seen", False, False),
)


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def stable_hex(text: str, length: int = 32) -> str:
    """Stable lowercase hex digest of ``text`` (Lytics ids are 32 hex characters)."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


_DAYS: dict[int, str] = {}
_HHMM = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
_SS = [f"{s:02d}" for s in range(60)]


def rfc3339(ts: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for a Unix timestamp (UTC); the date part is memoised per day."""
    day, sec = divmod(int(ts), 86_400)
    date = _DAYS.get(day)
    if date is None:
        date = time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))
        if len(_DAYS) < 100_000:
            _DAYS[day] = date
    minute, second = divmod(sec, 60)
    return date + "T" + _HHMM[minute] + ":" + _SS[second] + "Z"


@dataclass
class Audience:
    """One audience (Lytics segment of kind ``segment`` on table ``user``); see module docstring."""

    slug: str
    declared_size: int
    base: int = 0
    exits: int = 0
    enters: int = 0
    changes: int = 0
    version: int = 0
    account_id: str = ""

    def __post_init__(self) -> None:
        if self.declared_size < 0:
            raise ValueError(f"audience {self.slug!r}: size must be >= 0")
        self.id = stable_hex(f"segment:{self.slug}")
        self.name = self.slug.replace("_", " ").replace("-", " ").title()
        self.created = rfc3339(_EPOCH + int(self.id[:6], 16) % _TWO_YEARS)

    kind = "segment"
    table = "user"

    def size_at(self, version: int) -> int:
        return self.declared_size + version * (self.enters - self.exits)

    @property
    def size(self) -> int:
        """Member count at the current version."""
        return self.size_at(self.version)

    def window(self, version: int | None = None) -> range:
        """Global user indices of the members, in scan order."""
        v = self.version if version is None else version
        return range(self.base + v * self.exits, self.base + self.declared_size + v * self.enters)

    def member_index(self, k: int, version: int | None = None) -> int:
        """Global index of member ``k`` (0-based position in scan order)."""
        w = self.window(version)
        if not 0 <= k < len(w):
            raise IndexError(f"member {k} out of range for {self.slug!r} ({len(w)} members)")
        return w.start + k

    def changed_in_step(self, step: int) -> range:
        """Users whose field values change in step ``step`` (version ``step-1`` -> ``step``)."""
        start = self.base + self.declared_size // 2 + (step - 1) * self.changes
        return range(start, start + self.changes)

    def rev_of(self, i: int, version: int | None = None) -> int:
        """How many steps up to ``version`` changed user ``i`` (0 or 1 with this formula)."""
        v = self.version if version is None else version
        if v <= 0 or self.changes <= 0:
            return 0
        lo = self.base + self.declared_size // 2
        return 1 if lo <= i < lo + v * self.changes else 0

    def describe(self, sizes: bool = True) -> dict[str, Any]:
        """Segment document in the Lytics ``Segment`` shape."""
        doc: dict[str, Any] = {
            "id": self.id,
            "aid": 0,
            "account_id": self.account_id,
            "name": self.name,
            "slug_name": self.slug,
            "public_name": self.name,
            "description": f"Synthetic audience {self.name}",
            "kind": self.kind,
            "table": self.table,
            "segment_ql": f'FILTER AND (synthetic_audience = "{self.slug}") FROM user ALIAS {self.slug}',
            "is_public": True,
            "save_hist": True,
            "invalid": False,
            "deleted": False,
            "tags": [],
            "created": self.created,
            "updated": self.created,
        }
        if sizes:
            doc["size"] = self.size
        return doc


class SyntheticAccount:
    """A reproducible account; see the module docstring for every formula."""

    def __init__(
        self,
        seed: int = 7,
        audiences: Mapping[str, int] | None = None,
        invalid_email_rate: float = 0.0,
        account_id: str | None = None,
    ) -> None:
        if not 0.0 <= invalid_email_rate <= 1.0:
            raise ValueError("invalid_email_rate must be between 0 and 1")
        self.seed = seed
        self.invalid_email_rate = invalid_email_rate
        self.account_id = account_id or stable_hex(f"account:{seed}")
        self._key = mix64(seed * 0x9E3779B1 + 0x5EED) & _M64
        self._uid_key = mix64(self._key) & _UID_MASK
        self._invalid_cut = int(invalid_email_rate * 1_000_000)
        self.audiences: dict[str, Audience] = {}
        specs = dict(DEFAULT_AUDIENCES if audiences is None else audiences)
        largest = max(specs, key=lambda s: specs[s]) if specs else None
        top = specs[largest] if largest else 0
        for slug, size in specs.items():
            base = 0 if slug == largest else int(stable_hex(slug, 12), 16) % (top - size + 1)
            churn = max(1, size // 20)
            self.audiences[slug] = Audience(slug, size, base, churn, churn, churn, 0, self.account_id)
        self._by_id = {a.id: a for a in self.audiences.values()}

    # -- audiences ---------------------------------------------------------------------------
    def audience(self, key: str) -> Audience:
        """Audience by slug or id; KeyError when unknown."""
        aud = self.audiences.get(key) or self._by_id.get(key)
        if aud is None:
            raise KeyError(key)
        return aud

    def set_version(self, slug: str, version: int) -> Audience:
        """Move an audience to ``version`` (0 = as declared); churn applies per step."""
        aud = self.audience(slug)
        if version < 0 or aud.size_at(version) < 0:
            raise ValueError(f"version {version} is not valid for {aud.slug!r}")
        aud.version = version
        return aud

    def set_churn(
        self, slug: str, exits: int | None = None, enters: int | None = None, changes: int | None = None
    ) -> Audience:
        """Change the per-step churn of an audience in place."""
        aud = self.audience(slug)
        for name, value in (("exits", exits), ("enters", enters), ("changes", changes)):
            if value is not None:
                if value < 0:
                    raise ValueError(f"{name} must be >= 0")
                setattr(aud, name, value)
        return aud

    def with_churn(self, slug: str, exits: int, enters: int, changes: int) -> SyntheticAccount:
        """A copy of this account whose audience ``slug`` uses the given per-step churn."""
        clone = copy.deepcopy(self)
        clone.set_churn(slug, exits, enters, changes)
        return clone

    def universe(self) -> int:
        """Users ``0 .. universe()-1`` exist (the end of the widest current window)."""
        return max((a.window().stop for a in self.audiences.values()), default=0)

    # -- profiles ----------------------------------------------------------------------------
    def _spans(self, versions: Mapping[str, int] | None) -> list[tuple[str, int, int, int, int]]:
        """(slug, window start, window stop, changed lo, changed hi) per audience."""
        vs = versions or {}
        spans = []
        for a in self.audiences.values():
            v = vs.get(a.slug, a.version)
            w = a.window(v)
            lo = a.base + a.declared_size // 2
            hi = lo + v * a.changes if v > 0 else lo
            spans.append((a.slug, w.start, w.stop, lo, hi))
        return spans

    def rev(self, i: int, versions: Mapping[str, int] | None = None) -> int:
        return sum(1 for _, _, _, lo, hi in self._spans(versions) if lo <= i < hi)

    def segments_of(self, i: int, versions: Mapping[str, int] | None = None) -> list[str]:
        return [slug for slug, start, stop, _, _ in self._spans(versions) if start <= i < stop]

    def uid(self, i: int) -> str:
        h = mix64(self._key ^ i)
        return f"{(h >> 16) & _UID_MASK:012x}{i ^ self._uid_key:012x}"

    def email(self, i: int) -> str:
        return self.profile(i)["email"]

    def profile(self, i: int, versions: Mapping[str, int] | None = None) -> dict[str, Any]:
        """Profile of user ``i``; ``versions`` overrides audience versions (slug -> version)."""
        return self.profiler(versions)(i)

    def profiler(self, versions: Mapping[str, int] | None = None) -> Callable[[int], dict[str, Any]]:
        """A fast ``i -> profile`` function for the current (or overridden) audience versions."""
        spans = self._spans(versions)
        key, uid_key, cut = self._key, self._uid_key, self._invalid_cut
        n_first, n_last, n_city = len(FIRST_NAMES), len(LAST_NAMES), len(CITIES)

        def make(i: int) -> dict[str, Any]:
            h = mix64(key ^ i)
            h2 = mix64(h ^ 0xC0FFEE)
            rev = 0
            segments = []
            for slug, start, stop, lo, hi in spans:
                if start <= i < stop:
                    segments.append(slug)
                if lo <= i < hi:
                    rev += 1
            first = FIRST_NAMES[h % n_first]
            last = LAST_NAMES[(h >> 8) % n_last]
            city, country = CITIES[(h >> 16) % n_city]
            created = _EPOCH + (h >> 24) % _TWO_YEARS
            if cut and mix64(h ^ 0xE3A11) % 1_000_000 < cut:
                email = f"not-an-email-{i}"
            else:
                email = f"{first.lower()}.{last.lower()}{i}@example.com"
            created_s = rfc3339(created)
            return {
                "_uid": f"{(h >> 16) & _UID_MASK:012x}{i ^ uid_key:012x}",
                "email": email,
                "user_id": f"u{i}",
                "first_name": first,
                "last_name": last,
                "city": city,
                "country": country,
                "score_engagement": (h2 % 101 + 37 * rev) % 101,
                "scores": {"momentum": ((h2 >> 8) % 10_001 + 3_331 * rev) % 10_001 / 100},
                "segments": segments,
                "created_ts": created_s,
                "last_active_ts": rfc3339(created + ((h2 >> 24) + rev * 86_400) % _HALF_YEAR),
                "_created": created_s,
            }

        return make

    def member(self, slug: str, k: int, version: int | None = None) -> dict[str, Any]:
        """Profile of member ``k`` of an audience."""
        aud = self.audience(slug)
        versions = None if version is None else {aud.slug: version}
        return self.profile(aud.member_index(k, version), versions)

    def iter_members(
        self,
        slug: str,
        start: int = 0,
        stop: int | None = None,
        fields: Iterable[str] | None = None,
        version: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Members ``start .. stop-1`` in scan order, optionally cut down to ``fields`` (+ ``_uid``)."""
        aud = self.audience(slug)
        window = aud.window(version)
        versions = None if version is None else {aud.slug: version}
        keep = select_fields(fields)
        make = self.profiler(versions)
        for i in window[start:stop]:
            p = make(i)
            yield p if keep is None else {k: p[k] for k in keep if k in p}

    # -- lookups -----------------------------------------------------------------------------
    def exists(self, i: int) -> bool:
        return 0 <= i < self.universe()

    def index_from_uid(self, uid: str) -> int | None:
        if len(uid) != 24:
            return None
        try:
            i = int(uid[12:], 16) ^ self._uid_key
        except ValueError:
            return None
        return i if self.exists(i) and self.uid(i) == uid else None

    def index_from_email(self, email: str) -> int | None:
        m = _EMAIL_RE.match(email.strip().lower())
        if m is None:
            tail = email.rpartition("not-an-email-")[2]
            if not email.startswith("not-an-email-") or not tail.isdigit():
                return None
            i = int(tail)
        else:
            i = int(m.group(1))
        return i if self.exists(i) and self.email(i) == email.strip().lower() else None

    def index_from_user_id(self, user_id: str) -> int | None:
        m = _USER_ID_RE.match(user_id)
        if m is None:
            return None
        i = int(m.group(1))
        return i if self.exists(i) and f"u{i}" == user_id else None

    def lookup(self, field: str, value: str) -> int | None:
        """Global index of the user whose identifier ``field`` equals ``value``."""
        finder = {
            "_uid": self.index_from_uid,
            "email": self.index_from_email,
            "user_id": self.index_from_user_id,
        }.get(field)
        return finder(value) if finder else None

    # -- schema ------------------------------------------------------------------------------
    @staticmethod
    def schema() -> list[dict[str, Any]]:
        """User-table fields in the v2 ``Field`` shape."""
        return [
            {"id": fid, "type": ftype, "shortdesc": desc, "is_identifier": ident, "is_pii": pii}
            for fid, ftype, desc, ident, pii in SCHEMA_FIELDS
        ]


def select_fields(fields: Iterable[str] | str | None) -> list[str] | None:
    """Normalise a field selection: comma string or iterable; ``_uid`` always first; None = all."""
    if fields is None:
        return None
    items = fields.split(",") if isinstance(fields, str) else list(fields)
    names = [f.strip() for f in items if f and f.strip()]
    if not names:
        return None
    return ["_uid", *dict.fromkeys(n for n in names if n != "_uid")]

"""Job config errors that name the file, the field and the fix, one line per problem."""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

_PHRASES = (
    ("Input should be a valid integer", "must be a whole number"),
    ("Input should be a valid boolean", "must be true or false"),
    ("Input should be a valid string", "must be text; quote it in the YAML file"),
    ("Input should be a valid list", "must be a list"),
    ("Input should be a valid number", "must be a number"),
    ("Input should be a valid dictionary", "must be a mapping of 'field: value' lines"),
)
# Leading words replaced while the rest of the message is kept ("must be greater than 0").
_PREFIXES = (
    ("Input should", "must"),
    ("String should", "must"),
    ("List should", "must"),
    ("Value should", "must"),
)
_SENSITIVE = re.compile(r"password|secret|token|api_?key|private_key|passphrase", re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where (dotted field path, or None for the whole file) and what."""

    field: str | None
    message: str

    def render(self, path: str) -> str:
        """``path: field 'x': message``, or ``path: message`` for a whole-file problem."""
        where = f"field '{self.field}': " if self.field else ""
        return f"{path}: {where}{self.message}"


def display_path(path: str | os.PathLike[str]) -> str:
    """The path relative to the working directory when it is below it, otherwise as given."""
    try:
        cwd = os.getcwd()
    except OSError:
        return str(path)
    prefix = cwd.rstrip(os.sep) + os.sep
    for absolute in (os.path.abspath(path), os.path.realpath(path)):
        if absolute.startswith(prefix):
            return absolute[len(prefix) :]
    return str(path)


class JobConfigWarning(UserWarning):
    """A job config was rejected while no DagBag was there to record it as an import error."""


class JobConfigError(Exception):
    """A job config file that cannot become a DAG; ``str()`` gives one line per problem."""

    def __init__(self, path: str | os.PathLike[str], problems: Sequence[Problem]) -> None:
        self.path = Path(path)
        self.problems = tuple(problems)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        shown = display_path(self.path)
        return "\n".join(problem.render(shown) for problem in self.problems)

    def __str__(self) -> str:
        return self.message

    @classmethod
    def single(cls, path: str | os.PathLike[str], message: str, field: str | None = None) -> JobConfigError:
        """An error with one problem."""
        return cls(path, [Problem(field, message)])

    @classmethod
    def from_validation_error(
        cls, path: str | os.PathLike[str], exc: ValidationError, model: type[BaseModel]
    ) -> JobConfigError:
        """Translate pydantic's errors into problems a config author can act on."""
        problems: list[Problem] = []
        seen: set[tuple[str | None, str]] = set()
        for error in exc.errors(include_url=False):
            problem = _problem(error, model)
            key = (problem.field, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
        return cls(path, problems)


def _field_path(loc: Iterable[Any]) -> str | None:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif parts:
            parts.append(f".{part}")
        else:
            parts.append(str(part))
    return "".join(parts) or None


def _unwrap(annotation: Any) -> list[Any]:
    """Model classes reachable from an annotation (through Optional, list, dict, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None:
        return []
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset, Sequence):
        return [model for arg in args for model in _unwrap(arg)]
    if origin is dict:
        return _unwrap(args[-1]) if args else []
    return [model for arg in args for model in _unwrap(arg)]


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class that owns the last element of ``loc``."""
    current: type[BaseModel] | None = model
    for part in loc[:-1]:
        if current is None:
            return None
        if not isinstance(part, str) or part not in current.model_fields:
            continue
        candidates = _unwrap(current.model_fields[part].annotation)
        current = candidates[0] if len(candidates) == 1 else None
    return current


def is_secret_name(name: str) -> bool:
    """True for a field name that says it holds a secret (its value is never shown)."""
    return _SENSITIVE.search(name) is not None


def _shown_input(error: dict[str, Any]) -> str:
    """The offending value, never for a field whose name says it holds a secret."""
    names = [part for part in error.get("loc", ()) if isinstance(part, str)]
    if any(is_secret_name(name) for name in names):
        return ""
    value = error.get("input")
    if isinstance(value, dict | list):
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= 60 else text[:57] + '...'})"


def _problem(error: dict[str, Any], model: type[BaseModel]) -> Problem:
    loc = tuple(error.get("loc", ()))
    field = _field_path(loc)
    kind = error.get("type", "")
    owner = _model_at(model, loc) if loc else None
    name = loc[-1] if loc else None

    if kind == "extra_forbidden" and isinstance(name, str):
        valid = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
        if close:
            hint = f"did you mean '{close[0]}'?"
        elif valid:
            hint = f"valid fields are: {', '.join(valid)}"
        else:
            hint = "remove it"
        return Problem(None if len(loc) == 1 else _field_path(loc[:-1]), f"unknown field '{name}'; {hint}")

    if kind == "missing" and isinstance(name, str):
        if name.endswith("conn_id"):
            return Problem(None, f"field '{field}' is required: set it to the id of an Airflow connection")
        info = owner.model_fields.get(name) if owner else None
        what = f" ({info.description.rstrip('.')})" if info is not None and info.description else ""
        return Problem(None, f"field '{field}' is required{what}: add it to the file")

    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes custom validator messages with "Value error, "
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return Problem(field, message[len(prefix) :])
    for phrase, replacement in _PHRASES:
        if message.startswith(phrase):
            return Problem(field, f"{replacement}{_shown_input(error)}")
    for phrase, replacement in _PREFIXES:
        if message.startswith(phrase):
            message = replacement + message[len(phrase) :]
            break
    else:
        message = message[:1].lower() + message[1:]
    return Problem(field, f"{message}{_shown_input(error)}")

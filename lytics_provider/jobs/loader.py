"""Read job config files (YAML) into validated configs; each file stands or falls on its own."""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lytics_provider.jobs.base import JobConfig
from lytics_provider.jobs.errors import JobConfigError, Problem, display_path
from lytics_provider.jobs.schema import job_types

JOB_FILE_SUFFIXES = (".yaml", ".yml")
DAG_ID_PREFIX = "lytics_"

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_SafeLoaderBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _JobYamlLoader(_SafeLoaderBase):  # type: ignore[misc,valid-type]
    """YAML's safe loader (C speed when available) that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key}' appears twice (lines {seen[key]} and {line}); keep one of them",
                    key_node.start_mark,
                )
            if isinstance(key, str):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads 12:30 as the base-60 number 750 and 2026-01-01 as a date; a job file means the
# text "12:30" (Time of Day) and "2026-01-01" (start_date). Numbers keep their other forms.
_JobYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_JobYamlLoader.add_implicit_resolver(
    _INT_TAG,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_JobYamlLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class LoadedJob:
    """A validated job config, the file it came from and the id of its DAG."""

    path: Path
    config: JobConfig
    dag_id: str
    source: str = field(default="", repr=False, compare=False)
    """The file's text as it was validated (shown in the DAG docs)."""


# Validated configs (or their errors) by (file, content hash, registered job types).
_CACHE: dict[tuple[str, str, tuple[type[JobConfig], ...]], tuple[JobConfig, str] | JobConfigError] = {}
_CACHE_LIMIT = 10_000


def default_dag_id(path: str | os.PathLike[str]) -> str:
    """``lytics_<file name without extension>``, with characters a DAG id cannot hold replaced by ``_``."""
    return DAG_ID_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem)


def dag_id_for(path: str | os.PathLike[str], config: JobConfig) -> str:
    """The DAG id of a job: its ``dag_id`` field, else the default from the file name."""
    return config.dag_id or default_dag_id(path)


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_JobYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise JobConfigError.single(
            path, f"YAML syntax error{where}: {problem}; check indentation, colons and quoting there"
        ) from None
    except yaml.YAMLError as exc:
        raise JobConfigError.single(path, f"YAML syntax error: {exc}") from None


def _validate(path: Path, data: Any, types: dict[str, type[JobConfig]]) -> JobConfig:
    valid = ", ".join(types)
    if data is None:
        raise JobConfigError.single(path, f"the file is empty; start it with 'type: <one of {valid}>'")
    if not isinstance(data, dict):
        raise JobConfigError.single(
            path,
            f"the file must hold a mapping of 'field: value' lines, not a {type(data).__name__}; "
            f"start it with 'type: <one of {valid}>'",
        )
    if "type" not in data:
        raise JobConfigError.single(path, f"field 'type' is required: set it to one of: {valid}")
    job_type = data["type"]
    cls = types.get(job_type) if isinstance(job_type, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(job_type), list(types), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise JobConfigError.single(
            path, f"unknown job type {job_type!r}; {hint}valid types are: {valid}", field="type"
        )
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise JobConfigError.from_validation_error(path, exc, cls) from None


def _load(path: Path, types: dict[str, type[JobConfig]]) -> tuple[JobConfig, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise JobConfigError.single(path, f"cannot read the file: {exc.strerror or exc}") from None
    key = (str(path), hashlib.sha256(raw).hexdigest(), tuple(types.values()))
    cached = _CACHE.get(key)
    if cached is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            cached = JobConfigError.single(
                path, f"the file is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            )
        else:
            try:
                cached = (_validate(path, _parse_yaml(path, text), types), text)
            except JobConfigError as exc:
                cached = exc
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[key] = cached
    if isinstance(cached, JobConfigError):
        raise cached
    return cached


def load_job_file(path: str | os.PathLike[str]) -> JobConfig:
    """Read and validate one job config file; raises :class:`JobConfigError` naming file, field and fix."""
    return _load(Path(path), job_types())[0]


def find_job_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` below ``directory``, sorted, skipping hidden files and folders."""
    root = Path(directory)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        found.extend(
            Path(dirpath, name)
            for name in filenames
            if name.endswith(JOB_FILE_SUFFIXES) and not name.startswith(".")
        )
    return sorted(found)


def load_job_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[LoadedJob], list[JobConfigError]]:
    """Validate each file on its own; a DAG id an earlier file already uses is an error on the later file."""
    types = job_types()
    jobs: list[LoadedJob] = []
    errors: list[JobConfigError] = []
    owners: dict[str, Path] = {}
    for entry in paths:
        path = Path(entry)
        try:
            config, source = _load(path, types)
        except JobConfigError as exc:
            errors.append(exc)
            continue
        dag_id = dag_id_for(path, config)
        if dag_id in owners:
            how = "" if config.dag_id else " (from the file name)"
            errors.append(
                JobConfigError(
                    path,
                    [
                        Problem(
                            "dag_id",
                            f"DAG id '{dag_id}'{how} is already used by {display_path(owners[dag_id])}; "
                            "set dag_id to a unique value",
                        )
                    ],
                )
            )
            continue
        owners[dag_id] = path
        jobs.append(LoadedJob(path=path, config=config, dag_id=dag_id, source=source))
    return jobs, errors


def load_jobs(directory: str | os.PathLike[str]) -> tuple[list[LoadedJob], list[JobConfigError]]:
    """Load every job config below ``directory``; returns the good jobs and one error per bad file."""
    root = Path(directory)
    if not root.is_dir():
        return [], [
            JobConfigError.single(
                root,
                "the jobs directory does not exist; create it or point LYTICS_JOBS_DIR at your job configs",
            )
        ]
    return load_job_files(find_job_files(root))


def clear_cache() -> None:
    """Forget every validated config (tests, or after the job types changed)."""
    _CACHE.clear()

"""``lytics-airflow new-integration NAME``: lay out the files one integration needs.

Writes the declaration (``integrations/NAME.yaml``), the hook, the job types module, an example job config, a
stand-in stub and a test module, each with ``TODO`` markers. Until they are filled in the
project's tests fail: the registration check refuses a ``TODO`` left in a declaration, the new
test module exercises the hook against the stand-in, and the committed JSON Schema and README
tables are stale until regenerated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
TODO = "TODO"

REGISTRATION = Template("""\
# $title: TODO one line on what the integration does.
name: $title
doc-url: "TODO: the vendor's API documentation URL"
hooks:
- lytics_provider.hooks.$name
connection-types:
- connection-type: $name
  hook-class-name: lytics_provider.hooks.$name.${cls}Hook
  hook-name: $title
  hidden-fields: [schema, port, extra]
  relabeling: {host: API URL, password: API key}
  placeholders: {host: "TODO: https://api.example.com"}
  conn-fields:
    account_id: {label: Account ID, description: "TODO: what selects the account."}
  readme: "TODO: the connection's fields as the README's connection table lists them"
job-types:
- config-class: lytics_provider.jobs.types.$name.${cls}ExportJob
  readme: "TODO: what the job does, as the README's job-type table says it"
  examples: [${name}_export.yaml]
""")

HOOK = Template('''"""Hook for the $title API.

TODO: auth kind, paging style and error envelope of the vendor's API (build on the provider's
REST hook base where it fits, or on the official Airflow hook if one exists).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from lytics_provider.connections import ui_field_behaviour


class ${cls}Hook(BaseHook):
    """Calls the $title API with the credentials of a ``$name`` connection.

    :param ${name}_conn_id: the Airflow connection id.
    """

    conn_name_attr = "${name}_conn_id"
    default_conn_name = "${name}_default"
    conn_type = "$name"
    hook_name = "$title"

    def __init__(self, ${name}_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.${name}_conn_id = ${name}_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form, as declared in lytics_provider/integrations/$name.yaml."""
        return ui_field_behaviour(cls.conn_type)

    def test_connection(self) -> tuple[bool, str]:
        """Call a cheap authenticated endpoint; ``(False, reason)`` on failure (the UI's Test button)."""
        raise NotImplementedError("TODO: call the vendor's cheapest authenticated endpoint")
''')

JOB_TYPES = Template('''"""$title job types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from lytics_provider.jobs.base import AudienceExportConfig

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class ${cls}ExportJob(AudienceExportConfig):
    """$title export: TODO what it sends and where."""

    type: Literal["${name}_export"]
    ${name}_conn_id: str = Field(
        default="${name}_default", min_length=1, description="$title connection id."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``; config field names equal the operator's arguments."""
        raise NotImplementedError("TODO: wire the scan, the delivery and the report tasks")
''')

EXAMPLE = Template("""# $title export: TODO one line on what this example job does.
type: ${name}_export
audience: high_value
${name}_conn_id: ${name}_default
keep_updated: true
frequency: daily
time_of_day: "06:00"
timezone: UTC
""")

STAND_IN = Template('''"""A loopback stand-in for the $title API, following the vendor's published contract.

TODO: name the contract's source (URL), then serve its paths, auth headers, paging, batch limits,
error bodies and rate-limit signals.
"""

from __future__ import annotations


class ${cls}Sandbox:
    """Serves the $title API on 127.0.0.1; ``url`` once started."""

    url: str = ""

    def start(self) -> ${cls}Sandbox:
        raise NotImplementedError("TODO: start the $title stand-in on a free loopback port")

    def stop(self) -> None:
        raise NotImplementedError("TODO: stop the $title stand-in")
''')

TESTS = Template('''"""$title: the hook against its stand-in, the example config, the registration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lytics_provider.hooks.$name import ${cls}Hook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_sandbox.$name import ${cls}Sandbox

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "${name}_export.yaml"
DECLARATION = REPO / "lytics_provider" / "integrations" / "${name}.yaml"


@pytest.fixture
def stand_in() -> Iterator[${cls}Sandbox]:
    sandbox = ${cls}Sandbox().start()
    yield sandbox
    sandbox.stop()


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_config_loads() -> None:
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == []
    assert [job.config.type for job in jobs] == ["${name}_export"]


def test_hook_connects_to_the_stand_in(
    stand_in: ${cls}Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = f'{{"conn_type": "$name", "host": "{stand_in.url}"}}'
    monkeypatch.setenv("AIRFLOW_CONN_${upper}_DEFAULT", connection)
    assert ${cls}Hook().test_connection() == (True, "TODO: the message a working connection returns")
''')


@dataclass(frozen=True)
class ScaffoldFile:
    """One file the scaffold writes: where, from which template."""

    path: str
    template: Template


FILES = (
    ScaffoldFile("lytics_provider/integrations/{name}.yaml", REGISTRATION),
    ScaffoldFile("lytics_provider/hooks/{name}.py", HOOK),
    ScaffoldFile("lytics_provider/jobs/types/{name}.py", JOB_TYPES),
    ScaffoldFile("lytics_sandbox/{name}.py", STAND_IN),
    ScaffoldFile("tests/integration/test_{name}.py", TESTS),
    ScaffoldFile("include/jobs/{name}_export.yaml", EXAMPLE),
)

NEXT_STEPS = """\
Next: fill in every TODO (grep -rn TODO {files}), then
  lytics-airflow schema > lytics_provider/jobs/job-config.schema.json
  lytics-airflow docs --write
  .venv/bin/python -m pytest -q tests/integration/test_{name}.py tests/unit
See docs/ARCHITECTURE.md, "How to add an integration"."""


def check_name(name: str) -> str:
    """``name`` when it is a valid integration module name, else a ValueError saying what is."""
    if not NAME.match(name):
        raise ValueError(
            f"integration name {name!r} must be lower case letters and digits, words joined by '_', "
            "starting with a letter, e.g. acme or acme_ads"
        )
    return name


def planned_files(root: Path, name: str) -> list[Path]:
    """The files ``new-integration name`` writes under ``root``."""
    return [root / item.path.format(name=check_name(name)) for item in FILES]


def scaffold(root: Path, name: str, title: str | None = None) -> list[Path]:
    """Write the files of integration ``name`` under ``root``; refuse to overwrite any file.

    :param root: the source tree (the directory holding ``lytics_provider``).
    :param name: the integration's module name, e.g. ``acme``.
    :param title: the integration's display name; default ``name`` in title case.
    """
    check_name(name)
    existing = [path for path in planned_files(root, name) if path.exists()]
    if existing:
        raise FileExistsError(
            "integration files already exist: "
            + ", ".join(str(path) for path in existing)
            + "; pick another name or remove them"
        )
    words = name.split("_")
    values = {
        "name": name,
        "cls": "".join(word.capitalize() for word in words),
        "title": title or " ".join(word.capitalize() for word in words),
        "upper": name.upper(),
    }
    written = []
    for item, path in zip(FILES, planned_files(root, name), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(item.template.substitute(values))
        written.append(path)
    return written

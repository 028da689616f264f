"""The README's job-type and connection tables, generated from the integration declarations.

Each table sits between two markers in README.md; ``lytics-airflow docs --write`` rewrites what
is between them, ``lytics-airflow docs --check`` fails when it differs.
"""

from __future__ import annotations

from pathlib import Path

from lytics_provider.integrations.catalog import import_object, integrations

OFFICIAL_CONNECTIONS = "Airflow's own connections, used through the official providers' hooks"


def _begin(name: str) -> str:
    return f"<!-- BEGIN GENERATED {name} table: lytics-airflow docs --write -->"


def _end(name: str) -> str:
    return f"<!-- END GENERATED {name} table -->"


def job_type_table() -> str:
    """One row per job type: its ``type``, what it does, its example configs."""
    from lytics_provider.jobs.schema import type_name

    rows = ["| `type` | what it does | example |", "|---|---|---|"]
    for item in integrations():
        for job in item.job_types:
            name = type_name(import_object(job.config_class))
            examples = ", ".join(f"`{example}`" for example in job.examples)
            rows.append(f"| `{name}` | {job.readme} | {examples} |")
    return "\n".join(rows)


def connection_table() -> str:
    """One row per connection type this provider adds, then one for the official ones the jobs use."""
    rows = ["| type | fields |", "|---|---|"]
    official: list[str] = []
    for item in integrations():
        rows += [f"| `{conn.conn_type}` | {conn.readme} |" for conn in item.connection_types]
        official += item.airflow_connection_types
    if official:
        names = ", ".join(f"`{name}`" for name in dict.fromkeys(official))
        rows.append(f"| {names} | {OFFICIAL_CONNECTIONS} |")
    return "\n".join(rows)


TABLES = {"job types": job_type_table, "connections": connection_table}


def render(text: str, source: str = "README.md") -> str:
    """``text`` with every generated table replaced by its current content."""
    for name, table in TABLES.items():
        begin, end = _begin(name), _end(name)
        start = text.find(begin)
        stop = text.find(end)
        if start < 0 or stop < start:
            raise ValueError(
                f"{source}: markers of the {name} table are missing or out of order; put the lines\n"
                f"{begin}\n{end}\nwhere the table belongs"
            )
        text = text[: start + len(begin)] + "\n" + table() + "\n" + text[stop:]
    return text


def readme_path() -> Path:
    """README.md of the source tree this package was installed from (editable installs)."""
    return Path(__file__).resolve().parents[2] / "README.md"


def stale(path: Path) -> bool:
    """True when the tables in ``path`` differ from the declarations."""
    text = path.read_text()
    return render(text, path.name) != text


def write(path: Path) -> bool:
    """Rewrite the tables in ``path``; True when anything changed."""
    text = path.read_text()
    rendered = render(text, path.name)
    if rendered != text:
        path.write_text(rendered)
    return rendered != text

"""Integration declarations: everything generated from them, their completeness, the scaffold."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from lytics_provider import integrations as integrations_package
from lytics_provider.get_provider_info import get_provider_info
from lytics_provider.integrations import catalog, readme, scaffold
from lytics_provider.integrations.registration import Integration, RegistrationError
from lytics_provider.jobs import schema
from lytics_provider.jobs.base import JobConfig
from lytics_provider.jobs.cli import main

REPO = Path(__file__).resolve().parents[2]


def _modules(package: str) -> list[str]:
    found = importlib.import_module(package)
    return [f"{package}.{info.name}" for info in pkgutil.iter_modules(found.__path__) if not info.ispkg]


@pytest.fixture
def fresh_catalog() -> typing.Iterator[None]:
    catalog.integrations.cache_clear()
    yield
    catalog.integrations.cache_clear()


# ------------------------------------------------------------------------------------------------
# The declarations are complete and hold no TODO
# ------------------------------------------------------------------------------------------------


def test_no_declaration_holds_a_todo() -> None:
    left = {item.name: catalog.todo_entries(item) for item in catalog.integrations()}
    assert {name: where for name, where in left.items() if where} == {}


def test_every_job_type_class_is_declared_by_exactly_one_integration() -> None:
    declared = [job.config_class for item in catalog.integrations() for job in item.job_types]
    assert len(declared) == len(set(declared))
    defined = set()
    for module_name in _modules("lytics_provider.jobs.types"):
        module = importlib.import_module(module_name)
        for name, cls in vars(module).items():
            if not (inspect.isclass(cls) and issubclass(cls, JobConfig) and cls.__module__ == module_name):
                continue
            if typing.get_origin(cls.model_fields["type"].annotation) is typing.Literal:
                defined.add(f"{module_name}.{name}")
    assert defined == set(declared)
    assert set(schema.job_types()) == {schema.type_name(cls) for cls in catalog.job_type_classes()}


def test_every_operator_and_transfer_module_is_declared() -> None:
    info = get_provider_info()
    declared_operators = {module for entry in info["operators"] for module in entry["python-modules"]}
    declared_transfers = {entry["python-module"] for entry in info["transfers"]}
    assert set(_modules("lytics_provider.operators")) == declared_operators
    assert set(_modules("lytics_provider.transfers")) == declared_transfers


def test_every_hook_with_a_connection_type_is_declared() -> None:
    declared = {spec["hook-class-name"] for spec in info_connection_types()}
    hooks = {}
    for module_name in _modules("lytics_provider.hooks"):
        module = importlib.import_module(module_name)
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and cls.__module__ == module_name and "conn_type" in vars(cls):
                hooks[f"{module_name}.{name}"] = cls
    # A base that other hooks of the package build on (the REST hook base) is no integration.
    bases = {
        path
        for path, cls in hooks.items()
        if any(issubclass(o, cls) and o is not cls for o in hooks.values())
    }
    assert set(hooks) - bases == declared
    hook_modules = {module for entry in get_provider_info()["hooks"] for module in entry["python-modules"]}
    assert {path.rpartition(".")[0] for path in declared} <= hook_modules


def info_connection_types() -> list[dict]:
    return get_provider_info()["connection-types"]


def test_every_example_named_by_a_job_type_exists_and_has_that_type() -> None:
    import yaml

    for item in catalog.integrations():
        for job in item.job_types:
            assert job.examples, f"{job.config_class} names no example config"
            name = schema.type_name(catalog.import_object(job.config_class))
            for example in job.examples:
                config = yaml.safe_load((REPO / "include" / "jobs" / example).read_text())
                assert config["type"] == name, example


def test_connection_types_and_integration_names_are_unique_and_lytics_comes_first() -> None:
    items = catalog.integrations()
    assert items[0].name == "Lytics"
    types = [spec["connection-type"] for spec in info_connection_types()]
    assert len(types) == len(set(types))
    listed = [entry["integration-name"] for entry in get_provider_info()["integrations"]]
    assert listed == [item.name for item in items if item.listed_by is None]
    assert {"Lytics", "Dotdigital", "iContact", "PGP"} <= set(listed)


# ------------------------------------------------------------------------------------------------
# Discovery: a new module is picked up with no central list edited
# ------------------------------------------------------------------------------------------------

NEW_INTEGRATION = """\
name: Acme
doc-url: https://acme.example/api
hooks: [lytics_provider.hooks.acme]
transfers:
- {source: Lytics, target: Acme, module: lytics_provider.transfers.lytics_to_acme}
connection-types:
- connection-type: acme
  hook-class-name: lytics_provider.hooks.acme.AcmeHook
  hook-name: Acme
  hidden-fields: [schema]
  relabeling: {password: API key}
  conn-fields:
    api_key: {label: API key, secret: true}
    page_size: {label: Page size, schema: {type: [integer, "null"], default: 100}}
  readme: API key
"""


def test_a_new_integration_module_is_found_and_generated_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_catalog: None
) -> None:
    (tmp_path / "acme.yaml").write_text(NEW_INTEGRATION)
    monkeypatch.setattr(integrations_package, "__path__", [*integrations_package.__path__, str(tmp_path)])
    assert tmp_path / "acme.yaml" in catalog.integration_files()
    info = get_provider_info()
    assert {
        "integration-name": "Acme",
        "external-doc-url": "https://acme.example/api",
        "tags": ["service"],
    } in (info["integrations"])
    assert {"integration-name": "Acme", "python-modules": ["lytics_provider.hooks.acme"]} in info["hooks"]
    acme = next(spec for spec in info["connection-types"] if spec["connection-type"] == "acme")
    assert acme["conn-fields"] == {
        "api_key": {"label": "API key", "schema": {"type": ["string", "null"], "format": "password"}},
        "page_size": {"label": "Page size", "schema": {"type": ["integer", "null"], "default": 100}},
    }
    assert acme["ui-field-behaviour"] == {
        "hidden-fields": ["schema"],
        "relabeling": {"password": "API key"},
        "placeholders": {},
    }
    assert "| `acme` | API key |" in readme.connection_table()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("name: Half\n", "half.yaml: required key(s) missing: doc-url"),
        ("name: Half\ndoc-url: x\nhook: [a]\n", "half.yaml: unknown key(s) hook; known: "),
        ("name: Half\ndoc-url: x\njob-types:\n- {readme: r}\n", "half.yaml: job-types[0]: required key"),
        (
            "name: Half\ndoc-url: x\nconnection-types:\n- {connection-type: h, hook-class-name: a.H, "
            "hook-name: H, readme: r, conn-fields: {n: {label: N, schema: {type: [integer, null]}}}}\n",
            'conn-fields.n: schema type names must be text; write "null" in quotes',
        ),
        ("name: [Half\n", "half.yaml: not valid YAML"),
    ],
)
def test_a_bad_declaration_names_the_file_the_key_and_the_fix(
    text: str, error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_catalog: None
) -> None:
    (tmp_path / "half.yaml").write_text(text)
    monkeypatch.setattr(integrations_package, "__path__", [*integrations_package.__path__, str(tmp_path)])
    with pytest.raises(RegistrationError, match=re.escape(error)):
        catalog.integrations()


def test_a_connection_type_declared_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    lytics = catalog.integrations()[0]
    twin = Integration(name="Twin", doc_url="https://twin.example", connection_types=lytics.connection_types)
    monkeypatch.setattr(catalog, "integrations", lambda: (lytics, twin))
    with pytest.raises(RegistrationError, match="connection type\\(s\\) declared twice: lytics"):
        catalog.connection_specs()


def test_todo_entries_name_where_the_todo_is() -> None:
    item = Integration(name="X", doc_url="TODO: url", hooks=("a", "TODO"))
    assert catalog.todo_entries(item) == ["doc_url", "hooks[1]"]


# ------------------------------------------------------------------------------------------------
# README tables: generated, drift-checked, rewritten by `lytics-airflow docs --write`
# ------------------------------------------------------------------------------------------------


def test_committed_readme_tables_match_the_declarations() -> None:
    """If this fails, run `lytics-airflow docs --write` and commit README.md."""
    path = REPO / "README.md"
    assert not readme.stale(path), "README.md tables are out of date; run `lytics-airflow docs --write`"
    text = path.read_text()
    for name in schema.job_types():
        assert f"| `{name}` |" in text


def test_docs_check_fails_on_a_stale_table_and_write_fixes_it(tmp_path: Path, capsys) -> None:
    stale_readme = tmp_path / "README.md"
    current = (REPO / "README.md").read_text()
    stale_readme.write_text(current.replace("| `icontact_export` |", "| `icontact_exporter` |"))
    assert main(["docs", "--readme", str(stale_readme)]) == 1
    assert "out of date; run `lytics-airflow docs --write`" in capsys.readouterr().err
    assert main(["docs", "--write", "--readme", str(stale_readme)]) == 0
    assert "tables rewritten" in capsys.readouterr().out
    assert stale_readme.read_text() == current
    assert main(["docs", "--readme", str(stale_readme)]) == 0


def test_docs_names_missing_markers(tmp_path: Path, capsys) -> None:
    bare = tmp_path / "README.md"
    bare.write_text("# project\n")
    assert main(["docs", "--readme", str(bare)]) == 1
    assert "README.md: markers of the job types table are missing" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# `lytics-airflow new-integration NAME`
# ------------------------------------------------------------------------------------------------


def test_new_integration_lays_out_the_files_with_todos(tmp_path: Path, capsys) -> None:
    assert main(["new-integration", "acme_ads", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    expected = [
        "lytics_provider/integrations/acme_ads.yaml",
        "lytics_provider/hooks/acme_ads.py",
        "lytics_provider/jobs/types/acme_ads.py",
        "lytics_sandbox/acme_ads.py",
        "tests/integration/test_acme_ads.py",
        "include/jobs/acme_ads_export.yaml",
    ]
    for relative in expected:
        assert (tmp_path / relative).is_file(), relative
        assert relative in out
        assert "TODO" in (tmp_path / relative).read_text(), relative
    assert "lytics-airflow docs --write" in out
    hook = (tmp_path / "lytics_provider/hooks/acme_ads.py").read_text()
    assert "class AcmeAdsHook(BaseHook):" in hook and 'conn_type = "acme_ads"' in hook


def test_the_scaffolded_registration_fails_the_todo_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_catalog: None
) -> None:
    scaffold.scaffold(tmp_path, "acme_ads", "Acme Ads")
    monkeypatch.setattr(
        integrations_package,
        "__path__",
        [*integrations_package.__path__, str(tmp_path / "lytics_provider" / "integrations")],
    )
    acme = next(item for item in catalog.integrations() if item.name == "Acme Ads")
    assert acme.job_types[0].config_class == "lytics_provider.jobs.types.acme_ads.AcmeAdsExportJob"
    assert "doc_url" in catalog.todo_entries(acme)
    assert "job_types[0].readme" in catalog.todo_entries(acme)


def test_scaffolded_python_files_pass_the_linter(tmp_path: Path) -> None:
    scaffold.scaffold(tmp_path, "acme_ads")
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run(
        [
            str(ruff),
            "check",
            "--config",
            str(REPO / "pyproject.toml"),
            "--config",
            "lint.isort.known-first-party=['lytics_provider', 'tests']",
            ".",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_new_integration_refuses_to_overwrite_and_bad_names(tmp_path: Path, capsys) -> None:
    assert main(["new-integration", "acme", "--root", str(tmp_path)]) == 0
    capsys.readouterr()
    before = (tmp_path / "lytics_provider/hooks/acme.py").read_text()
    (tmp_path / "lytics_provider/hooks/acme.py").write_text(before + "# filled in\n")
    assert main(["new-integration", "acme", "--root", str(tmp_path)]) == 1
    assert "integration files already exist" in capsys.readouterr().err
    assert (tmp_path / "lytics_provider/hooks/acme.py").read_text().endswith("# filled in\n")
    assert main(["new-integration", "Acme-Ads", "--root", str(tmp_path)]) == 1
    assert "must be lower case letters and digits" in capsys.readouterr().err

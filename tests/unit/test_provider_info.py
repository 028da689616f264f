"""The provider registers itself with Airflow and its connection forms never drift."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from lytics_provider.connections import CONNECTION_TYPES, ui_field_behaviour
from lytics_provider.get_provider_info import get_provider_info


def test_entry_point_points_at_provider_info() -> None:
    eps = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("lytics_provider")
    ]
    assert len(eps) == 1
    info = eps[0].load()()
    assert info["package-name"] == "airflow-provider-lytics"


def test_every_declared_module_and_hook_imports() -> None:
    info = get_provider_info()
    for section in ("hooks", "operators", "transfers"):
        for entry in info.get(section, []):
            for module in entry.get("python-modules") or [entry["python-module"]]:
                importlib.import_module(module)
    for spec in info["connection-types"]:
        module, _, name = spec["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == spec["connection-type"]
        assert hook.get_ui_field_behaviour() == ui_field_behaviour(spec["connection-type"])


def test_secret_fields_are_masked_in_the_form() -> None:
    for spec in CONNECTION_TYPES:
        for name, field in spec.get("conn-fields", {}).items():
            sensitive = any(word in name for word in ("password", "secret", "key", "token", "passphrase"))
            if sensitive and not name.endswith("_id"):
                assert field["schema"].get("format") == "password", f"{spec['connection-type']}.{name}"


def test_airflow_providers_manager_lists_the_connection_types() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-lytics" in manager.providers
    hooks = manager.hooks
    for spec in CONNECTION_TYPES:
        assert spec["connection-type"] in hooks
    widgets = manager.connection_form_widgets
    assert "extra__lytics__account_id" in widgets
    assert manager.field_behaviours["lytics"]["relabeling"]["password"] == "API Token"


def test_the_stand_ins_are_not_part_of_the_provider_package() -> None:
    """The loopback stand-ins live in ``lytics_sandbox`` beside the package: the wheel (packages
    ``lytics_provider*``) does not carry them, and no provider module imports them."""
    import ast
    from pathlib import Path

    import lytics_provider

    root = Path(lytics_provider.__file__).parent
    assert not (root / "sandbox").exists()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(name.split(".")[0] == "lytics_sandbox" for name in names), path

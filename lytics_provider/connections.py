"""Connection types of the provider, generated from the integration declarations.

Airflow reads these through ``get_provider_info`` (``conn-fields`` and ``ui-field-behaviour``)
without importing any hook; each hook's ``get_ui_field_behaviour`` returns the same data.
Secret fields carry ``format: password`` so the UI masks them. Each form is declared once, in
``lytics_provider/integrations/<integration>.yaml``.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.integrations.catalog import connection_specs

CONNECTION_TYPES: list[dict[str, Any]] = connection_specs()


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """Return the hook-style (snake_case) UI field behaviour of ``conn_type``."""
    for spec in CONNECTION_TYPES:
        if spec["connection-type"] == conn_type:
            behaviour = spec["ui-field-behaviour"]
            return {
                "hidden_fields": list(behaviour["hidden-fields"]),
                "relabeling": dict(behaviour["relabeling"]),
                "placeholders": dict(behaviour["placeholders"]),
            }
    raise KeyError(conn_type)

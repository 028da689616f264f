"""Provider metadata read by Airflow's providers manager (imports nothing heavy).

Generated from the integration declarations in ``lytics_provider.integrations``; add an
integration there, not here.
"""

from __future__ import annotations

from typing import Any

from lytics_provider import __version__
from lytics_provider.integrations.catalog import provider_info_sections


def get_provider_info() -> dict[str, Any]:
    """Describe the package, its hooks, operators and connection types to Airflow."""
    return {
        "package-name": "airflow-provider-lytics",
        "name": "Lytics",
        "description": "Lytics CDP integration jobs: audience exports, stream imports, file drops.",
        "versions": [__version__],
        **provider_info_sections(),
    }

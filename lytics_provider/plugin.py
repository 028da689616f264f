"""The provider's Airflow plugin: registers the job timetables so serialized DAGs can be decoded.

Loaded through the ``airflow.plugins`` entry point of the package (``pyproject.toml``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from lytics_provider.timetables.keep_updated import KeepUpdatedTimetable


class LyticsPlugin(AirflowPlugin):
    """Registers :class:`KeepUpdatedTimetable`, the schedule of every recurring Lytics job."""

    name = "lytics"
    timetables = [KeepUpdatedTimetable]

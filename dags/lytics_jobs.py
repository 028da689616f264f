"""Lytics jobs: one DAG per job config file (``include/jobs/*.yaml`` or ``$LYTICS_JOBS_DIR``).

A config that fails validation shows up as an Airflow import error naming its YAML file, the
field and the fix; every other job's DAG still loads. Check configs before deploying with
``lytics-airflow validate include/jobs``.
"""

from __future__ import annotations

from airflow.sdk import get_parsing_context

from lytics_provider.jobs.dag_builder import build_dags, jobs_directory

globals().update(build_dags(jobs_directory(__file__), only_dag_id=get_parsing_context().dag_id))

"""Job types whose DAG is one task (an import, or an export of a stream): the operator by name.

A job type lists :class:`OneTaskJob` before its other bases and names its operator by dotted
path in ``task_operator`` (imported only when the task is built, so reading configs stays light
and works without the provider extras the operator needs); every config field the operator takes
reaches it by name (:func:`~lytics_provider.jobs.operator_args.operator_kwargs`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from lytics_provider.jobs.base import StrictModel
from lytics_provider.jobs.deferrable_wait import unset_waits_dropped
from lytics_provider.jobs.operator_args import operator_kwargs

if TYPE_CHECKING:
    from pydantic import BaseModel

    from lytics_provider.jobs.context import JobContext


def import_operator(operator_path: str) -> Any:
    """The operator class at ``operator_path`` (``module.Class``)."""
    module, _, name = operator_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_task(config: BaseModel, operator_path: str, job: JobContext, task_id: str, **arguments: Any) -> Any:
    """The task of the operator at ``operator_path`` (``module.Class``), given the config's options.

    :param config: the job's validated config.
    :param operator_path: dotted path of the operator class.
    :param job: the job being built (its id and DAG).
    :param task_id: the task's id.
    :param arguments: operator arguments that are not config fields of the same name (``job_id``
        replaces the job's); unset ``deferrable`` / ``poll_interval`` are left to the operator.
    """
    operator = import_operator(operator_path)
    arguments = {"job_id": job.job_id, "dag": job.dag, **arguments}
    kwargs = operator_kwargs(config, operator, task_id=task_id, **arguments)
    return operator(**unset_waits_dropped(kwargs))


class OneTaskJob(StrictModel):
    """One task, ``task_id``, of the operator ``task_operator``."""

    task_operator: ClassVar[str]
    """Dotted path of the operator."""
    task_id: ClassVar[str] = "import"

    def task_arguments(self) -> dict[str, Any]:
        """Operator arguments that are not config fields of the same name (default none)."""
        return {}

    def add_tasks(self, job: JobContext) -> None:
        """The job's one task."""
        build_task(self, self.task_operator, job, self.task_id, **self.task_arguments())

"""Prefect: ``reverse_etl_run`` (a task) and ``reverse_etl_flow`` (a flow) with the result as return value.

>>> from prefect import flow
>>> from reverse_etl.integrations.prefect import reverse_etl_run
>>> @flow
... def nightly() -> dict:
...     return reverse_etl_run("path/to/project", select=["tag:daily"])

Both take the same parameters as the Airflow operator and return
:func:`reverse_etl.integrations.steps.summary` of the run. A failed sync, or a
partial one unless ``fail_on_partial=False``, fails the task (and so the flow)
with the tool's one-line reason as its message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reverse_etl.integrations.steps import StepFailed, run_step, summary

try:
    from prefect import flow, task
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("reverse_etl.integrations.prefect needs Prefect 3: "
                      "pip install 'reverse_etl[prefect]'") from exc

__all__ = ["ReverseEtlStepFailed", "reverse_etl_flow", "reverse_etl_run"]


class ReverseEtlStepFailed(Exception):
    """The task's failure: ``str()`` is the one-line reason; ``summary`` the run's result (or None)."""

    def __init__(self, reason: str, summary: dict[str, Any] | None) -> None:
        super().__init__(reason)
        self.summary = summary


def _run(project: str, select: Sequence[str], target: str | None, dbt_run_results: str | None,
         fail_on_partial: bool, full_refresh: bool) -> dict[str, Any]:
    try:
        result = run_step(project, select=select, target=target, dbt_run_results=dbt_run_results,
                          full_refresh=full_refresh, fail_on_partial=fail_on_partial)
    except StepFailed as failed:
        raise ReverseEtlStepFailed(failed.reason,
                                   summary(failed.result) if failed.result else None) from None
    return summary(result)


@task(name="reverse-etl run", task_run_name="reverse-etl run {select}")
def reverse_etl_run(project: str, select: Sequence[str] = (), target: str | None = None,
                    dbt_run_results: str | None = None, fail_on_partial: bool = True,
                    full_refresh: bool = False) -> dict[str, Any]:
    """Run reverse_etl syncs as a Prefect task; returns the run's summary."""
    return _run(project, select, target, dbt_run_results, fail_on_partial, full_refresh)


@flow(name="reverse-etl")
def reverse_etl_flow(project: str, select: Sequence[str] = (), target: str | None = None,
                     dbt_run_results: str | None = None, fail_on_partial: bool = True,
                     full_refresh: bool = False) -> dict[str, Any]:
    """A ready-made flow around :func:`reverse_etl_run` (deploy it as is)."""
    summary_: dict[str, Any] = reverse_etl_run(project, select, target, dbt_run_results,
                                                fail_on_partial, full_refresh)
    return summary_

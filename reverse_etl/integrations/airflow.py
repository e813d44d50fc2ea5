"""Airflow: ``ReverseEtlRunOperator`` runs syncs as one task; the run's summary goes to XCom.

>>> from airflow.sdk import DAG
>>> from reverse_etl.integrations.airflow import ReverseEtlRunOperator
>>> with DAG("insider_syncs", schedule="@daily"):
...     ReverseEtlRunOperator(task_id="sync", project="/opt/etl/project", select=["tag:daily"])

Built on Airflow 3's task SDK (``airflow.sdk.BaseOperator``), synchronous and
deferrable-free: the operator needs no hook, connection or provider package,
only the project directory on the worker (secrets in its ``.env`` or the
worker's environment, as for the CLI). The return value (XCom
``return_value``) is :func:`reverse_etl.integrations.steps.summary` of the run.
A failed sync, or a partial one unless ``fail_on_partial=False``, fails the
task with the tool's one-line reason; Airflow's retries then apply as usual
(the next run resends only what was not acknowledged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reverse_etl.integrations.steps import StepFailed, run_step, summary

try:
    from airflow.sdk import BaseOperator
    from airflow.sdk.exceptions import AirflowException
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("reverse_etl.integrations.airflow needs Airflow 3: "
                      "pip install 'reverse_etl[airflow]'") from exc

__all__ = ["ReverseEtlRunOperator"]


class ReverseEtlRunOperator(BaseOperator):
    """Run reverse_etl syncs (``reverse-etl run``) as an Airflow task.

    ``project`` is the project directory (or its syncs.yml); ``select`` takes
    dbt-style selectors (names, ``tag:``, ``model:``); ``target`` the
    environment of ``targets:``; ``dbt_run_results`` dbt's run_results.json,
    so only syncs whose models that dbt run rebuilt are run. All four are
    templated (``"{{ var.value.etl_project }}"``).
    """

    template_fields: Sequence[str] = ("project", "select", "target", "dbt_run_results")
    ui_color = "#e8f0ff"

    def __init__(self, *, project: str, select: Sequence[str] = (), target: str | None = None,
                 dbt_run_results: str | None = None, fail_on_partial: bool = True,
                 full_refresh: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.select = list(select)
        self.target = target
        self.dbt_run_results = dbt_run_results
        self.fail_on_partial = fail_on_partial
        self.full_refresh = full_refresh

    def execute(self, context: Any) -> dict[str, Any]:
        """Run the syncs; return the summary (XCom) or raise with the one-line reason."""
        try:
            result = run_step(self.project, select=self.select, target=self.target or None,
                              dbt_run_results=self.dbt_run_results or None,
                              full_refresh=self.full_refresh, fail_on_partial=self.fail_on_partial)
        except StepFailed as failed:
            # The reason is the whole message: Airflow shows it as the task's failure.
            raise AirflowException(failed.reason) from None
        for sync in result.syncs:
            self.log.info("%s: %s (%s)", sync.sync, sync.outcome, sync.message or "ok")
        return summary(result)

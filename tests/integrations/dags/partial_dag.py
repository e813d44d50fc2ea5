"""A DAG for the Airflow tests: partial runs allowed, templated select, XCom read downstream."""

from __future__ import annotations

import os

from airflow.sdk import DAG, task

from reverse_etl.integrations.airflow import ReverseEtlRunOperator

with DAG("insider_partial", schedule=None, catchup=False,
         params={"sync": "cities"}) as dag:
    sync = ReverseEtlRunOperator(task_id="sync", project=os.environ["ETL_PROJECT"],
                                 select=["{{ params.sync }}"], fail_on_partial=False)

    @task
    def rejected(summary: dict) -> int:  # type: ignore[type-arg]
        """What a downstream task sees of the run: the rejected count, from XCom."""
        return sum(s["counts"].get("rejected", 0) for s in summary["syncs"])

    rejected(sync.output)

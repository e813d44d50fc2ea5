import os

from airflow.sdk import DAG

from reverse_etl.integrations.airflow import ReverseEtlRunOperator

with DAG("insider_syncs", schedule="@daily", catchup=False) as dag:
    sync = ReverseEtlRunOperator(
        task_id="sync_daily",
        project=os.environ["ETL_PROJECT"],  # the directory holding syncs.yml
        select=["tag:daily"],
        fail_on_partial=True,  # rows Insider refused fail the task
    )

import os

from prefect import flow

from reverse_etl.integrations.prefect import reverse_etl_run


@flow
def nightly_syncs() -> dict:
    project = os.environ["ETL_PROJECT"]  # the directory holding syncs.yml
    result = reverse_etl_run(project, select=["tag:daily"], fail_on_partial=True)
    return result  # exit_code, and per sync: outcome, counts, run_id, seconds

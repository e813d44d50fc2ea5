import os

import dagster as dg

from reverse_etl.integrations.dagster import ReverseEtlResource, reverse_etl_assets

project = os.environ["ETL_PROJECT"]  # the directory holding syncs.yml
syncs = reverse_etl_assets(project)  # one asset per sync; a dbt model's asset is upstream
defs = dg.Definitions(
    assets=syncs,
    jobs=[dg.define_asset_job("daily_syncs", selection=dg.AssetSelection.tag("daily", ""))],
    resources={"reverse_etl": ReverseEtlResource(project_dir=project, fail_on_partial=True)},
)

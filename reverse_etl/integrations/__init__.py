"""Orchestrator integrations: thin layers over :mod:`reverse_etl.api`.

Each submodule imports its orchestrator only when it is itself imported, and
each orchestrator is an optional extra::

    pip install 'reverse_etl[dagster]'   # reverse_etl.integrations.dagster
    pip install 'reverse_etl[airflow]'   # reverse_etl.integrations.airflow
    pip install 'reverse_etl[prefect]'   # reverse_etl.integrations.prefect

They share :mod:`reverse_etl.integrations.steps`: one run, one verdict, and the
tool's one-line reason when the step must fail.
"""

"""dbt integration: resolve dbt models and sync what the last dbt run rebuilt.

* :func:`load_manifest` / :class:`DbtManifest` — model name → :class:`DbtRelation`
  (database, schema, identifier, a quoted SQL name per dialect).
* :func:`load_run_results` / :func:`classify` — per model, a :class:`Verdict`:
  run (dbt rebuilt it) or skip, with the reason.

dbt itself is never imported: these modules read dbt's JSON artifacts only, so
they work with any adapter's manifest (dbt-duckdb, dbt-snowflake, ...).
"""

from __future__ import annotations

from reverse_etl.project.dbt.manifest import DbtManifest, load_manifest
from reverse_etl.project.dbt.relation import DbtRelation, Quoting
from reverse_etl.project.dbt.run_results import (
    NodeResult,
    RunResults,
    Verdict,
    classify,
    load_run_results,
)

__all__ = [
    "DbtManifest",
    "DbtRelation",
    "NodeResult",
    "Quoting",
    "RunResults",
    "Verdict",
    "classify",
    "load_manifest",
    "load_run_results",
]

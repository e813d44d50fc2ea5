"""The Python API: everything the CLI does, as functions returning typed results.

>>> import reverse_etl
>>> result = reverse_etl.run("path/to/project", select=["customer_profiles"])
>>> result.exit_code, result.syncs[0].counts["changed"]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from reverse_etl.errors import ConfigError, ReverseEtlError
from reverse_etl.insider.config import InsiderProject as Project
from reverse_etl.insider.config import ProjectConfig, SyncConfig, find_sync
from reverse_etl.project.loader import load_config
from reverse_etl.project.model_sql import ResolvedModel, resolve_model
from reverse_etl.run.results import RunResult, SyncResult
from reverse_etl.run.runner import ProgressCallback, SyncRunner, new_run_id
from reverse_etl.state import Ledger, RunRecord, SyncState
from reverse_etl.warehouses import open_source

__all__ = ["history", "load_project", "plan", "rejected_rows", "reset", "run", "validate"]


def load_project(project_dir: str | Path = ".", environ: Mapping[str, str] | None = None) -> Project:
    """Load a project from a directory holding syncs.yml, or from the file itself."""
    return load_config(project_dir, environ, ProjectConfig)


def validate(project_dir: str | Path = ".", *, environ: Mapping[str, str] | None = None,
             check_source: bool = False) -> Project:
    """Load and check a project: config, models, mappings; optionally run each model.

    Raises :class:`ConfigError` (or :class:`SourceError`) on the first problem.
    """
    from reverse_etl.insider.modes import mode_for

    project = load_project(project_dir, environ)
    check_custom_attribute_cap(project)
    for sync in project.config.syncs:
        mode_for(sync)
        resolve_sync_model(project, sync)
    if check_source:
        source = open_source(project.config.source, str(project.root))
        try:
            for sync in project.config.syncs:
                model = resolve_sync_model(project, sync)
                source.fetch(f"SELECT * FROM ({model.sql}\n) AS m LIMIT 0").read_all()
        finally:
            source.close()
    return project


def check_custom_attribute_cap(project: Project) -> None:
    """Refuse a project whose syncs together write more custom attributes than Insider allows.

    The 255 cap is per tenant, so it is checked across all syncs of the project,
    before anything is sent.
    """
    from reverse_etl.insider.modes import mode_for
    from reverse_etl.insider.rules import CUSTOM_ATTRIBUTE_CAP

    names: set[str] = set()
    for sync in project.config.syncs:
        names.update(f.insider_name for f in mode_for(sync).fields if f.group == "attributes" and f.custom)
    if len(names) > CUSTOM_ATTRIBUTE_CAP:
        raise ConfigError(
            f"{project.config_path.name}: the syncs together write {len(names)} custom attributes; "
            f"Insider allows at most {CUSTOM_ATTRIBUTE_CAP} per tenant: map fewer"
        )


def resolve_sync_model(project: Project, sync: SyncConfig) -> ResolvedModel:
    """The SQL of a sync's model: ``models/<name>.sql`` first, else the dbt manifest."""
    dbt = project.config.dbt
    if dbt is None or (project.models_dir / f"{sync.model}.sql").is_file():
        return resolve_model(project.models_dir, sync.model, context=f"sync {sync.name!r}")
    relation = _manifest(project).relation(sync.model)
    dialect = project.config.source.type if project.config.source.type != "sqlalchemy" else None
    # A DuckDB source *is* the dbt database file, whatever catalog name dbt gave it.
    name = relation.sql_name(dialect, include_database=dialect != "duckdb")
    return ResolvedModel(name=sync.model, sql=f"SELECT * FROM {name}", origin=f"dbt:{relation.display_name}")


def _manifest(project: Project) -> Any:
    from reverse_etl.project.dbt import load_manifest

    dbt = project.config.dbt
    assert dbt is not None
    return load_manifest(project.root / dbt.project_dir, dbt.target_path)


def select(project: Project, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[SyncConfig]:
    """The syncs chosen by dbt-style selectors (names, ``tag:``, ``model:``)."""
    from reverse_etl.project.selection import select_syncs

    return list(select_syncs(project.config.syncs, select, exclude))


def run(project_dir: str | Path = ".", *, select: Sequence[str] = (), exclude: Sequence[str] = (),
        full_refresh: bool = False, dbt_run_results: str | Path | None = None,
        progress: ProgressCallback | None = None, environ: Mapping[str, str] | None = None,
        client_factory: Callable[[Project], Any] | None = None) -> RunResult:
    """Run the selected syncs (all by default) and return what each did.

    With ``dbt_run_results`` (dbt's ``target/run_results.json``), only syncs whose
    models that dbt invocation rebuilt successfully run; the others are reported
    ``skipped`` with the reason.
    """
    return _each_sync(project_dir, select, exclude, environ, progress, client_factory,
                      lambda runner: runner.run(full_refresh=full_refresh),
                      dbt_run_results=dbt_run_results)


def plan(project_dir: str | Path = ".", *, select: Sequence[str] = (), exclude: Sequence[str] = (),
         full_refresh: bool = False, environ: Mapping[str, str] | None = None) -> RunResult:
    """Dry run of the selected syncs: counts and sample payloads; sends and writes nothing."""
    return _each_sync(project_dir, select, exclude, environ, None, None,
                      lambda runner: runner.plan(full_refresh=full_refresh))


def _each_sync(project_dir: str | Path, selectors: Sequence[str], exclude: Sequence[str],
               environ: Mapping[str, str] | None, progress: ProgressCallback | None,
               client_factory: Callable[[Project], Any] | None,
               action: Callable[[SyncRunner], SyncResult],
               dbt_run_results: str | Path | None = None) -> RunResult:
    project = load_project(project_dir, environ)
    syncs = select(project, selectors, exclude)
    try:
        check_custom_attribute_cap(project)
    except ConfigError as exc:  # refused before anything is sent, whatever is selected
        refused = [SyncResult(sync=s.name, run_id=new_run_id(), outcome="failed", message=str(exc),
                              counts={"config_failed": 1}) for s in syncs]
        return RunResult(refused)
    result = RunResult()
    skipped: dict[str, SyncResult] = {}
    if dbt_run_results is not None:
        skipped = _after_dbt(project, syncs, Path(dbt_run_results))
    if len(skipped) == len(syncs):
        result.syncs.extend(skipped[s.name] for s in syncs)
        return result
    factory = client_factory or _default_client
    source = open_source(project.config.source, str(project.root))
    try:
        for sync in syncs:
            if sync.name in skipped:  # results stay in config order
                result.syncs.append(skipped[sync.name])
                continue
            try:
                model = resolve_sync_model(project, sync)
                runner = SyncRunner(project, sync, source, model,
                                    client_factory=lambda: factory(project), progress=progress)
                result.syncs.append(action(runner))
            except ReverseEtlError as exc:
                failed = SyncResult(sync=sync.name, run_id=new_run_id(), outcome="failed", message=str(exc))
                if isinstance(exc, ConfigError):
                    failed.counts["config_failed"] = 1
                else:
                    failed.counts["source_failed"] = int(exc.exit_code == 2)
                result.syncs.append(failed)
    finally:
        source.close()
    return result


def _after_dbt(project: Project, syncs: list[SyncConfig], run_results_path: Path) -> dict[str, SyncResult]:
    """Results for the syncs a dbt invocation did not rebuild, by sync name.

    A sync whose model dbt rebuilt successfully is absent (it runs). A model
    missing from the manifest fails only its own sync, as a config error.
    """
    from reverse_etl.project.dbt import classify, load_run_results

    if project.config.dbt is None:
        raise ConfigError(f"{project.config_path.name}: --dbt-run-results needs a `dbt:` section "
                          "(project_dir, target_path) to read the manifest")
    path = run_results_path if run_results_path.is_absolute() else Path.cwd() / run_results_path
    results = load_run_results(path)
    manifest = _manifest(project)
    out: dict[str, SyncResult] = {}

    def not_run(sync: SyncConfig, outcome: str, message: str) -> None:
        out[sync.name] = SyncResult(sync=sync.name, run_id=new_run_id(), outcome=outcome, message=message)

    dbt_syncs = []
    for sync in syncs:
        if (project.models_dir / f"{sync.model}.sql").is_file():
            not_run(sync, "skipped", f"model {sync.model!r} is a models/*.sql model, not built by dbt")
        elif manifest.find(sync.model) is None:
            try:
                manifest.relation(sync.model)  # raises the manifest's helpful message
            except ConfigError as exc:
                not_run(sync, "failed", f"sync {sync.name!r}: {exc}")
                out[sync.name].counts["config_failed"] = 1
        else:
            dbt_syncs.append(sync)
    verdicts = classify(manifest, results, sorted({s.model for s in dbt_syncs}),
                        block_on_failed_tests=project.config.dbt.block_on_failed_tests)
    for sync in dbt_syncs:
        verdict = verdicts[sync.model]
        if verdict.action != "run":
            not_run(sync, "skipped", f"dbt model {sync.model!r}: {verdict.reason}")
    return out


def _default_client(project: Project) -> Any:
    from reverse_etl.insider.http import InsiderClient

    return InsiderClient(project.config.destination)


def history(project_dir: str | Path = ".", sync: str | None = None, limit: int = 20,
            *, environ: Mapping[str, str] | None = None) -> list[RunRecord]:
    """The run ledger, oldest first (the last ``limit`` runs)."""
    project = load_project(project_dir, environ)
    if sync is not None:
        find_sync(project, sync)
    return Ledger(project.state_dir).records(sync, limit)


def rejected_rows(project_dir: str | Path, sync: str, limit: int = 50,
                  *, environ: Mapping[str, str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(total, first ``limit`` rows) a sync holds back, with the reason for each."""
    project = load_project(project_dir, environ)
    find_sync(project, sync)
    path = SyncState(project.state_dir, sync).rejected_path()
    if path is None or not path.exists():
        return 0, []
    table = pq.read_table(path)
    rows = table.sort_by([("kind", "ascending"), ("key", "ascending")]).slice(0, limit).to_pylist()
    return table.num_rows, rows


def reset(project_dir: str | Path, sync: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Forget a sync's snapshot and rejected rows: its next run resends everything."""
    project = load_project(project_dir, environ)
    find_sync(project, sync)
    state = SyncState(project.state_dir, sync)
    with state.lock():
        return state.reset()

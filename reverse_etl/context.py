"""The composition root: load a project, choose its syncs, gate on dbt, open the source,
pick the destination, and run each sync under its owner.

This is the one module (besides the CLI and the API facade) that knows both the
engine and Insider: everything below it reaches Insider only through the
protocols of :mod:`reverse_etl.run.destination`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from reverse_etl.alerts.hook import alert_hook
from reverse_etl.errors import ConfigError, SourceError
from reverse_etl.insider.config import InsiderProject, ProjectConfig, SyncConfig
from reverse_etl.insider.destination import InsiderDeliverer, InsiderDestination
from reverse_etl.project.loader import load_config
from reverse_etl.project.model_sql import ResolvedModel, resolve_model
from reverse_etl.run.events import Hooks
from reverse_etl.run.outcome import RunOwner, new_run_id
from reverse_etl.run.results import RunResult, SyncResult
from reverse_etl.run.runner import Rebase, SyncRunner
from reverse_etl.state.stores import open_ledger
from reverse_etl.warehouses import open_source
from reverse_etl.warehouses.base import Source
from reverse_etl.writeback import flush_spool, writeback_hook

ClientFactory = Callable[[InsiderProject], InsiderDeliverer]
"""Builds the Insider client of a project (tests and benchmarks pass stand-ins)."""


def load_project(project_dir: str | Path = ".", environ: Mapping[str, str] | None = None,
                 target: str | None = None) -> InsiderProject:
    """Load a project from a directory holding syncs.yml, or from the file itself.

    ``target`` chooses the environment (``targets:`` in syncs.yml); default
    ``$REVERSE_ETL_TARGET``, else the file's ``target:``.
    """
    return load_config(project_dir, environ, ProjectConfig, target)


def destination_key(identity: Mapping[str, str]) -> str:
    """A destination's identity as a short, secret-free text kept with each snapshot.

    The target (environment) and the partner stay readable; the base URLs (which may carry userinfo) are only
    hashed. A different partner or base URL is a different destination.
    """
    import hashlib

    digest = hashlib.sha256("\n".join(f"{k}={identity[k]}" for k in sorted(identity)).encode()).hexdigest()
    target = f"{identity['target']}@" if identity.get("target") else ""  # readable in meta.json
    return f"{target}{identity.get('partner', '?')}:{digest[:16]}"


def check_custom_attribute_cap(project: InsiderProject) -> None:
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


def resolve_model_named(project: InsiderProject, name: str, context: str) -> ResolvedModel:
    """The SQL of a model: ``models/<name>.sql`` first, else the dbt manifest."""
    dbt = project.config.dbt
    if dbt is None or (project.models_dir / f"{name}.sql").is_file():
        return resolve_model(project.models_dir, name, context=context)
    relation = manifest(project).relation(name)
    check_manifest_database(project, relation, context)
    dialect = project.config.source.type if project.config.source.type != "sqlalchemy" else None
    # A DuckDB source *is* the dbt database file, whatever catalog name dbt gave it.
    sql_name = relation.sql_name(dialect, include_database=dialect != "duckdb")
    return ResolvedModel(name=name, sql=f"SELECT * FROM {sql_name}", origin=f"dbt:{relation.display_name}")


def source_database(project: InsiderProject) -> str | None:
    """The database the configured source reads (DuckDB: the file's catalog), None if unknown."""
    source = project.config.source
    if source.type == "duckdb":
        return None if source.path.startswith(":") else Path(source.path).stem
    return source.database if source.type == "snowflake" else None


def check_manifest_database(project: InsiderProject, relation: Any, context: str) -> None:
    """Refuse a dbt model built in another database than the one ``source:`` reads.

    A manifest built with ``--target prod`` and a source pointing at dev would
    otherwise sync dev's rows as if they were prod's (or the other way round).
    """
    configured = source_database(project)
    built = relation.database
    if configured is None or built is None or configured.lower() == built.lower():
        return
    assert project.config.dbt is not None
    where = f"{project.config.dbt.project_dir.rstrip('/')}/{project.config.dbt.target_path}/manifest.json"
    raise ConfigError(
        f"{context}: dbt model {relation.name!r} is built in database {built!r} ({where}) but "
        f"source: reads database {configured!r}; build the manifest for the same target as the source "
        f"(dbt compile --target ...) or point source: at {built!r}")


def resolve_sync_model(project: InsiderProject, sync: SyncConfig) -> ResolvedModel:
    """The SQL of a sync's model."""
    return resolve_model_named(project, sync.model, f"sync {sync.name!r}")


def manifest(project: InsiderProject) -> Any:
    """The project's dbt manifest (loaded lazily: dbt support is optional)."""
    from reverse_etl.project.dbt import load_manifest

    dbt = project.config.dbt
    assert dbt is not None
    return load_manifest(project.root / dbt.project_dir, dbt.target_path)


def select(project: InsiderProject, selectors: Sequence[str] = (),
           exclude: Sequence[str] = ()) -> list[SyncConfig]:
    """The syncs chosen by dbt-style selectors (names, ``tag:``, ``model:``)."""
    from reverse_etl.project.selection import select_syncs

    return list(select_syncs(project.config.syncs, selectors, exclude))


class _LazySource:
    """Opens the project's source when the first sync needs it; a failure fails each sync."""

    def __init__(self, project: InsiderProject) -> None:
        self.project = project
        self._source: Source | None = None
        self._error: SourceError | None = None

    def get(self) -> Source:
        if self._error is not None:
            raise self._error
        if self._source is None:
            try:
                self._source = open_source(self.project.config.source, str(self.project.root))
            except SourceError as exc:
                self._error = exc
                raise
        return self._source

    def close(self) -> None:
        if self._source is not None:
            self._source.close()


def engine_for(project: InsiderProject) -> tuple[type[SyncRunner], dict[str, Any]]:
    """The runner of the source's ``engine:`` (local unless it says warehouse), and its options."""
    source = project.config.source
    if getattr(source, "engine", "local") != "warehouse":
        return SyncRunner, {}
    from reverse_etl.run.warehouse_engine import WarehouseRunner

    return WarehouseRunner, {"schema": getattr(source, "engine_schema", "reverse_etl")}


def run_syncs(project: InsiderProject, syncs: Sequence[SyncConfig], *, action: Literal["run", "plan"],
              full_refresh: bool = False, hooks: Hooks | None = None,
              client_factory: ClientFactory | None = None,
              not_run: Mapping[str, SyncResult | ConfigError] | None = None,
              rebase: Mapping[str, Rebase] | None = None) -> RunResult:
    """Run (or plan) ``syncs`` in order, each under its own :class:`RunOwner`.

    ``not_run`` holds what was decided before (skipped after dbt, or a config
    error found then, which fails the sync under its owner); each keeps its place. ``rebase``
    (by sync name) changes what a sync diffs against (an audit repair). Ctrl-C ends the current sync as ``interrupted`` and runs no more.
    """
    hooks = hooks or Hooks()
    not_run = not_run or {}
    factory = client_factory
    destination = InsiderDestination(project.config.destination,
                                     (lambda _config: factory(project)) if factory else None)
    ledger = open_ledger(project.state_dir, project.config.state)
    if action == "run":  # write-back and alerts hang off the end of every run (see README)
        extra = [h for h in (alert_hook(project, ledger), writeback_hook(project)) if h is not None]
        hooks = Hooks([hooks.emit, *extra]) if extra else hooks
    # A snapshot belongs to one environment and one destination: another one is a first run.
    bound = destination_key({**destination.identity(),
                             **({"target": project.target} if project.target else {})})
    try:
        check_custom_attribute_cap(project)
        refusal: ConfigError | None = None
    except ConfigError as exc:  # refused before anything is sent, whatever is selected
        refusal = exc
    source = _LazySource(project)
    result = RunResult(target=project.target)
    try:
        for sync in syncs:
            decided = not_run.get(sync.name)
            if isinstance(decided, SyncResult):
                result.syncs.append(decided)
                continue
            owner = RunOwner(sync.name, ledger=ledger, hooks=hooks, dry_run=action == "plan")

            def body(sync_result: SyncResult, sync: SyncConfig = sync,
                     decided: SyncResult | ConfigError | None = decided) -> None:
                if refusal is not None:
                    raise refusal
                if isinstance(decided, ConfigError):
                    raise decided
                runner_class, extra = engine_for(project)
                runner = runner_class(
                    project.state_dir, project.config.state, sync, destination.mode_for(sync),
                    source.get(), resolve_sync_model(project, sync),
                    resolve=lambda name: resolve_model_named(project, name, f"sync {sync.name!r}"),
                    sender_factory=lambda: destination.sender(sync), hooks=hooks,
                    destination=bound, rebase=(rebase or {}).get(sync.name), **extra)
                if action == "plan":
                    runner.plan(sync_result, full_refresh=full_refresh)
                else:
                    runner.run(sync_result, full_refresh=full_refresh)

            outcome = owner.run(body)
            result.syncs.append(outcome)
            if outcome.outcome == "interrupted":
                break
    finally:
        source.close()
        if action == "run":  # after the source is closed: DuckDB allows one writer per file
            flush_spool(project, result.syncs)
    return result


def audit_runner(project: InsiderProject, sync: SyncConfig, source: Source) -> SyncRunner:
    """A runner for ``sync`` bound to the project's destination, as :func:`run_syncs` builds it
    (an audit encodes the model through it: the same encoding as a run)."""
    destination = InsiderDestination(project.config.destination)
    bound = destination_key({**destination.identity(),
                             **({"target": project.target} if project.target else {})})
    return SyncRunner(project.state_dir, project.config.state, sync, destination.mode_for(sync), source,
                      resolve_sync_model(project, sync),
                      resolve=lambda name: resolve_model_named(project, name, f"sync {sync.name!r}"),
                      destination=bound)


def after_dbt(project: InsiderProject, syncs: list[SyncConfig],
              run_results_path: Path) -> dict[str, SyncResult | ConfigError]:
    """What becomes of the syncs a dbt invocation did not rebuild, by sync name.

    A sync whose model dbt rebuilt successfully is absent (it runs); one dbt did
    not rebuild has a ``skipped`` result. A model missing from the manifest is a
    config error that fails only its own sync.
    """
    from reverse_etl.project.dbt import classify, load_run_results

    if project.config.dbt is None:
        raise ConfigError(f"{project.config_path.name}: --dbt-run-results needs a `dbt:` section "
                          "(project_dir, target_path) to read the manifest")
    path = run_results_path if run_results_path.is_absolute() else Path.cwd() / run_results_path
    results = load_run_results(path)
    dbt_manifest = manifest(project)
    out: dict[str, SyncResult | ConfigError] = {}

    def skip(sync: SyncConfig, message: str) -> None:
        out[sync.name] = SyncResult(sync=sync.name, run_id=new_run_id(), outcome="skipped", message=message)

    dbt_syncs = []
    for sync in syncs:
        if (project.models_dir / f"{sync.model}.sql").is_file():
            skip(sync, f"model {sync.model!r} is a models/*.sql model, not built by dbt")
        elif dbt_manifest.find(sync.model) is None:
            try:
                dbt_manifest.relation(sync.model)  # raises the manifest's helpful message
            except ConfigError as exc:
                out[sync.name] = ConfigError(f"sync {sync.name!r}: {exc}")
        else:
            dbt_syncs.append(sync)
    verdicts = classify(dbt_manifest, results, sorted({s.model for s in dbt_syncs}),
                        block_on_failed_tests=project.config.dbt.block_on_failed_tests)
    for sync in dbt_syncs:
        verdict = verdicts[sync.model]
        if verdict.action != "run":
            skip(sync, f"dbt model {sync.model!r}: {verdict.reason}")
    return out

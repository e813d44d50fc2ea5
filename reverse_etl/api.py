"""The Python API: everything the CLI does, as functions returning typed results.

>>> import reverse_etl
>>> result = reverse_etl.run("path/to/project", select=["customer_profiles"])
>>> result.exit_code, result.syncs[0].counts["changed"]
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from reverse_etl import context
from reverse_etl.context import ClientFactory, load_project
from reverse_etl.insider.audit import AuditResult
from reverse_etl.insider.config import InsiderProject as Project
from reverse_etl.insider.config import find_sync
from reverse_etl.run.events import Hook, Hooks, progress_hook
from reverse_etl.run.results import RunResult
from reverse_etl.state import RunRecord
from reverse_etl.state.lookup import KeyLookup
from reverse_etl.state.stores import open_ledger, open_sync_state
from reverse_etl.warehouses import open_source

__all__ = ["audit", "history", "load_project", "lookup", "plan", "rejected_rows", "reset", "run",
           "validate"]

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage description, rows done, rows total)"""


def validate(project_dir: str | Path = ".", *, environ: Mapping[str, str] | None = None,
             target: str | None = None, check_source: bool = False) -> Project:
    """Load and check a project: config, models, mappings; optionally run each model.

    Raises :class:`ConfigError` (or :class:`SourceError`) on the first problem.
    """
    from reverse_etl.insider.modes import mode_for

    project = load_project(project_dir, environ, target)
    context.check_custom_attribute_cap(project)
    for sync in project.config.syncs:
        mode_for(sync)
        context.resolve_sync_model(project, sync)
    if check_source:
        source = open_source(project.config.source, str(project.root))
        try:
            for sync in project.config.syncs:
                model = context.resolve_sync_model(project, sync)
                source.fetch(f"SELECT * FROM ({model.sql}\n) AS m LIMIT 0").read_all()
        finally:
            source.close()
    return project


def run(project_dir: str | Path = ".", *, select: Sequence[str] = (), exclude: Sequence[str] = (),
        full_refresh: bool = False, dbt_run_results: str | Path | None = None,
        progress: ProgressCallback | None = None, hooks: Sequence[Hook] = (),
        environ: Mapping[str, str] | None = None,
        target: str | None = None,
        client_factory: ClientFactory | None = None) -> RunResult:
    """Run the selected syncs (all by default) and return what each did.

    With ``dbt_run_results`` (dbt's ``target/run_results.json``), only syncs whose
    models that dbt invocation rebuilt successfully run; the others are reported
    ``skipped`` with the reason. ``target`` names the environment (``targets:``). ``hooks`` receive the run events
    (:mod:`reverse_etl.run.events`); ``progress`` is a shorthand for a progress hook.
    """
    project = load_project(project_dir, environ, target)
    syncs = context.select(project, select, exclude)
    not_run = context.after_dbt(project, syncs, Path(dbt_run_results)) if dbt_run_results is not None else {}
    return context.run_syncs(project, syncs, action="run", full_refresh=full_refresh,
                             hooks=_hooks(hooks, progress), client_factory=client_factory,
                             not_run=not_run)


def plan(project_dir: str | Path = ".", *, select: Sequence[str] = (), exclude: Sequence[str] = (),
         full_refresh: bool = False, environ: Mapping[str, str] | None = None,
         target: str | None = None) -> RunResult:
    """Dry run of the selected syncs: counts and sample payloads; sends and writes nothing."""
    project = load_project(project_dir, environ, target)
    syncs = context.select(project, select, exclude)
    return context.run_syncs(project, syncs, action="plan", full_refresh=full_refresh)


def _hooks(hooks: Sequence[Hook], progress: ProgressCallback | None) -> Hooks:
    registered = Hooks(hooks)
    if progress is not None:
        registered.add(progress_hook(progress))
    return registered


def history(project_dir: str | Path = ".", sync: str | None = None, limit: int = 20,
            *, environ: Mapping[str, str] | None = None, target: str | None = None) -> list[RunRecord]:
    """The run ledger, oldest first (the last ``limit`` runs)."""
    project = load_project(project_dir, environ, target)
    if sync is not None:
        find_sync(project, sync)
    return open_ledger(project.state_dir, project.config.state).records(sync, limit)


def rejected_rows(project_dir: str | Path, sync: str, limit: int = 50,
                  *, environ: Mapping[str, str] | None = None, target: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(total, first ``limit`` rows) a sync holds back, with the reason for each."""
    project = load_project(project_dir, environ, target)
    find_sync(project, sync)
    state = open_sync_state(project.state_dir, project.config.state, sync)
    with tempfile.TemporaryDirectory(prefix="reverse_etl_rejected_") as pinned:
        state.pin(Path(pinned))  # read once, without the lock (an object store: downloaded)
        path = state.rejected_path()
        if path is None or not path.exists():
            return 0, []
        table = pq.read_table(path)
    rows = table.sort_by([("kind", "ascending"), ("key", "ascending")]).slice(0, limit).to_pylist()
    return table.num_rows, rows


def reset(project_dir: str | Path, sync: str, *, environ: Mapping[str, str] | None = None,
          target: str | None = None, forget_everything: bool = False) -> str | None:
    """Forget a sync's snapshot and rejected rows: its next run resends everything.

    The snapshot is kept aside as knowledge, so that resend still deletes values
    that became NULL and applies ``on_removed`` to users who left, unless
    ``forget_everything``. Returns what the next run will do (None: there was no state).
    """
    project = load_project(project_dir, environ, target)
    find_sync(project, sync)
    state = open_sync_state(project.state_dir, project.config.state, sync)
    with state.lock():
        return state.reset(forget_everything=forget_everything)


def lookup(project_dir: str | Path, sync: str, key: str, *, target: str | None = None,
           environ: Mapping[str, str] | None = None) -> KeyLookup:
    """What the state holds for one key of ``sync``: the values Insider acknowledged
    (and the run that committed them), and, for a row held back, Insider's (or the
    validator's) reason, attempts and the run that last sent it.
    """
    from reverse_etl.state.lookup import lookup_key

    project = load_project(project_dir, environ, target)
    config = find_sync(project, sync)
    state = open_sync_state(project.state_dir, project.config.state, sync)
    return lookup_key(state, open_ledger(project.state_dir, project.config.state), key,
                      config.max_attempts)


def audit(project_dir: str | Path, sync: str, *, sample: int | None = None, segment_id: int | None = None,
          from_url: str | None = None, force: bool = False, repair: bool = False, examples: int = 5,
          environ: Mapping[str, str] | None = None, target: str | None = None,
          client_factory: context.ClientFactory | None = None) -> AuditResult:
    """Compare what Insider holds for ``sync`` with the model's current encoded values.

    ``sample``: that many random users through the profile endpoint; else everything
    through the raw export of ``segment_id`` (or an export link Insider already sent,
    ``from_url``). With drift, the repair is planned (a dry run), or run when
    ``repair``: a normal journaled run for exactly the drifted keys, in the ledger.
    ``result.exit_code``: 0 equal (or repaired), 3 drifted.
    """
    from reverse_etl.insider.audit import audit_sync

    project = load_project(project_dir, environ, target)
    config = find_sync(project, sync)
    source = open_source(project.config.source, str(project.root))
    closed = False

    def deliver(rebase: Any, really: bool) -> Any:
        nonlocal closed
        source.close()  # the run opens the warehouse itself
        closed = True
        return context.run_syncs(project, [config], action="run" if really else "plan",
                                 rebase={config.name: rebase}, client_factory=client_factory).syncs[0]

    try:
        runner = context.audit_runner(project, config, source)
        return audit_sync(project, config, runner, sample=sample, segment_id=segment_id, from_url=from_url,
                          force=force, examples=examples, repair=repair, deliver=deliver)
    finally:
        if not closed:
            source.close()

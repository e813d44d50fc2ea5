"""Dagster: one asset per sync, run through a resource holding the project path and target.

>>> from dagster import Definitions
>>> from reverse_etl.integrations.dagster import ReverseEtlResource, reverse_etl_assets
>>> defs = Definitions(assets=reverse_etl_assets("path/to/project"),
...                    resources={"reverse_etl": ReverseEtlResource(project_dir="path/to/project")})

Each asset's key is ``[*key_prefix, sync name]``; a sync reading a dbt model
depends on that model's asset key as dagster-dbt names it, so the lineage
graph connects ``dbt model -> sync``. The sync's tags become asset tags
(``AssetSelection.tag("daily", "")``, or ``select="tag:daily"`` in a job).
A materialization records counts, rejected, run id, outcome and duration; a
failed (or partial) sync fails the asset with the tool's one-line reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reverse_etl.integrations.steps import StepFailed, load_structure, run_step, summary
from reverse_etl.run.results import RunResult, SyncResult

try:
    import dagster as dg
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("reverse_etl.integrations.dagster needs Dagster: "
                      "pip install 'reverse_etl[dagster]'") from exc

__all__ = ["ReverseEtlResource", "dbt_asset_key", "reverse_etl_assets"]

COUNT_KEYS = ("added", "changed", "removed", "unchanged", "invalid", "held_back", "to_send", "acked",
              "rejected", "failed", "recovered")
"""Counts recorded as materialization metadata (absent ones as 0)."""


class ReverseEtlResource(dg.ConfigurableResource):
    """Where the project is and which environment (``targets:``) runs use."""

    project_dir: str
    target: str | None = None
    dbt_run_results: str | None = None
    """dbt's run_results.json: syncs whose model that dbt run did not rebuild are skipped."""
    fail_on_partial: bool = True
    """A run whose rows were partly refused fails the asset (the rest stays committed)."""

    def run_sync(self, sync: str, *, full_refresh: bool = False) -> SyncResult:
        """Run one sync; :class:`StepFailed` with the one-line reason when it must fail."""
        result = run_step(self.project_dir, select=[sync], target=self.target,
                          dbt_run_results=self.dbt_run_results, full_refresh=full_refresh,
                          fail_on_partial=self.fail_on_partial)
        return next(s for s in result.syncs if s.sync == sync)


def dbt_asset_key(node: Mapping[str, Any]) -> dg.AssetKey:
    """The asset key dagster-dbt gives a manifest node by default.

    Uses dagster-dbt's own translator when it is installed (so a custom
    ``meta.dagster.asset_key`` and future rules are honoured); otherwise its
    documented default: ``meta.dagster.asset_key``, else ``[alias]`` for a
    versioned model, else ``[schema, name]`` when the model configures a schema,
    else ``[name]``.
    """
    try:
        from dagster_dbt import DagsterDbtTranslator
    except ImportError:
        pass
    else:
        key: dg.AssetKey = DagsterDbtTranslator().get_asset_key(node)
        return key
    meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
    configured = (meta.get("dagster") or {}).get("asset_key")
    if configured:
        return dg.AssetKey(configured)
    if node.get("version"):
        return dg.AssetKey([node["alias"]])
    schema = (node.get("config") or {}).get("schema")
    return dg.AssetKey([schema, node["name"]] if schema is not None else [node["name"]])


def reverse_etl_assets(project_dir: str | Path, *, select: Sequence[str] = (), exclude: Sequence[str] = (),
                       target: str | None = None, key_prefix: Sequence[str] = (),
                       group_name: str | None = "reverse_etl", resource_key: str = "reverse_etl",
                       dbt_key: Callable[[Mapping[str, Any]], dg.AssetKey] = dbt_asset_key,
                       environ: Mapping[str, str] | None = None) -> list[dg.AssetsDefinition]:
    """One asset per selected sync (all by default; dbt-style ``select``/``exclude``).

    Reading definitions needs syncs.yml, its models and (for dbt models) the
    manifest; secrets that are not set yet are tolerated. ``dbt_key`` maps a
    manifest node to its asset key: pass your ``DagsterDbtTranslator``'s
    ``get_asset_key`` if you customised it.
    """
    from reverse_etl.project.selection import select_syncs

    project = load_structure(project_dir, target=target, environ=environ)
    syncs = select_syncs(project.config.syncs, list(select), list(exclude))
    nodes = _DbtNodes(project)
    assets = []
    for sync in syncs:
        node = nodes.node(sync.model)
        deps = [dbt_key(node)] if node is not None else []
        assets.append(_sync_asset(sync.name, sync.model, list(sync.tags), deps, list(key_prefix),
                                  group_name, resource_key, dbt=node is not None))
    return assets


def _sync_asset(name: str, model: str, tags: list[str], deps: list[dg.AssetKey], key_prefix: list[str],
                group_name: str | None, resource_key: str, *, dbt: bool) -> dg.AssetsDefinition:
    origin = "dbt model" if dbt else "model"

    # output_required=False: a sync skipped after dbt (its model was not rebuilt) materializes nothing.
    @dg.asset(key=dg.AssetKey([*key_prefix, name]), deps=deps, group_name=group_name,
              tags={tag: "" for tag in tags}, kinds={"insider"}, required_resource_keys={resource_key},
              output_required=False,
              description=f"reverse_etl sync {name!r}: {origin} {model!r} -> Insider One")
    # No annotations: Dagster reads them at runtime and a postponed (string) one fails.
    def _sync(context):
        resource: ReverseEtlResource = getattr(context.resources, resource_key)
        try:
            result = resource.run_sync(name)
        except StepFailed as failed:
            # Failure's description is what Dagster's UI and the run's failure event show.
            # Retries stay allowed: a retried run resends only what was not acknowledged.
            metadata = _metadata(failed.result.syncs[0]) if failed.result and failed.result.syncs else {}
            raise dg.Failure(description=failed.reason, metadata=metadata) from None
        if result.outcome == "skipped":
            context.log.info(f"{name}: skipped: {result.message}")
            return
        context.log.info(f"{name}: {result.outcome}: {_counts_text(result)}")
        yield dg.MaterializeResult(metadata=_metadata(result))

    return _sync


def _metadata(sync: SyncResult) -> dict[str, Any]:
    data = summary_of(sync)
    metadata: dict[str, Any] = {key: dg.MetadataValue.int(int(data["counts"].get(key, 0))) for key in COUNT_KEYS}
    metadata.update(
        run_id=dg.MetadataValue.text(data["run_id"]),
        outcome=dg.MetadataValue.text(data["outcome"]),
        duration_seconds=dg.MetadataValue.float(float(data["seconds"].get("total", 0.0))),
        requests=dg.MetadataValue.int(int(data["requests"])),
    )
    if data["message"]:
        metadata["message"] = dg.MetadataValue.text(data["message"])
    if data["full_resend_reason"]:
        metadata["full_resend_reason"] = dg.MetadataValue.text(data["full_resend_reason"])
    return metadata


def summary_of(sync: SyncResult) -> dict[str, Any]:
    """One sync's redacted summary (as :func:`~reverse_etl.integrations.steps.summary` gives it)."""
    one: dict[str, Any] = summary(RunResult(syncs=[sync]))["syncs"][0]
    return one


def _counts_text(sync: SyncResult) -> str:
    c = sync.counts
    return (f"added {c.get('added', 0)}, changed {c.get('changed', 0)}, removed {c.get('removed', 0)}; "
            f"acknowledged {c.get('acked', 0)}, rejected {c.get('rejected', 0)}")


class _DbtNodes:
    """Raw manifest nodes of the syncs' dbt models (the manifest is read once, if needed)."""

    def __init__(self, project: Any) -> None:
        self.project = project
        self._nodes: dict[str, Any] | None = None

    def node(self, model: str) -> Mapping[str, Any] | None:
        """The manifest node of ``model`` when the sync reads a dbt model, else None."""
        dbt = self.project.config.dbt
        if dbt is None or (self.project.models_dir / f"{model}.sql").is_file():
            return None
        from reverse_etl.project.dbt import load_manifest

        manifest = load_manifest(self.project.root / dbt.project_dir, dbt.target_path)
        unique_id = manifest.unique_id(model)  # raises the manifest's one-line message
        if self._nodes is None:
            # dagster-dbt's translator reads the raw node (config.meta, schema, alias, version).
            self._nodes = json.loads(manifest.path.read_text(encoding="utf-8"))["nodes"]
        node: Mapping[str, Any] = self._nodes[unique_id]
        return node

"""``reverse_etl.pull``: Insider's raw data export back into the warehouse.

One pull is: check the once-per-UTC-day guard → start the hook receiver → POST
the export request → wait (bounded) for ``{"url": ...}`` → stream the file to a
temporary directory → load it into the project's warehouse (DuckDB or
Snowflake) → record nothing else: the table *is* the result.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reverse_etl.errors import ConfigError, UsageError
from reverse_etl.insider.config import InsiderProject, ProjectConfig
from reverse_etl.insider.pull.config import ExportConfig
from reverse_etl.project.config import DuckDBSourceConfig, SnowflakeSourceConfig
from reverse_etl.project.loader import load_config

from .download import ProgressCallback, download_file
from .guard import DailyGuard
from .hook import HookReceiver
from .load import Loaded, load_duckdb
from .request import ExportQuotaError, build_body, send_request

__all__ = ["PullResult", "find_export", "pull"]


@dataclass
class PullResult:
    """What one pull did: the table it wrote and how the file's columns were named."""

    export: str
    table: str
    warehouse: str
    """``duckdb`` or ``snowflake``."""
    format: str
    mode: str
    rows: int
    bytes: int
    url: str
    """The file link Insider sent (valid 24 h; ``--from-url`` loads it again)."""
    requested: bool
    """False when the file came from ``from_url`` (no export request was sent)."""
    columns: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    """File columns loaded under another name (``a_c_tier`` → ``tier``; see pull.load)."""
    kept_prefix: list[str] = field(default_factory=list)
    """Table columns that kept a prefix because the clean name was taken (``c_email``)."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the link without its query string)."""
        data = asdict(self)
        data["url"] = self.url.split("?", 1)[0]
        return data


def find_export(project: InsiderProject, name: str) -> ExportConfig:
    """The export called ``name``; raises UsageError listing the known names."""
    for export in project.config.exports:
        if export.name == name:
            return export
    known = ", ".join(e.name for e in project.config.exports) or "none; add an `exports:` list"
    raise UsageError(f"no export named {name!r} in {project.config_path.name} (known: {known})")


def _check_warehouse(project: InsiderProject) -> str:
    source = project.config.source
    if isinstance(source, DuckDBSourceConfig):
        if source.path == ":memory:":
            raise ConfigError("pull loads into the project's warehouse, and source.path is "
                              ":memory:; point source.path at a DuckDB file")
        if source.read_only:
            raise ConfigError("pull writes the export into the warehouse, but source.read_only "
                              "is true; set it to false to pull")
        return "duckdb"
    if isinstance(source, SnowflakeSourceConfig):
        return "snowflake"
    raise ConfigError(f"pull loads into DuckDB or Snowflake; the project's source is "
                      f"{source.type}")


def _request_link(project: InsiderProject, export: ExportConfig, now: datetime, force: bool,
                  progress: ProgressCallback | None) -> str:
    destination = project.config.destination
    guard = DailyGuard(project.state_dir, destination.partner)
    if not force:
        guard.check(export.name, now)
    with HookReceiver(export.webhook, export.name) as hook:
        body = build_body(export, hook.hook_url, now)
        try:
            send_request(destination, export, body, now)
        except ExportQuotaError:
            # Insider says today's export is used (maybe by another machine):
            # remember it, so the next attempt is refused before sending.
            guard.record(export.name, now)
            raise
        guard.record(export.name, now)
        if progress is not None:
            progress(f"export requested; waiting for Insider's hook at {hook.hook_url}", 0, None)
        return hook.wait()


def pull(project_dir: str | Path, name: str, *, force: bool = False,
         from_url: str | None = None, environ: Mapping[str, str] | None = None,
         progress: ProgressCallback | None = None,
         clock: Callable[[], datetime] | None = None) -> PullResult:
    """Request the raw export ``name`` from Insider and load it into the warehouse.

    ``force`` skips the local once-per-UTC-day check (Insider may still answer
    429). ``from_url`` loads a file link Insider already sent, without a new
    request. ``progress(stage, done, total)`` is told about the wait and the
    download (bytes). Raises :class:`ConfigError`, :class:`DeliveryError`,
    :class:`SourceError` (the warehouse) or :class:`StateError`, each one line.
    """
    started = time.monotonic()
    project = load_config(project_dir, environ, ProjectConfig)
    export = find_export(project, name)
    warehouse = _check_warehouse(project)
    now = (clock or (lambda: datetime.now(UTC)))()
    if from_url is not None:
        if not from_url.startswith(("http://", "https://")):
            raise UsageError(f"--from-url must be an http(s) URL, got {from_url!r}")
        url = from_url
    else:
        url = _request_link(project, export, now, force, progress)
    with tempfile.TemporaryDirectory(prefix="reverse-etl-pull-") as tmp:
        path = Path(tmp) / f"{export.name}.{export.format}"
        size = download_file(url, path, export=export.name,
                             timeout=project.config.destination.timeout_seconds,
                             progress=progress)
        if progress is not None:
            progress(f"loading into {warehouse} table {export.destination.table}", 0, None)
        loaded = _load(project, warehouse, export, path)
    return PullResult(
        export=export.name, table=export.destination.table, warehouse=warehouse,
        format=export.format, mode=export.destination.mode, rows=loaded.rows, bytes=size,
        url=url, requested=from_url is None, columns=loaded.columns,
        renamed=loaded.mapping.renamed, kept_prefix=loaded.mapping.kept_prefix,
        seconds=round(time.monotonic() - started, 3))


def _load(project: InsiderProject, warehouse: str, export: ExportConfig, path: Path) -> Loaded:
    source = project.config.source
    table, mode = export.destination.table, export.destination.mode
    if isinstance(source, SnowflakeSourceConfig):
        from .snowflake_load import load_snowflake

        return load_snowflake(source, project.root, path, export.format, table, mode)
    assert isinstance(source, DuckDBSourceConfig) and warehouse == "duckdb"
    return load_duckdb(str(project.root / source.path), path, export.format, table, mode)

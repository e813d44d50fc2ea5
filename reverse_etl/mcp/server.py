"""An MCP server (stdio) over one reverse_etl project: list, plan, run, history, rejected rows.

Tools (each returns JSON-ready data, redacted; an error is one line, no traceback):

* ``list_syncs``: name, model, mode, operation, tags, identifiers and attributes of each sync;
* ``plan_sync``: a dry run: counts and sample payloads; sends and writes nothing;
* ``run_sync``: a real run; refused unless the server was started with
  ``--allow-runs`` *and* the call passes ``confirm: true``; a failed run is a
  tool error whose text is the CLI's one-line reason (a partial run answers
  normally, with ``outcome: partial``: ask ``rejected_rows`` why);
* ``history``: the run ledger, newest last;
* ``rejected_rows``: what a sync holds back, with the reason for each row.

Secrets never leave: the destination's settings (API key, URLs) are not
listed, and every answer passes through :func:`reverse_etl.redact.redact_value`.
The API calls run in a worker thread: a run drives its own event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from reverse_etl import api
from reverse_etl.errors import ReverseEtlError
from reverse_etl.redact import redact, redact_value
from reverse_etl.run.results import RunResult

try:
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("reverse-etl mcp needs the MCP Python SDK: pip install 'reverse_etl[mcp]'") from exc

__all__ = ["RUNS_DISABLED", "build_server", "serve"]

T = TypeVar("T")

RUNS_DISABLED = ("runs are disabled: this server is read-only; restart it with "
                 "`reverse-etl mcp --allow-runs` to let assistants run syncs")
NOT_CONFIRMED = ("run_sync sends data to Insider: call it again with confirm=true once the user "
                 "has agreed (plan_sync shows what it would send)")


def build_server(project_dir: str | Path, *, target: str | None = None,
                 allow_runs: bool = False) -> MCPServer:
    """The MCP server for the project in ``project_dir`` (``target``: the environment)."""
    server = MCPServer(
        "reverse-etl", version="0.1.0",
        instructions=("Operates one reverse_etl project that syncs warehouse models into Insider One. "
                      "Use plan_sync to see what a run would send; run_sync "
                      + ("needs confirm=true." if allow_runs else "is disabled on this server.")))
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)

    async def call(fn: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(fn)
        except ReverseEtlError as error:
            raise ToolError(redact(str(error))) from None

    @server.tool(annotations=read_only)
    async def list_syncs() -> dict[str, Any]:
        """The project's syncs: name, model, mode, operation, tags, identifiers, attributes."""
        project = await call(lambda: api.load_project(project_dir, target=target))
        syncs = [{"name": s.name, "model": s.model, "mode": s.mode, "operation": s.operation,
                  "tags": list(s.tags), "identifiers": s.identifiers.columns(),
                  "attributes": dict(s.attributes)} for s in project.config.syncs]
        answer: dict[str, Any] = redact_value({"target": project.target, "syncs": syncs})
        return answer

    @server.tool(annotations=read_only)
    async def plan_sync(sync: str, full_refresh: bool = False) -> dict[str, Any]:
        """Dry run of one sync: what the next run would add, change, remove and send (sample payloads).

        Sends nothing to Insider and writes no state.
        """
        result = await call(lambda: api.plan(project_dir, select=[_exact(sync)], full_refresh=full_refresh,
                                             target=target))
        return _answer(result, samples=True)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                             idempotent_hint=False, open_world_hint=True))
    async def run_sync(sync: str, confirm: bool = False, full_refresh: bool = False) -> dict[str, Any]:
        """Run one sync for real: sends its changes to Insider One and records the run.

        Only when the server was started with --allow-runs, and only with confirm=true
        (ask the user first; plan_sync shows what would be sent).
        """
        if not allow_runs:
            raise ToolError(RUNS_DISABLED)
        if not confirm:
            raise ToolError(NOT_CONFIRMED)
        result = await call(lambda: api.run(project_dir, select=[_exact(sync)], full_refresh=full_refresh,
                                            target=target))
        failed = [s for s in result.syncs if s.outcome in ("failed", "interrupted")]
        if failed:  # the tool's one-line reason, as the CLI prints it; partial runs answer normally
            raise ToolError("; ".join(redact(f"{s.sync}: {s.outcome}: {s.message}") for s in failed)
                            + f" (exit code {result.exit_code})")
        return _answer(result, samples=False)

    @server.tool(annotations=read_only)
    async def history(sync: str | None = None, limit: int = 20) -> dict[str, Any]:
        """The last runs (of one sync, or all), oldest first: outcome, counts, error, duration."""
        records = await call(lambda: api.history(project_dir, sync, max(1, min(limit, 500)), target=target))
        answer: dict[str, Any] = redact_value({"runs": [asdict(r) for r in records]})
        return answer

    @server.tool(annotations=read_only)
    async def rejected_rows(sync: str, limit: int = 50) -> dict[str, Any]:
        """Rows a sync holds back (refused by Insider or invalid), with the reason for each."""
        total, rows = await call(lambda: api.rejected_rows(project_dir, sync, max(1, min(limit, 500)),
                                                           target=target))
        answer: dict[str, Any] = redact_value({"total": total, "rows": rows})
        return answer

    @server.tool(annotations=read_only)
    async def lookup(sync: str, key: str) -> dict[str, Any]:
        """One key of a sync: the values Insider acknowledged (and the run that committed them),
        or, for a row held back, Insider's (or the validator's) reason, attempts and last run.
        """
        found = await call(lambda: api.lookup(project_dir, sync, key, target=target))
        answer: dict[str, Any] = redact_value(found.to_dict())
        return answer

    return server


def _exact(sync: str) -> str:
    """A sync name as a selector: refuse globs and methods, which could select many syncs."""
    if not sync or any(ch in sync for ch in "*?[]:, "):
        raise ToolError(f"sync must be one sync's name (see list_syncs), not a selector: {sync!r}")
    return sync


def _answer(result: RunResult, *, samples: bool) -> dict[str, Any]:
    data = result.to_dict()
    for sync in data["syncs"]:
        if not samples:
            sync.pop("samples", None)
    answer: dict[str, Any] = redact_value(data)
    return answer


def serve(project_dir: str | Path, *, target: str | None = None, allow_runs: bool = False) -> None:
    """Serve the project over stdio until the client closes the connection."""
    build_server(project_dir, target=target, allow_runs=allow_runs).run("stdio")

"""Server-rendered pages (Jinja2, no JavaScript): syncs, a run, rejected rows, row lookup.

Each page reads through the service, which reads through :mod:`reverse_etl.api`.
Pages only read; nothing here starts a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from reverse_etl import api
from reverse_etl.errors import ReverseEtlError
from reverse_etl.redact import redact_value
from reverse_etl.serve.service import Service

TEMPLATES = Path(__file__).parent / "templates"
REJECTED_PAGE = 500
"""Rejected rows shown on one page (after filtering)."""

STAGES = ("source", "diff", "deliver", "commit", "total")
COUNT_ORDER = ("added", "changed", "removed", "unchanged", "invalid", "to_send", "acked", "rejected",
               "failed", "held_back", "recovered")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["dash"] = _show
    return env


def _show(value: Any) -> Any:
    """None as a dash; lists and objects as JSON (what Insider receives), not Python reprs."""
    if value is None or value == "":
        return "—"
    if isinstance(value, (list, dict)):
        return orjson.dumps(value, default=str).decode()
    return value


def routes(service: Service) -> list[Route]:
    """The page routes of ``service``."""
    env = _environment()

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        project = service.project
        html = env.get_template(name).render(project_name=project.root.name, target=project.target,
                                             **redact_value(context))
        return HTMLResponse(html, status_code=status)

    def not_found(message: str) -> HTMLResponse:
        return render("error.html", 404, title="Not found", message=message)

    async def overview(_request: Request) -> HTMLResponse:
        rows = await run_in_threadpool(service.overview)
        return render("overview.html", title="Syncs", syncs=rows)

    async def run_detail(request: Request) -> HTMLResponse:
        run_id = request.path_params["run_id"]
        record = await run_in_threadpool(service.record, run_id)
        if record is None:
            queued = service.queue.get(run_id)
            if queued is not None and queued.run_id:
                record = await run_in_threadpool(service.record, queued.run_id)
            if record is None:
                return not_found(f"no run {run_id!r} in the ledger")
        details = record.details or {}
        seconds = details.get("seconds", {}) or {}
        stages = [(s, seconds[s]) for s in STAGES if s in seconds]
        counts = [(k, record.counts[k]) for k in COUNT_ORDER if k in record.counts]
        counts += [(k, v) for k, v in record.counts.items() if k not in COUNT_ORDER]
        return render("run.html", title=f"Run {record.run_id}", run=record, stages=stages, counts=counts,
                      requests=details.get("requests", 0), notes=details.get("notes", []))

    async def rejected(request: Request) -> HTMLResponse:
        sync = request.path_params["name"]
        if sync not in service.sync_names():
            return not_found(f"no sync named {sync!r}")
        kind = request.query_params.get("kind", "")
        text = request.query_params.get("q", "").strip()
        total, rows = await run_in_threadpool(api.rejected_rows, service.options.project_dir, sync, 10**9,
                                              environ=service.environ, target=service.options.target)
        kinds = sorted({str(r["kind"]) for r in rows})
        wanted = [r for r in rows if (not kind or r["kind"] == kind)
                  and (not text or text.lower() in f"{r['key']} {r['reason']}".lower())]
        return render("rejected.html", title=f"Rejected rows of {sync}", sync=sync, total=total,
                      shown=wanted[:REJECTED_PAGE], matching=len(wanted), kinds=kinds, kind=kind, q=text)

    async def lookup(request: Request) -> HTMLResponse:
        sync = request.path_params["name"]
        if sync not in service.sync_names():
            return not_found(f"no sync named {sync!r}")
        key = request.query_params.get("key", "").strip()
        found, error = None, None
        if key:
            try:
                found = await run_in_threadpool(api.lookup, service.options.project_dir, sync, key,
                                                target=service.options.target, environ=service.environ)
            except ReverseEtlError as exc:
                error = str(exc)
        return render("lookup.html", title=f"Row lookup in {sync}", sync=sync, key=key, found=found,
                      error=error, syncs=service.sync_names())

    return [
        Route("/", overview),
        Route("/runs/{run_id}", run_detail),
        Route("/syncs/{name}/rejected", rejected),
        Route("/syncs/{name}/lookup", lookup),
    ]

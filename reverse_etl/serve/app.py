"""The HTTP surface: JSON triggers and reads under ``/api``, pages, ``/metrics``, ``/healthz``.

Everything is readable without credentials; anything that starts a run needs the
bearer token (``POST /api/...``) or a valid webhook signature. A refusal is 401
with one line saying what is missing, never which part of a secret was wrong.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reverse_etl import api
from reverse_etl.errors import ReverseEtlError
from reverse_etl.redact import redact, redact_value
from reverse_etl.serve import auth, pages
from reverse_etl.serve.queue import QueuedRun
from reverse_etl.serve.service import Service
from reverse_etl.serve.webhooks import DbtCloudEvent, fetch_run_results

log = logging.getLogger("reverse_etl.serve")

WAIT_DEFAULT = 300.0


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(redact_value(value), default=str)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": redact(message)}, status, headers)


def create_app(service: Service) -> Starlette:
    """The Starlette application serving ``service``."""

    def refused(endpoint: str, why: str, scheme: str = "Bearer") -> Response:
        service.metrics.refused.labels(endpoint).inc()
        return _error(401, why, {"WWW-Authenticate": scheme})

    def token_refusal(request: Request, endpoint: str) -> Response | None:
        if service.secrets.token is None:
            return refused(endpoint, f"triggers are off: set ${service.options.token_env} to a token "
                                     "and send it as 'Authorization: Bearer <token>'")
        if not auth.bearer_ok(request.headers.get("authorization"), service.secrets.token):
            return refused(endpoint, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")
        return None

    async def answer(request: Request, runs: list[tuple[QueuedRun, bool]], many: bool,
                     note: str | None = None) -> Response:
        wait = request.query_params.get("wait", "").lower() in ("1", "true", "yes")
        if wait:
            try:
                timeout = float(request.query_params.get("timeout", WAIT_DEFAULT))
            except ValueError:
                return _error(400, "timeout must be a number of seconds")
            deadline = asyncio.get_running_loop().time() + timeout
            for run, _ in runs:
                left = max(0.0, deadline - asyncio.get_running_loop().time())
                await run_in_threadpool(run.done.wait, left)
        finished = all(r.status == "finished" for r, _ in runs)
        items = [{**r.to_dict(), "coalesced": joined, "url": f"/api/runs/{r.id}"} for r, joined in runs]
        status = 200 if wait and finished else 202
        if many:
            return _json({"runs": items, **({"note": note} if note else {})}, status)
        return _json(items[0], status)

    async def trigger_sync(request: Request) -> Response:
        if (refusal := token_refusal(request, "sync_runs")) is not None:
            return refusal
        name = request.path_params["name"]
        if name not in service.sync_names():
            return _error(404, f"no sync named {name!r} (known: {', '.join(service.sync_names())})")
        return await answer(request, [service.submit(name, "api")], many=False)

    async def trigger_selected(request: Request) -> Response:
        if (refusal := token_refusal(request, "runs")) is not None:
            return refusal
        selectors = request.query_params.getlist("select")
        if not selectors and (await request.body()):
            try:
                body = orjson.loads(await request.body())
                selectors = list(body.get("select", [])) if isinstance(body, dict) else []
            except (orjson.JSONDecodeError, TypeError):
                return _error(400, 'body must be JSON like {"select": ["tag:daily"]}')
        if not selectors:
            return _error(400, "say which syncs: ?select=NAME|tag:TAG|model:MODEL (repeatable)")
        try:
            names = service.select(selectors)
        except ReverseEtlError as exc:
            return _error(400, str(exc))
        return await answer(request, [service.submit(n, "api") for n in names], many=True)

    async def run_status(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        queued = service.queue.get(run_id)
        if queued is not None:
            return _json(queued.to_dict())
        record = await run_in_threadpool(service.record, run_id)
        if record is None:
            return _error(404, f"no run {run_id!r} (neither queued here nor in the ledger)")
        return _json({"id": record.run_id, "run_id": record.run_id, "sync": record.sync, "status": "finished",
                      "outcome": record.outcome, "counts": record.counts, "message": record.error,
                      "started_at": record.started_at, "finished_at": record.finished_at})

    async def syncs_json(_request: Request) -> Response:
        return _json({"syncs": await run_in_threadpool(service.overview)})

    async def lookup_json(request: Request) -> Response:
        key = request.query_params.get("key")
        if not key:
            return _error(400, "say which key: ?key=...")
        try:
            found = await run_in_threadpool(api.lookup, service.options.project_dir, request.path_params["name"],
                                            key, target=service.options.target, environ=service.environ)
        except ReverseEtlError as exc:
            return _error(404 if "no sync named" in str(exc) else 400, str(exc))
        return _json(found.to_dict())

    async def dbt_cloud(request: Request) -> Response:
        body = await request.body()
        if not auth.dbt_cloud_ok(request.headers.get("authorization"), service.secrets.dbt_cloud, body):
            return refused("dbt_cloud", f"dbt Cloud signature missing or wrong (secret from "
                                        f"${service.options.dbt_cloud_secret_env})", "HMAC-SHA256")
        try:
            event = DbtCloudEvent.parse(orjson.loads(body))
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _error(400, str(exc).splitlines()[0])
        if not event.succeeded:
            return _json({"runs": [], "note": f"ignored: {event.event_type or 'event'} with status "
                                              f"{event.status or 'unknown'} (only successful job.run.completed runs syncs)"})
        try:
            names = service.select(request.query_params.getlist("select"))
        except ReverseEtlError as exc:
            return _error(400, str(exc))
        token = service.environ.get(service.options.dbt_cloud_token_env)
        artifact: Path | None = None
        why: str | None = f"${service.options.dbt_cloud_token_env} is not set: ran the selected syncs"
        if token:
            artifact, why = await run_in_threadpool(fetch_run_results, service.options.dbt_cloud_url, token,
                                                    event, service.artifacts_dir())
            if artifact is None:
                why = f"{why}; ran the selected syncs unconditionally"
        note = (f"gated on dbt Cloud run {event.run_id}'s run_results.json: syncs whose models it did not "
                "rebuild are skipped") if artifact else why
        runs = [service.submit(n, "dbt-cloud", dbt_run_results=artifact) for n in names]
        return await answer(request, runs, many=True, note=note)

    async def github(request: Request) -> Response:
        body = await request.body()
        if not auth.github_ok(request.headers.get("x-hub-signature-256"), service.secrets.github, body):
            return refused("github", f"GitHub signature (X-Hub-Signature-256) missing or wrong (secret from "
                                     f"${service.options.github_secret_env})", "HMAC-SHA256")
        if request.headers.get("x-github-event") == "ping":
            return _json({"runs": [], "note": "pong"})
        try:
            names = service.select(request.query_params.getlist("select"))
        except ReverseEtlError as exc:
            return _error(400, str(exc))
        return await answer(request, [service.submit(n, "github") for n in names], many=True)

    async def metrics(_request: Request) -> Response:
        service.metrics.queue_depth.set(service.queue.depth)
        body = await run_in_threadpool(service.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(_request: Request) -> Response:
        worker = service.queue._thread
        alive = worker is None or worker.is_alive()
        return _json({"status": "ok" if alive else "worker stopped", "syncs": len(service.sync_names()),
                      "queued": service.queue.depth}, 200 if alive else 503)

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/api/syncs", syncs_json),
        Route("/api/syncs/{name}/runs", trigger_sync, methods=["POST"]),
        Route("/api/syncs/{name}/lookup", lookup_json),
        Route("/api/runs", trigger_selected, methods=["POST"]),
        Route("/api/runs/{run_id}", run_status),
        Route("/api/webhooks/dbt-cloud", dbt_cloud, methods=["POST"]),
        Route("/api/webhooks/github", github, methods=["POST"]),
        *pages.routes(service),
    ]
    return Starlette(routes=routes)

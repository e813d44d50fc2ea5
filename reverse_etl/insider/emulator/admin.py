"""Inspection and control endpoints under ``/_emulator/`` (no auth, never faulted).

::

    GET  /_emulator/profile?uuid=u1         one profile (also email=, phone_number=,
                                            insider_id=, custom.<name>=); 404 if none
    GET  /_emulator/profiles                every profile
    GET  /_emulator/counts                  users, events, dropped events, requests...
    GET  /_emulator/requests                the request log (token redacted)
    GET  /_emulator/segments                first-party segments and their results
    GET  /_emulator/exports                 raw exports produced
    POST /_emulator/reset                   forget everything (options stay)
    GET  /_emulator/faults                  the current fault configuration
    POST /_emulator/faults                  replace it (body: see faults.py); 400 if bad
    POST /_emulator/dynamic_segments        {"segment_id": N}: an every-profile
                                            dynamic segment for the raw export
    POST /_emulator/drift                   change what the tenant holds behind the
                                            sync's back (see drift.py); 404/400 if bad
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from . import drift as drift_injection
from .pipeline import json_response
from .state import EmulatorState

IDENTIFIER_PARAMS = ("uuid", "email", "phone_number", "insider_id")


def criteria_from_query(query: Any, custom_identifiers: tuple[str, ...]) -> list[tuple[str, str]]:
    """(kind, value) lookup criteria from query parameters; ``ValueError`` if unknown."""
    criteria: list[tuple[str, str]] = []
    for key, value in query.items():
        custom = key.startswith("custom.") and key[7:] in custom_identifiers
        if key in IDENTIFIER_PARAMS or custom:
            criteria.append((key, value))
        else:
            raise ValueError(f"unknown lookup parameter {key}; use uuid, email, phone_number, "
                             "insider_id or custom.<identifier>")
    if not criteria:
        raise ValueError("give an identifier, e.g. ?uuid=u1")
    return criteria


def setup(app: web.Application, state: EmulatorState) -> None:
    """Register the admin routes."""

    async def profile(request: web.Request) -> web.Response:
        try:
            criteria = criteria_from_query(request.query, state.options.custom_identifiers)
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        found = state.lookup(criteria)
        if found is None:
            return json_response(404, {"error": "no such profile"})
        return json_response(200, found)

    async def profiles(request: web.Request) -> web.Response:
        return json_response(200, state.profiles())

    async def counts(request: web.Request) -> web.Response:
        return json_response(200, state.counts())

    async def requests(request: web.Request) -> web.Response:
        return json_response(200, state.request_log())

    async def segments(request: web.Request) -> web.Response:
        return json_response(200, state.segment_list())

    async def exports(request: web.Request) -> web.Response:
        return json_response(200, state.export_list())

    async def reset(request: web.Request) -> web.Response:
        state.reset()
        return json_response(200, {"reset": True})

    async def get_faults(request: web.Request) -> web.Response:
        return json_response(200, state.faults.config.to_dict())

    async def set_faults(request: web.Request) -> web.Response:
        try:
            raw = orjson.loads(await request.read() or b"{}")
            if not isinstance(raw, dict):
                raise ValueError("the fault configuration must be a JSON object")
            with state.lock:
                state.faults.configure(raw)
        except (ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, state.faults.config.to_dict())

    async def add_dynamic_segment(request: web.Request) -> web.Response:
        try:
            raw = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            return json_response(400, {"error": str(exc)})
        sid = raw.get("segment_id") if isinstance(raw, dict) else None
        if not isinstance(sid, int) or isinstance(sid, bool) or sid <= 0:
            return json_response(400, {"error": "segment_id must be a positive integer"})
        with state.lock:
            state.dynamic_segments[sid] = None
        return json_response(200, {"segment_id": sid})

    async def drift(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
            return json_response(200, drift_injection.apply(state, body))
        except orjson.JSONDecodeError as exc:
            return json_response(400, {"error": str(exc)})
        except drift_injection.DriftError as exc:
            return json_response(exc.status, {"error": str(exc)})

    r = app.router
    r.add_get("/_emulator/profile", profile)
    r.add_get("/_emulator/profiles", profiles)
    r.add_get("/_emulator/counts", counts)
    r.add_get("/_emulator/requests", requests)
    r.add_get("/_emulator/segments", segments)
    r.add_get("/_emulator/exports", exports)
    r.add_post("/_emulator/reset", reset)
    r.add_get("/_emulator/faults", get_faults)
    r.add_post("/_emulator/faults", set_faults)
    r.add_post("/_emulator/dynamic_segments", add_dynamic_segment)
    r.add_post("/_emulator/drift", drift)

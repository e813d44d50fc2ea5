"""Raw data export, ``POST /api/raw/v1/export`` (insider-api.md §7), and its files.

Request rules enforced (400 ``{"error":"<reason>: bad request"}`` otherwise):

- fields: ``segment``, ``attributes``, ``events``, ``format``, ``hook``; no others;
- ``segment.segment_id`` a positive integer naming a *dynamic* segment the emulator
  knows (option ``dynamic_segments``; default ``{123456789: every profile}``;
  ``emu.add_dynamic_segment``; ``POST /_emulator/dynamic_segments``);
- a non-empty ``attributes`` (names or ``"*"``) or ``events`` (or both);
- ``events``: integer ``start_date`` <= ``end_date`` (epoch seconds) and a
  non-empty ``wanted`` list; each wanted event has a valid ``event_name``, an
  optional ``params`` list of names and at most one filter; a filter has ``key``,
  an ``operator`` of eq, ne, lt, gt, lteq, gteq, and ``values`` (non-empty; a
  single value for lt/gt/lteq/gteq) xor ``values_url`` (a loopback URL of a
  headerless one-column file, fetched before answering: a bad one fails the request);
- ``format`` csv, parquet or json; ``hook`` a loopback http(s) URL.

A valid request answers 200 ``{"success":true,"message":...}`` (the emulator's
choice) and counts as the UTC day's one export; a second accepted one the same
UTC day gets 429 ``{"error":"rejected: too many requests"}`` with Retry-After
(seconds to midnight UTC). Failed requests do not count. After ``export_delay``
seconds the file is built from what the emulator holds (layout: ``exportfile``),
served at ``<emulator url>/<partner>/p/<file>`` and ``{"url": ...}`` is POSTed
to the hook. A link older than 24 hours (by the emulator clock) answers 410
``{"error":"export link expired: ..."}``; an unknown file 404.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from .exportfile import build_rows, encode
from .net import OutboundError, download, post_json, spawn, url_problem
from .pipeline import TOO_MANY, Outcome, Pipeline, bad_request, json_response
from .state import EmulatorState
from .validation import EVENT_NAME_PATTERN, NAME_PATTERN

FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet",
           "json": "application/x-ndjson"}
OPERATORS = frozenset({"eq", "ne", "lt", "gt", "lteq", "gteq"})
LINK_TTL_SECONDS = 24 * 3600
_name_ok = re.compile(NAME_PATTERN, re.ASCII).fullmatch
_event_ok = re.compile(EVENT_NAME_PATTERN, re.ASCII).fullmatch


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_attributes(attrs: Any) -> None:
    if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
        raise bad_request("attributes must be an array of attribute names")
    for a in attrs:
        if a != "*" and not _name_ok(a):
            raise bad_request(f"attribute name {a!r} must match {NAME_PATTERN}")


async def _check_filter(i: int, flt: Any) -> dict[str, Any]:
    if not isinstance(flt, dict) or set(flt) - {"key", "operator", "values", "values_url"}:
        raise bad_request(f"events.wanted[{i}].filters[0] must have key, operator, values "
                          "or values_url")
    if not isinstance(flt.get("key"), str) or not flt["key"]:
        raise bad_request(f"events.wanted[{i}].filters[0].key must be a parameter name")
    if flt.get("operator") not in OPERATORS:
        raise bad_request(f"events.wanted[{i}].filters[0].operator must be one of "
                          f"{', '.join(sorted(OPERATORS))}")
    if ("values" in flt) == ("values_url" in flt):
        raise bad_request(f"events.wanted[{i}].filters[0] needs values or values_url, not both")
    if "values_url" in flt:
        problem = url_problem(flt["values_url"])
        if problem is not None:
            raise bad_request(f"events.wanted[{i}].filters[0].values_url: {problem}")
        try:
            data = await download(flt["values_url"], 10_000_000)
            values: list[Any] = [v.strip() for v in data.decode("utf-8").splitlines()
                                 if v.strip()]
        except (OutboundError, UnicodeDecodeError) as exc:
            raise bad_request(f"events.wanted[{i}].filters[0].values_url: {exc}") from exc
    else:
        values = flt["values"]
        if not isinstance(values, list) or not values or not all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            raise bad_request(f"events.wanted[{i}].filters[0].values must be a non-empty "
                              "array of strings or numbers")
    if not values:
        raise bad_request(f"events.wanted[{i}].filters[0] has no values")
    if flt["operator"] not in ("eq", "ne") and len(values) != 1:
        raise bad_request(f"events.wanted[{i}].filters[0].operator {flt['operator']} "
                          "takes exactly one value")
    return {"key": flt["key"], "operator": flt["operator"], "values": values}


async def _check_events(events: Any) -> dict[str, Any]:
    if not isinstance(events, dict) or set(events) - {"start_date", "end_date", "wanted"}:
        raise bad_request("events must be an object with start_date, end_date and wanted")
    start: Any = events.get("start_date")
    end: Any = events.get("end_date")
    if not _int(start) or not _int(end) or start > end:
        raise bad_request("events.start_date and events.end_date must be epoch seconds, "
                          "start_date <= end_date")
    wanted = events.get("wanted")
    if not isinstance(wanted, list) or not wanted:
        raise bad_request("events.wanted must be a non-empty array")
    checked = []
    for i, w in enumerate(wanted):
        if not isinstance(w, dict) or set(w) - {"event_name", "params", "filters"}:
            raise bad_request(f"events.wanted[{i}] must have event_name, params, filters")
        name = w.get("event_name")
        if not isinstance(name, str) or not _event_ok(name):
            raise bad_request(f"events.wanted[{i}].event_name must match {EVENT_NAME_PATTERN}")
        params = w.get("params", [])
        if not isinstance(params, list) or not all(
                isinstance(p, str) and (_name_ok(p) or p == "timestamp") for p in params):
            raise bad_request(f"events.wanted[{i}].params must be an array of parameter names")
        filters = w.get("filters", [])
        if not isinstance(filters, list) or len(filters) > 1:
            raise bad_request(f"events.wanted[{i}].filters: at most one filter per event")
        checked.append({"event_name": name, "params": params,
                        "filters": [await _check_filter(i, f) for f in filters]})
    return {"start_date": start, "end_date": end, "wanted": checked}


async def check_request(body: Any, state: EmulatorState) -> dict[str, Any]:
    """The normalised export request; raises ``BadRequest`` (400) when invalid."""
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    unknown = set(body) - {"segment", "attributes", "events", "format", "hook"}
    if unknown:
        raise bad_request(f"unknown field(s) {', '.join(sorted(unknown))}")
    seg = body.get("segment")
    sid: Any = seg.get("segment_id") if isinstance(seg, dict) else None
    if not isinstance(seg, dict) or not _int(sid) or sid <= 0 or set(seg) != {"segment_id"}:
        raise bad_request("segment must be {\"segment_id\": <positive integer>}")
    with state.lock:
        if sid not in state.dynamic_segments:
            raise bad_request(f"segment_id {sid} is not a dynamic segment")
    if not body.get("attributes") and not body.get("events"):
        raise bad_request("attributes or events must be defined")
    request: dict[str, Any] = {"segment_id": sid, "attributes": [], "events": None}
    if body.get("attributes"):
        _check_attributes(body["attributes"])
        request["attributes"] = body["attributes"]
    if body.get("events"):
        request["events"] = await _check_events(body["events"])
    if body.get("format") not in FORMATS:
        raise bad_request("format must be csv, parquet or json")
    request["format"] = body["format"]
    problem = url_problem(body.get("hook"))
    if problem is not None:
        raise bad_request(f"hook: {problem}")
    request["hook"] = body["hook"]
    return request


async def _produce(state: EmulatorState, request: dict[str, Any]) -> None:
    if state.options.export_delay:
        await asyncio.sleep(state.options.export_delay)
    with state.lock:
        predicate = state.dynamic_segments.get(request["segment_id"])
        profiles = [p for p in state.profiles() if predicate is None or predicate(p)]
    columns, rows = build_rows(profiles, request, state.options.custom_identifiers)
    data = encode(columns, rows, request["format"])
    name = f"{secrets.token_hex(12)}.{request['format']}"
    url = f"{state.base_url}/{state.options.partner}/p/{name}"
    entry: dict[str, Any] = {"file": name, "url": url, "format": request["format"],
                             "rows": len(rows), "columns": columns,
                             "segment_id": request["segment_id"],
                             "created_at": state.now(), "hook": request["hook"],
                             "hook_status": None, "data": data}
    with state.lock:
        state.exports[name] = entry
    try:
        status: Any = await post_json(request["hook"], {"url": url})
    except OutboundError as exc:
        status = f"failed: {exc}"
    with state.lock:
        entry["hook_status"] = status


def setup(app: web.Application, state: EmulatorState, pipeline: Pipeline) -> None:
    """Register the export endpoint and the file route."""

    async def export(body: Any, request: web.Request) -> Outcome:
        checked = await check_request(body, state)
        now = datetime.fromtimestamp(state.now(), UTC)
        day = now.date().isoformat()
        with state.lock:
            if day in state.export_days:
                midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
                wait = max(1, int((midnight - now).total_seconds()))
                return 429, TOO_MANY, {"Retry-After": str(wait)}
            state.export_days.add(day)
        spawn(state, _produce(state, checked))
        return 200, {"success": True, "message": "export accepted; the file URL will be "
                     "posted to the hook"}, None

    async def download_file(request: web.Request) -> web.StreamResponse:
        if request.match_info["partner"] != state.options.partner:
            return json_response(404, {"error": "no such export file"})
        with state.lock:
            entry = state.exports.get(request.match_info["file"])
            now = state.now()
        if entry is None:
            return json_response(404, {"error": "no such export file"})
        if now - entry["created_at"] > LINK_TTL_SECONDS:
            return json_response(410, {"error": "export link expired: links are valid for "
                                       "24 hours after the export was produced"})
        return web.Response(body=entry["data"], content_type=FORMATS[entry["format"]])

    app.router.add_post("/api/raw/v1/export", pipeline.wrap("raw_export", export))
    app.router.add_get("/{partner}/p/{file}", download_file)

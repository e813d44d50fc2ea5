"""First-party segment upload, ``POST /fps/v1/upload`` (insider-api.md §6).

The request is answered at once (200 ``{"statusMessage":"OK"}``); processing runs
in the background after ``fps_callback_delay`` seconds: download ``fileUrl``
(loopback only), validate every non-blank line against ``attributeName``
(``em``: email, ``pn``: E.164 phone, ``uuid``: non-empty string), match existing
profiles (FPS creates no user), then POST to ``callbackUrl``::

    {"segment_name": ..., "valid_values_count": V, "invalid_values_count": I,
     "total_entered_values": V + I}

Strict choices on [open] and undocumented points:

- ``attributeName`` must be one of the short names ``em``, ``pn``, ``uuid``;
- all four fields are required, ``segmentName`` is 1-40 characters, unknown fields
  are refused; any payload problem is 405 ``{"error":"Invalid Payload."}`` and the
  reason is in the ``X-Emulator-Reason`` response header (and the request log);
- a segment name is taken once the upload is accepted, even if processing fails;
- a file above ``fps_max_file_bytes`` (10 MB, the budget of the [open] limit), a
  download error or a non-UTF-8 file fails the segment: its status says why and
  no callback is sent.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from .net import OutboundError, download, post_json, spawn, url_problem
from .pipeline import Outcome, Pipeline
from .state import EmulatorState
from .validation import EMAIL_PATTERN, PHONE_PATTERN

FIELDS = ("segmentName", "attributeName", "fileUrl", "callbackUrl")
_checks = {
    "em": re.compile(EMAIL_PATTERN, re.ASCII).fullmatch,
    "pn": re.compile(PHONE_PATTERN, re.ASCII).fullmatch,
    "uuid": re.compile(r"^\S.*$", re.ASCII).fullmatch,
}
_index_kind = {"em": "email", "pn": "phone_number", "uuid": "uuid"}


def payload_problem(body: Any) -> str | None:
    """Why an upload body is an invalid payload, or ``None``."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    missing = [f for f in FIELDS if f not in body]
    if missing:
        return f"missing field(s): {', '.join(missing)}"
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    name = body["segmentName"]
    if not isinstance(name, str) or not 1 <= len(name) <= 40:
        return "segmentName must be a string of 1 to 40 characters"
    if body["attributeName"] not in _checks:
        return "attributeName must be em, pn or uuid"
    return url_problem(body["fileUrl"], need_csv=True) or url_problem(body["callbackUrl"])


def count_values(data: bytes, attribute: str) -> tuple[list[str], int]:
    """Valid values and the invalid count of a headerless one-column file."""
    check = _checks[attribute]
    valid: list[str] = []
    invalid = 0
    for line in data.decode("utf-8").splitlines():
        value = line.strip()
        if not value:
            continue
        if check(value):
            valid.append(value)
        else:
            invalid += 1
    return valid, invalid


async def _process(state: EmulatorState, segment: dict[str, Any]) -> None:
    delay = state.options.fps_callback_delay
    if delay:
        await asyncio.sleep(delay)
    try:
        data = await download(segment["file_url"], state.options.fps_max_file_bytes)
        valid, invalid = count_values(data, segment["attribute"])
    except (OutboundError, UnicodeDecodeError) as exc:
        with state.lock:
            segment["status"] = f"failed: {exc}"
        return
    kind = _index_kind[segment["attribute"]]
    with state.lock:
        members = []
        for value in valid:
            profile = state.store.index.get((kind, value))
            if profile is not None and profile.insider_id not in members:
                members.append(profile.insider_id)
        segment.update(valid_values_count=len(valid), invalid_values_count=invalid,
                       total_entered_values=len(valid) + invalid, members=members,
                       status="processed")
    callback = {"segment_name": segment["name"], "valid_values_count": len(valid),
                "invalid_values_count": invalid, "total_entered_values": len(valid) + invalid}
    try:
        status = await post_json(segment["callback_url"], callback)
        result: Any = status
    except OutboundError as exc:
        result = f"failed: {exc}"
    with state.lock:
        segment["callback"] = callback
        segment["callback_status"] = result


def setup(app: web.Application, state: EmulatorState, pipeline: Pipeline) -> None:
    """Register ``POST /fps/v1/upload``."""

    async def upload(body: Any, request: web.Request) -> Outcome:
        problem = payload_problem(body)
        if problem is not None:
            return 405, {"error": "Invalid Payload."}, {"X-Emulator-Reason": problem}
        name = body["segmentName"]
        with state.lock:
            if name in state.segments:
                return 400, {"statusMessage": "segment name already in use"}, None
            segment: dict[str, Any] = {
                "name": name, "attribute": body["attributeName"],
                "file_url": body["fileUrl"], "callback_url": body["callbackUrl"],
                "received_at": state.now(), "status": "processing", "members": []}
            state.segments[name] = segment
        spawn(state, _process(state, segment))
        return 200, {"statusMessage": "OK"}, None

    app.router.add_post("/fps/v1/upload", pipeline.wrap("fps_upload", upload, fps=True))

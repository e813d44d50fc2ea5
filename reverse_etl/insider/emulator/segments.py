"""First-party segment upload, ``POST /fps/v1/upload`` (insider-api.md §6).

The request is answered at once (200 ``{"statusMessage":"OK"}``); processing runs
in the background after ``fps_callback_delay`` seconds: download ``fileUrl``
(loopback only), validate every non-blank line against ``attributeName``, match
existing profiles (FPS creates no user), then POST to ``callbackUrl``::

    {"segment_name": ..., "valid_values_count": V, "invalid_values_count": I,
     "total_entered_values": V + I}

Strict choices on [open] and undocumented points:

- ``attributeName`` is "either an identifier or any attribute" (the reference):
  the short identifier names ``em`` (email), ``pn`` (E.164 phone), ``uuid``
  (non-empty), a custom identifier of the tenant (non-empty), a default attribute
  (``age``, ``email_optin``, ``city``, ...: a value must parse as its type and
  pass its format check, so ``age`` refuses ``abc``) or a custom attribute the
  tenant already holds (typed by the values stored: number, boolean or string).
  Any other name is an invalid payload: Insider segments existing attributes only;
- a value matches the profiles whose attribute equals it (an array attribute:
  contains it); numbers compare as numbers, booleans as ``true``/``false``;
- all four fields are required, ``segmentName`` is 1-40 characters, unknown fields
  are refused; any payload problem is 405 ``{"error":"Invalid Payload."}`` and the
  reason is in the ``X-Emulator-Reason`` response header (and the request log),
  except the two the reference's error table names, answered 400
  ``{"statusMessage": <its text>}`` (the table gives no status; 400 is the status
  of its one documented entry, "segment name already in use"): a ``fileUrl``
  without ``.csv`` ("the file URL is invalid. The URL should include .csv
  extension") and a missing ``X-PARTNER-NAME`` ("partner name is missing");
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
from .validation import _ATTRIBUTE_FORMATS, DEFAULT_ATTRIBUTES, EMAIL_PATTERN, PHONE_PATTERN

FIELDS = ("segmentName", "attributeName", "fileUrl", "callbackUrl")
# The reference's error table gives these texts without a status; the emulator answers
# them as 400 {"statusMessage": ...}, the form of the table's one documented 400.
NOT_CSV = "the file URL is invalid. The URL should include .csv extension"
NAME_IN_USE = "segment name already in use"
_non_empty = re.compile(r"^\S.*$").fullmatch
_checks = {
    "em": re.compile(EMAIL_PATTERN, re.ASCII).fullmatch,
    "pn": re.compile(PHONE_PATTERN, re.ASCII).fullmatch,
    "uuid": _non_empty,
}
_index_kind = {"em": "email", "pn": "phone_number", "uuid": "uuid"}
_INT = re.compile(r"^[+-]?\d+$").fullmatch
_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$").fullmatch
_BOOLS = {"true": True, "false": False}
# Default attribute type tag → the scalar kind a value is parsed as.
_TAG_KIND = {"str": "str", "strs": "str", "int": "int", "ints": "int", "num": "num", "bool": "bool"}


class Target:
    """What an ``attributeName`` denotes: an identifier index or an attribute, and its value kind."""

    __slots__ = ("custom", "format", "index", "kind", "name")

    def __init__(self, name: str, kind: str, index: str | None = None, custom: bool = False,
                 fmt: Any = None) -> None:
        self.name, self.kind, self.index, self.custom, self.format = name, kind, index, custom, fmt

    def parse(self, value: str) -> Any:
        """The comparable value of one file line, or ``None`` when it is invalid for the attribute."""
        if self.format is not None:
            return value if self.format(value) else None
        if self.kind == "int":
            return float(value) if _INT(value) else None
        if self.kind == "num":
            return float(value) if _NUM(value) else None
        if self.kind == "bool":
            return _BOOLS.get(value.lower())
        return value if _non_empty(value) else None


def _custom_kind(state: EmulatorState, name: str) -> str:
    """A custom attribute's kind, from the first stored value (Insider types it on first write)."""
    for profile in state.store.by_id.values():
        v = profile.custom.get(name)
        if type(v) is list and v:
            v = v[0]
        if type(v) is bool:
            return "bool"
        if type(v) in (int, float):
            return "num"
        if v is not None:
            return "str"
    return "str"


def resolve_target(state: EmulatorState, name: Any) -> Target | str:
    """The target of ``attributeName``, or why it is invalid."""
    if not isinstance(name, str) or not name:
        return "attributeName must be a non-empty string"
    if name in _checks:
        return Target(name, "str", _index_kind[name], fmt=_checks[name])
    if name in state.options.custom_identifiers:
        return Target(name, "str", "custom." + name)
    tag = DEFAULT_ATTRIBUTES.get(name)
    if tag is not None:
        fmt = _ATTRIBUTE_FORMATS.get(name)
        return Target(name, _TAG_KIND[tag], fmt=re.compile(fmt[0]).fullmatch if fmt else None)
    with state.lock:
        known = name in state.store.custom_names
        kind = _custom_kind(state, name) if known else "str"
    if known:
        return Target(name, kind, custom=True)
    return (f"attributeName {name!r} is neither an identifier (em, pn, uuid or a custom identifier) "
            "nor a default or custom attribute of the tenant")


def payload_problem(body: Any, state: EmulatorState) -> str | None:
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
    target = resolve_target(state, body["attributeName"])
    if isinstance(target, str):
        return target
    return url_problem(body["fileUrl"], need_csv=True) or url_problem(body["callbackUrl"])


def count_values(data: bytes, target: Target) -> tuple[list[Any], int]:
    """Valid (parsed) values and the invalid count of a headerless one-column file."""
    valid: list[Any] = []
    invalid = 0
    for line in data.decode("utf-8").splitlines():
        value = line.strip()
        if not value:
            continue
        parsed = target.parse(value)
        if parsed is None:
            invalid += 1
        else:
            valid.append(parsed)
    return valid, invalid


def _comparable(v: Any) -> list[Any]:
    """A stored attribute value as the keys a file value can equal (arrays: each element)."""
    items = v if type(v) is list else [v]
    return [float(x) if type(x) in (int, float) else x for x in items if x is not None]


def _members(state: EmulatorState, target: Target, valid: list[Any]) -> list[str]:
    """Insider ids of the profiles the valid values select (caller holds the lock)."""
    members: list[str] = []
    if target.index is not None:
        for value in valid:
            profile = state.store.index.get((target.index, value))
            if profile is not None and profile.insider_id not in members:
                members.append(profile.insider_id)
        return members
    wanted = set(valid)
    for profile in state.store.by_id.values():
        source = profile.custom if target.custom else profile.attributes
        stored = source.get(target.name)
        if stored is None and not target.custom and target.name in ("email", "phone_number"):
            stored = profile.ids.get(target.name)  # an identifier is also the attribute
        if stored is not None and any(k in wanted for k in _comparable(stored)):
            members.append(profile.insider_id)
    return members


async def _process(state: EmulatorState, segment: dict[str, Any]) -> None:
    delay = state.options.fps_callback_delay
    if delay:
        await asyncio.sleep(delay)
    try:
        data = await download(segment["file_url"], state.options.fps_max_file_bytes)
        target = resolve_target(state, segment["attribute"])
        assert not isinstance(target, str), "validated when the upload was accepted"
        valid, invalid = count_values(data, target)
    except (OutboundError, UnicodeDecodeError) as exc:
        with state.lock:
            segment["status"] = f"failed: {exc}"
        return
    with state.lock:
        members = _members(state, target, valid)
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
        problem = payload_problem(body, state)
        if problem is not None and problem.startswith("the file URL path must contain .csv"):
            return 400, {"statusMessage": NOT_CSV}, {"X-Emulator-Reason": problem}
        if problem is not None:
            return 405, {"error": "Invalid Payload."}, {"X-Emulator-Reason": problem}
        name = body["segmentName"]
        with state.lock:
            if name in state.segments:
                return 400, {"statusMessage": NAME_IN_USE}, None
            segment: dict[str, Any] = {
                "name": name, "attribute": body["attributeName"],
                "file_url": body["fileUrl"], "callback_url": body["callbackUrl"],
                "received_at": state.now(), "status": "processing", "members": []}
            state.segments[name] = segment
        spawn(state, _process(state, segment))
        return 200, {"statusMessage": "OK"}, None

    app.router.add_post("/fps/v1/upload", pipeline.wrap("fps_upload", upload, fps=True))

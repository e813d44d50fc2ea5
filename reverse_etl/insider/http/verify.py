"""Requests that append, and how to resend one whose answer was lost.

An upsert that appends (array attributes without ``"not_append": true``, audience
arrays, events) is not idempotent: sent twice, Insider holds its elements twice.
When such a request fails ambiguously (it was sent, the answer never came: a read
timeout, a connection dropped after sending), it may or may not have been applied,
so it is never blindly resent. Instead each of its users is read back through the
profile endpoint (``POST /api/user/v1/profile``) and only what Insider does not
hold yet is sent again:

- an array element the profile already holds is dropped from the resend;
- an event the profile already holds (same name and time) is dropped;
- a value the profile already holds is dropped (any other is resent: setting a
  value twice is harmless);
- a user left with nothing is acknowledged without a resend.

A user Insider does not know (404) has had nothing applied: it is resent whole.
Classifying a request costs a few byte searches over its body and one look at
each item's end (per item searches only when its arrays may append), no parsing;
parsing happens only on this failure path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from reverse_etl.insider.http.batching import Batch

ReadProfile = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
"""Reads one profile (a profile-read body) → the answer, or None when Insider has no such user."""


EVENTS = b'"events":'
NOT_APPEND = b'"not_append":true'


_TOP_NOT_APPEND = NOT_APPEND + b"}"
"""How an item ends when ``not_append`` is a key of the user object itself (the encoder
writes it last): its closing brace follows. A nested object closes with a brace of its
own first, so a custom attribute named ``not_append`` never passes for it."""


def appends(item: bytes) -> bool:
    """True when an upsert user object may append: it carries events, or arrays without
    its own ``not_append``. Conservative: a ``[`` inside a string also counts (a needless
    check, never a duplicate)."""
    if EVENTS in item:
        return True
    return b"[" in item and not item.endswith(_TOP_NOT_APPEND)


def batch_appends(batch: Batch) -> bool:
    """True when any user object of ``batch`` may append: exactly ``any(map(appends, items))``.

    Decided on the joined items (``i1,i2,...``) without splitting them where it can.
    None of the searched texts holds a comma, so none can straddle two items:
    ``"events":`` anywhere means some item carries events (appends); no ``[``
    anywhere means no item has an array (does not append); every item ending with
    its own ``not_append`` (the default upsert) means none appends. Otherwise the
    items are looked at one by one, and the first appending one ends the search.
    """
    joined = batch.joined
    if EVENTS in joined:
        return True
    if b"[" not in joined:
        return False
    if _all_end_not_appending(joined, batch.sizes):
        return False
    return any(map(appends, batch.items))


def _all_end_not_appending(joined: bytes, sizes: list[int]) -> bool:
    """True when every item ends with its own ``"not_append":true}``, checked at the known
    item ends with one numpy gather, not a search per item."""
    tail = len(_TOP_NOT_APPEND)
    lengths = np.asarray(sizes, dtype=np.int64)
    if not len(lengths) or int(lengths.min()) < tail:
        return False
    ends = np.cumsum(lengths + 1) - 1  # one past each item's last byte (commas between items)
    buffer = np.frombuffer(joined, dtype=np.uint8)
    window = buffer[(ends - tail)[:, None] + np.arange(tail)]
    return bool((window == np.frombuffer(_TOP_NOT_APPEND, dtype=np.uint8)).all())


def _attributes(user: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(``custom`` or None for the root, name) of each attribute the user object sets."""
    attributes = user.get("attributes")
    if type(attributes) is not dict:
        return []
    found: list[tuple[str | None, str]] = [(None, k) for k in attributes if k != "custom"]
    custom = attributes.get("custom")
    if type(custom) is dict:
        found.extend(("custom", k) for k in custom)
    return found


def _read_name(group: str | None, name: str) -> str:
    return name if group is None else f"c_{name}"


def _epoch(timestamp: Any) -> Any:
    if type(timestamp) is not str:
        return timestamp
    try:
        return datetime.fromisoformat(timestamp.replace("z", "Z")).timestamp()
    except ValueError:
        return timestamp


def read_body(user: dict[str, Any]) -> dict[str, Any] | None:
    """The profile read that tells what of ``user`` Insider holds (None: it sets nothing)."""
    names = [_read_name(group, name) for group, name in _attributes(user)]
    events = [e for e in user.get("events") or () if type(e) is dict]
    if not names and not events:
        return None
    body: dict[str, Any] = {"identifiers": user.get("identifiers")}
    if names:
        body["attributes"] = names
    if events:
        times = [t for t in (_epoch(e.get("timestamp")) for e in events) if isinstance(t, int | float)]
        start, end = (int(min(times)) - 1, int(max(times)) + 2) if times else (0, 2**31)
        wanted = sorted({str(e.get("event_name")) for e in events})
        body["events"] = {"start_date": start, "end_date": end,
                          "wanted": [{"event_name": n, "params": ["timestamp"]} for n in wanted]}
    return body


def residual(user: dict[str, Any], answer: dict[str, Any] | None) -> dict[str, Any] | None:
    """``user`` minus what ``answer`` (a profile read) shows applied; None when nothing is left.

    ``answer`` None (no such user): nothing was applied, the whole user is left.
    """
    if answer is None:
        return user
    held_attrs = answer.get("attributes") or {}
    rest = dict(user)
    attributes = dict(user.get("attributes") or {})
    if type(attributes.get("custom")) is dict:
        attributes["custom"] = dict(attributes["custom"])  # edited below: never the caller's
    appending = user.get("not_append") is not True
    for group, name in _attributes(user):
        held = held_attrs.get(_read_name(group, name))
        target = attributes if group is None else attributes["custom"]
        sent = target[name]
        if type(sent) is list and appending:  # appended: keep the elements Insider lacks
            have = held if type(held) is list else []
            missing = [e for e in sent if e not in have]
            if missing:
                target[name] = missing
            else:
                del target[name]
        elif held == sent:  # a value (or replaced array) Insider already holds
            del target[name]
    if type(attributes.get("custom")) is dict and not attributes["custom"]:
        del attributes["custom"]
    held_events = Counter((name, _epoch(entry.get("created_date")))
                          for name, entries in (answer.get("events") or {}).items()
                          for entry in entries if type(entry) is dict)
    events = []
    for event in user.get("events") or ():
        mark = (event.get("event_name"), _epoch(event.get("timestamp")))
        if held_events[mark] > 0:
            held_events[mark] -= 1
        else:
            events.append(event)
    rest.pop("attributes", None)
    rest.pop("events", None)
    if attributes:
        rest["attributes"] = attributes
    if events:
        rest["events"] = events
    if "attributes" not in rest and "events" not in rest:
        return None
    return rest


@dataclass
class Verified:
    """What reading a batch's users back found."""

    applied: list[int] = field(default_factory=list)
    """Row ids whose every value, element and event Insider already holds (acknowledged)."""
    rest: Batch = field(default_factory=lambda: Batch([], []))
    """What is still to send, per user: the values, elements and events Insider lacks."""


async def verify(batch: Batch, read: ReadProfile) -> Verified:
    """Read each user of ``batch`` back and keep only what Insider does not hold.

    ``read`` raises when a profile cannot be read (the caller decides what an
    unverifiable user becomes); reads run one after another on the caller's lane.
    """
    out = Verified()
    for row_id, item in zip(batch.row_ids, batch.items, strict=True):
        user = orjson.loads(item)
        body = read_body(user) if type(user) is dict else None
        if body is None:  # nothing to look for: resend as is
            out.rest.row_ids.append(row_id)
            out.rest.items.append(item)
            continue
        left = residual(user, await read(body))
        if left is None:
            out.applied.append(row_id)
        else:
            out.rest.row_ids.append(row_id)
            out.rest.items.append(item if left is user else orjson.dumps(left))
    return out

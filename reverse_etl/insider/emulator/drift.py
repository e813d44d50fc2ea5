"""Drift injection: change what the tenant holds behind the sync's back.

``POST /_emulator/drift`` (admin, no auth, never faulted) applies one change, the
way Insider's state drifts from a warehouse in real life: a marketer edits a
profile in the panel, another integration writes the same attribute, a PII
deletion request runs, Insider unifies two profiles, events expire. Body::

    {"action": "set_attributes", "user": {"uuid": "u1"},
     "attributes": {"city": "Paris", "age": null}, "custom": {"ltv": 3}}
        values set (null removes the attribute); ``custom`` for custom attributes
    {"action": "set_identifier", "user": {"uuid": "u1"}, "kind": "email", "value": "x@y.z"}
        an identifier changed (``value`` null removes it; ``custom.<name>`` kinds too)
    {"action": "add_profile", "insider_id": "ext-1", "identifiers": {...}, "attributes": {...}}
        a profile another integration created
    {"action": "delete_profile", "user": {"uuid": "u1"}}
    {"action": "delete_pii", "user": {"uuid": "u1"}}
        as a PII deletion request (anonymize): PII attributes and identifiers go
    {"action": "expire_events", "before": 1700000000, "user": {"uuid": "u1"}}
        events older than ``before`` (epoch seconds) dropped; without ``user``, everyone's
    {"action": "unify", "user": {"uuid": "u1"}, "into": {"uuid": "u2"}}
        ``user`` merged into ``into``: identifier kinds and attributes ``into`` lacks move
        over, events too, and ``user``'s profile is gone

``user``/``into`` are lookups by identifier (``uuid``, ``email``, ``phone_number``,
``insider_id``, ``custom.<name>``), as ``GET /_emulator/profile`` takes. Answers
200 ``{"ok": true, ...}``, 404 when the user is unknown, 400 for a bad body.
"""

from __future__ import annotations

from typing import Any

from .state import EmulatorState
from .store import Profile
from .validation import epoch_of

ACTIONS = ("set_attributes", "set_identifier", "add_profile", "delete_profile", "delete_pii",
           "expire_events", "unify")


class DriftError(ValueError):
    """A drift request that cannot be applied; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _find(state: EmulatorState, lookup: Any, what: str) -> Profile:
    if not isinstance(lookup, dict) or not lookup:
        raise DriftError(f"{what} must be an object of identifiers, e.g. {{\"uuid\": \"u1\"}}")
    store = state.store
    found: Profile | None = None
    for kind, value in lookup.items():
        if not isinstance(value, str):
            raise DriftError(f"{what}.{kind} must be a string")
        p = store.by_id.get(value) if kind == "insider_id" else store.index.get((kind, value))
        if p is None or (found is not None and p is not found):
            raise DriftError(f"no such user: {what} {lookup}", 404)
        found = p
    assert found is not None
    return found


def _set_values(target: dict[str, Any], values: Any, what: str) -> None:
    if values is None:
        return
    if not isinstance(values, dict):
        raise DriftError(f"{what} must be an object of name: value")
    for name, value in values.items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value


def apply(state: EmulatorState, body: Any) -> dict[str, Any]:
    """Apply one drift request (see the module docstring); raises :class:`DriftError`."""
    if not isinstance(body, dict) or body.get("action") not in ACTIONS:
        raise DriftError(f"action must be one of {', '.join(ACTIONS)}")
    action = body["action"]
    with state.lock:
        store = state.store
        if action == "add_profile":
            insider_id = body.get("insider_id")
            if not isinstance(insider_id, str) or not insider_id:
                raise DriftError("insider_id must be a non-empty string")
            try:
                store.add_profile(insider_id, dict(body.get("identifiers") or {}),
                                  dict(body.get("attributes") or {}))
            except ValueError as exc:
                raise DriftError(str(exc)) from None
            return {"ok": True, "insider_id": insider_id}
        if action == "expire_events":
            before = body.get("before")
            if not isinstance(before, int | float) or isinstance(before, bool):
                raise DriftError("before must be epoch seconds")
            profiles = ([_find(state, body["user"], "user")] if body.get("user") is not None
                        else list(store.by_id.values()))
            dropped = 0
            for p in profiles:
                kept = [e for e in p.events if epoch_of(e["timestamp"]) >= before]
                dropped += len(p.events) - len(kept)
                p.events[:] = kept
            store.events -= dropped
            return {"ok": True, "expired": dropped}
        profile = _find(state, body.get("user"), "user")
        if action == "set_attributes":
            _set_values(profile.attributes, body.get("attributes"), "attributes")
            _set_values(profile.custom, body.get("custom"), "custom")
            store.custom_names.update(profile.custom)
        elif action == "set_identifier":
            kind, value = body.get("kind"), body.get("value")
            if not isinstance(kind, str) or not kind:
                raise DriftError("kind must name an identifier (uuid, email, phone_number, custom.<name>)")
            if value is None:
                store.delete_identifiers(profile, [kind])
            elif not isinstance(value, str):
                raise DriftError("value must be a string or null")
            elif (message := store.update_identity(profile, kind, value)) is not None:
                raise DriftError(message)
        elif action == "delete_profile":
            store.delete_profile(profile)
        elif action == "delete_pii":
            store.anonymize(profile, state.options.pii_attributes)
        else:  # unify
            into = _find(state, body.get("into"), "into")
            if into is profile:
                raise DriftError("user and into are the same profile")
            moved = {k: v for k, v in profile.ids.items() if k not in into.ids}
            attributes = {k: v for k, v in profile.attributes.items() if k not in into.attributes}
            custom = {k: v for k, v in profile.custom.items() if k not in into.custom}
            events = list(profile.events)
            store.delete_profile(profile)
            for kind, value in moved.items():
                into.ids[kind] = value
                store.index[(kind, value)] = into
            into.attributes.update(attributes)
            into.custom.update(custom)
            into.events.extend(events)
            store.events += len(events)
            return {"ok": True, "insider_id": into.insider_id}
        return {"ok": True, "insider_id": profile.insider_id}

"""Profile state of the emulated tenant: one profile per person, unified by identifier.

Choices where insider-api.md leaves room (all documented in the README section):

- A user object whose identifiers match two *different* profiles is a row failure
  (``users.<i>.identifiers.*.conflict``) instead of a silent merge.
- Upsert adds identifier kinds a profile lacks; it never changes an existing value
  (a different value for an existing kind is ignored, as Insider does).
- Arrays append without de-duplication (Insider appends); ``not_append: true`` or
  ``append: false`` (per user, or ``not_append`` at the top of the request) replaces
  every array of that user object; a user's ``append`` wins over its ``not_append``
  (documented), a user's flag over the request's.
- The custom-attribute cap counts distinct custom attribute names ever stored in
  the tenant; deleting an attribute does not free its slot.
- Deleting or partially deleting an attribute a profile does not hold succeeds (so a
  retried delete is idempotent); partial delete of a held non-array value fails.
- Events older than the TTL are dropped silently and counted.

Methods are not thread-safe by themselves; the caller holds ``EmulatorState.lock``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from .validation import Errors, epoch_of

PII_ATTRIBUTES = ("name", "surname", "gender", "birthday", "age", "email", "phone_number",
                  "city", "country")
# Order in which anonymize removes PII identifiers; the last one left always stays.
PII_IDENTIFIERS = ("email", "phone_number", "uuid")


class Profile:
    """One person: identifiers, default and custom attributes, events."""

    __slots__ = ("attributes", "custom", "events", "ids", "insider_id")

    def __init__(self, insider_id: str) -> None:
        self.insider_id = insider_id
        # Identifier kinds: "uuid", "email", "phone_number", "custom.<name>".
        self.ids: dict[str, str] = {}
        self.attributes: dict[str, Any] = {}
        self.custom: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []

    def to_dict(self) -> dict[str, Any]:
        """The documented inspection shape (values are shared: callers copy)."""
        identifiers: dict[str, Any] = {}
        custom_ids: dict[str, str] = {}
        for kind, value in self.ids.items():
            if kind.startswith("custom."):
                custom_ids[kind[7:]] = value
            else:
                identifiers[kind] = value
        identifiers["custom"] = custom_ids
        attributes = dict(self.attributes)
        attributes["custom"] = self.custom
        return {"insider_id": self.insider_id, "identifiers": identifiers,
                "attributes": attributes, "events": self.events}


def identifier_pairs(ids: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, value) pairs of a validated ``identifiers`` object."""
    for k, v in ids.items():
        if k == "custom":
            for name, cv in v.items():
                yield "custom." + name, cv
        else:
            yield k, v


def _merge(target: dict[str, Any], values: dict[str, Any], replace_arrays: bool) -> None:
    lists = [k for k, v in values.items() if type(v) is list]
    previous = {} if replace_arrays else {k: target.get(k) for k in lists}
    target.update(values)  # scalars in one C call; arrays are fixed up below
    for k in lists:
        old = previous.get(k)
        # Appended, or replaced by a copy: the request log keeps the original.
        target[k] = old + values[k] if type(old) is list else list(values[k])


class ProfileStore:
    """All profiles of the tenant, an identifier index and tenant-wide counters."""

    def __init__(self, custom_attribute_cap: int, event_ttl_days: float) -> None:
        self.custom_attribute_cap = custom_attribute_cap
        self.event_ttl_seconds = event_ttl_days * 86400.0
        self.reset()

    def reset(self) -> None:
        """Forget every profile and counter."""
        self.by_id: dict[str, Profile] = {}
        self.index: dict[tuple[str, str], Profile] = {}
        self.custom_names: set[str] = set()
        self.events = 0
        self.events_dropped_ttl = 0
        self._ids = itertools.count(1)

    # -- lookup -----------------------------------------------------------------
    def find(self, pairs: Iterable[tuple[str, str]]) -> list[Profile]:
        """Distinct profiles matching any of the (kind, value) pairs."""
        found: list[Profile] = []
        for pair in pairs:
            p = self.index.get(pair)
            if p is not None and p not in found:
                found.append(p)
        return found

    def find_one(self, ids: dict[str, Any]) -> Profile | str | None:
        """The single profile for an identifiers object; a message if they disagree."""
        found = self.find(identifier_pairs(ids))
        if len(found) > 1:
            return "identifiers belong to different users"
        return found[0] if found else None

    def add_profile(self, insider_id: str, ids: dict[str, Any], attributes: dict[str, Any]
                    ) -> Profile:
        """Create a profile with a chosen id (tenant data that predates the test)."""
        if insider_id in self.by_id:
            raise ValueError(f"a profile {insider_id!r} exists already")
        pairs = list(identifier_pairs(ids))
        taken = [p for p in pairs if p in self.index]
        if taken:
            raise ValueError(f"identifier {taken[0][0]}={taken[0][1]} belongs to another profile")
        profile = Profile(insider_id)
        self.by_id[insider_id] = profile
        for kind, value in pairs:
            profile.ids[kind] = value
            self.index[(kind, value)] = profile
        custom = attributes.pop("custom", None) or {}
        profile.attributes.update(attributes)
        profile.custom.update(custom)
        self.custom_names.update(custom)
        return profile

    # -- upsert -----------------------------------------------------------------
    def upsert(self, i: int, user: dict[str, Any], now: float,
               request_not_append: bool = False) -> Errors | None:
        """Apply one validated user object; row errors leave the store unchanged."""
        ids = user.get("identifiers") or {}
        # Without custom identifiers (the common case) the pairs are the items themselves.
        pairs = list(identifier_pairs(ids)) if "custom" in ids else list(ids.items())
        index = self.index
        profile: Profile | None = None
        if "insider_id" in user:
            profile = self.by_id.get(user["insider_id"])
            if profile is None:
                return {f"users.{i}.insider_id.exists": [f"no such user: {user['insider_id']}"]}
        for pair in pairs:
            p = index.get(pair)
            if p is not None:
                if profile is None:
                    profile = p
                elif p is not profile:
                    return {f"users.{i}.identifiers.*.conflict": [
                        f"identifiers belong to different users: {pair[0]}={pair[1]}"]}
        attrs = user.get("attributes")
        custom = attrs.get("custom") if attrs else None
        if custom and not self.custom_names.issuperset(custom):
            names = self.custom_names
            new = [n for n in custom if n not in names]
            if len(names) + len(new) > self.custom_attribute_cap:
                cap = self.custom_attribute_cap
                return {f"users.{i}.attributes.custom.limit({cap})": [
                    f"custom attribute limit of {cap} reached; cannot create: {', '.join(new)}"]}
            names.update(new)
        if profile is None:
            profile = Profile(f"ins-{next(self._ids):08d}")
            self.by_id[profile.insider_id] = profile
        pids = profile.ids
        for kind, value in pairs:
            if kind not in pids:
                pids[kind] = value
                index[(kind, value)] = profile
        if "append" in user:
            replace = user["append"] is False
        elif "not_append" in user:
            replace = user["not_append"] is True
        else:
            replace = request_not_append
        if attrs:
            stored = profile.attributes
            for k, v in attrs.items():
                if k == "custom":
                    _merge(profile.custom, v, replace)
                elif type(v) is list:
                    _merge(stored, {k: v}, replace)
                else:
                    stored[k] = v
        events = user.get("events")
        if events:
            oldest = now - self.event_ttl_seconds
            for ev in events:
                if epoch_of(ev["timestamp"]) < oldest:
                    self.events_dropped_ttl += 1
                    continue
                profile.events.append({"event_name": ev["event_name"],
                                       "timestamp": ev["timestamp"],
                                       "event_params": ev.get("event_params", {})})
                self.events += 1
        return None

    # -- attribute delete -------------------------------------------------------
    def delete_attributes(self, i: int, user: dict[str, Any]) -> Errors | None:
        """Apply one validated attribute-delete user object (§2), by identifiers or insider_id."""
        found: Profile | str | None
        if "insider_id" in user:
            found = self.by_id.get(user["insider_id"])
            if found is None:
                return {f"users.{i}.insider_id.exists": [f"no such user: {user['insider_id']}"]}
        else:
            found = self.find_one(user["identifiers"])
        if isinstance(found, str):
            return {f"users.{i}.identifiers.*.conflict": [found]}
        if found is None:
            return {f"users.{i}.identifiers.*.exists": ["no such user for these identifiers"]}
        custom = user.get("custom") or {}
        plan = [(found.attributes, "", user.get("partial") or {}),
                (found.custom, "custom.", custom.get("partial") or {})]
        for target, prefix, partial in plan:
            for name in partial:
                held = target.get(name)
                if held is not None and type(held) is not list:
                    return {f"users.{i}.{prefix}partial.{name}.array": [
                        f"only array attributes can be partially deleted: {name}"]}
        for target, _, partial in plan:
            for name, values in partial.items():
                held = target.get(name)
                if held is not None:
                    drop = set(values)
                    target[name] = [x for x in held if x not in drop]
        for name in user.get("whole") or ():
            found.attributes.pop(name, None)
        for name in custom.get("whole") or ():
            found.custom.pop(name, None)
        return None

    # -- identity, delete, anonymize (one user per request) ---------------------
    def update_identity(self, profile: Profile, kind: str, new_value: str) -> str | None:
        """Replace ``kind``'s value; a message if the new value belongs to someone else."""
        other = self.index.get((kind, new_value))
        if other is not None and other is not profile:
            return "the new identifier already belongs to another user"
        old = profile.ids.get(kind)
        if old is not None:
            self.index.pop((kind, old), None)
        profile.ids[kind] = new_value
        self.index[(kind, new_value)] = profile
        return None

    def delete_identifiers(self, profile: Profile, kinds: Iterable[str]) -> None:
        """Remove identifier kinds from a profile (caller checked the sole-id rule)."""
        for kind in kinds:
            value = profile.ids.pop(kind, None)
            if value is not None:
                self.index.pop((kind, value), None)

    def delete_profile(self, profile: Profile) -> None:
        """Remove a profile and its identifiers."""
        self.delete_identifiers(profile, list(profile.ids))
        self.events -= len(profile.events)
        del self.by_id[profile.insider_id]

    def anonymize(self, profile: Profile, extra_pii: Iterable[str] = ()) -> None:
        """Remove PII attributes and PII identifiers, never the last identifier."""
        for name in PII_ATTRIBUTES:
            profile.attributes.pop(name, None)
        for name in extra_pii:
            profile.attributes.pop(name, None)
            profile.custom.pop(name, None)
        for kind in PII_IDENTIFIERS:
            if kind in profile.ids and len(profile.ids) > 1:
                self.delete_identifiers(profile, [kind])

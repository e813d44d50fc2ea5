"""Routing and the UCD endpoints (insider-api.md §1-§4) of the emulator.

Whole-request errors Insider does not document use its ``{"error":"<reason>: bad
request"}`` style (400). Emulator choices on undocumented points:

- identity PATCH and DELETE, user delete and anonymize answer 200 ``{}`` (documented
  for user delete and identity PATCH);
- identity PATCH with old equal to new: 400 ``{"error":"identifier values are the same:
  bad request"}``; not exactly one identifier on either side: 400 ``{"error":"there must
  be exactly 1 entry for both new and old identifiers: bad request"}`` (both documented);
- upsert and attribute delete answer ``"successful": {}`` when no user succeeded and
  ``{"count": N}`` otherwise (documented); upsert accepts the documented top-level
  ``skip_hook``, ``error_callback_endpoint`` (an http(s) URL; row errors are also
  reported synchronously, so nothing is ever posted to it), ``platform`` (a string)
  and ``not_append`` (a boolean, the default for users without their own flag);
- an identifier that matches no user (identity PATCH/DELETE, user delete,
  anonymize) answers 404 ``{"error":"no such user for these identifiers: no data"}``
  — the body Insider documents for anonymize, used for all four;
- identity PATCH with old equal to new: 400 ``{"error":"identifier values are the same:
  bad request"}`` (documented by Insider), checked before the user is looked up;
- identity PATCH to a value another user holds: 400 ``{"error":"the new identifier
  already belongs to another user: bad request"}``;
- unknown top-level fields, an empty ``users`` array and a non-JSON content type
  are 400s; more than 1,000 users: 400 ``{"error":"users cannot be more than 1000:
  bad request"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import admin, export, profiles, segments
from .pipeline import BadRequest, Outcome, Pipeline, bad_request
from .state import EmulatorState
from .store import Profile, identifier_pairs
from .validation import (
    REQUIRED_EVENT_PARAMS,
    Errors,
    check_delete_user,
    check_identifiers,
    check_upsert_user,
)

MAX_USERS = 1000
NO_SUCH_USER = {"error": "no such user for these identifiers: no data"}
SOLE_IDENTIFIER = {"error": "you cannot delete the sole identifier specified for a user: "
                            "bad request"}


UPSERT_FIELDS = frozenset({"users", "skip_hook", "error_callback_endpoint", "platform",
                           "not_append"})


def _users(body: Any, allowed: frozenset[str]) -> list[Any]:
    if type(body) is not dict or type(body.get("users")) is not list or not body["users"]:
        raise BadRequest({"error": "users must be defined: bad request"})
    for k in body:
        if k not in allowed:
            raise bad_request(f"unknown field {k}")
    for flag in ("skip_hook", "not_append"):
        if flag in body and type(body[flag]) is not bool:
            raise bad_request(f"{flag} must be a boolean")
    if "platform" in body and (type(body["platform"]) is not str or not body["platform"]):
        raise bad_request("platform must be a non-empty string")
    callback = body.get("error_callback_endpoint")
    if "error_callback_endpoint" in body and (
            type(callback) is not str or not callback.startswith(("http://", "https://"))):
        raise bad_request("error_callback_endpoint must be an http(s) URL")
    users: list[Any] = body["users"]
    if len(users) > MAX_USERS:
        raise bad_request(f"users cannot be more than {MAX_USERS}")
    return users


def _result(ok: int, errors: Errors, failed: int) -> dict[str, Any]:
    fail: dict[str, Any] = {"count": failed, "errors": errors} if failed else {}
    return {"data": {"successful": {"count": ok} if ok else {}, "fail": fail}}


class UcdApi:
    """Handlers of the UCD endpoints, bound to one :class:`EmulatorState`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.custom_ids = frozenset(state.options.custom_identifiers)
        self.required_params = dict(REQUIRED_EVENT_PARAMS)
        if not state.options.purchase_requires_quantity:
            self.required_params["purchase"] = tuple(
                p for p in REQUIRED_EVENT_PARAMS["purchase"] if p != "quantity")

    def _finish(self, ok: int, failed: int, errors: Errors) -> Outcome:
        self.state.rows_accepted += ok
        self.state.rows_failed += failed
        return 200, _result(ok, errors, failed), None

    async def upsert(self, body: Any, request: web.Request) -> Outcome:
        """POST /api/user/v1/upsert."""
        users = _users(body, UPSERT_FIELDS)
        not_append = body.get("not_append") is True
        custom_ids = self.custom_ids
        required = self.required_params
        faults = self.state.faults
        checked: list[Errors | None] = []
        for i, user in enumerate(users):
            errs = check_upsert_user(i, user, custom_ids, required)
            if errs is None:
                value = faults.rejected(user)
                if value is not None:
                    errs = {f"users.{i}.identifiers.*.rejected":
                            [f"rejected by emulator fault injection: {value}"]}
            checked.append(errs)
        errors: Errors = {}
        ok = failed = 0
        state = self.state
        with state.lock:
            now = state.now()
            store = state.store
            for i, user in enumerate(users):
                errs = checked[i]
                if errs is None:
                    errs = store.upsert(i, user, now, not_append)
                if errs is None:
                    ok += 1
                else:
                    failed += 1
                    errors.update(errs)
            return self._finish(ok, failed, errors)

    async def delete_attributes(self, body: Any, request: web.Request) -> Outcome:
        """POST /api/user/v1/attribute/delete."""
        users = _users(body, frozenset({"users"}))  # skip_hook is documented for upsert only
        errors: Errors = {}
        ok = failed = 0
        state = self.state
        with state.lock:
            for i, user in enumerate(users):
                errs = check_delete_user(i, user, self.custom_ids)
                if errs is None:
                    value = state.faults.rejected(user)
                    if value is not None:
                        errs = {f"users.{i}.identifiers.*.rejected":
                                [f"rejected by emulator fault injection: {value}"]}
                if errs is None:
                    errs = state.store.delete_attributes(i, user)
                if errs is None:
                    ok += 1
                else:
                    failed += 1
                    errors.update(errs)
            return self._finish(ok, failed, errors)

    # -- one-user endpoints -----------------------------------------------------
    def _identifiers(self, body: Any, field: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if type(body) is not dict or field not in body:
            raise bad_request(f"{field} must be defined")
        for k in body:
            if k not in allowed:
                raise bad_request(f"unknown field {k}")
        ids = body[field]
        errs = check_identifiers(field, ids, self.custom_ids, None)
        if errs:
            key, messages = next(iter(errs.items()))
            raise bad_request(f"{key}: {messages[0]}")
        return ids

    def _profile(self, ids: dict[str, Any]) -> Profile:
        found = self.state.store.find_one(ids)
        if isinstance(found, str):
            raise bad_request(found)
        if found is None:
            raise BadRequest(NO_SUCH_USER, 404)
        return found

    def _single(self, ids: dict[str, Any], field: str) -> tuple[str, str]:
        pairs = list(identifier_pairs(ids))
        if len(pairs) != 1:
            raise bad_request("there must be exactly 1 entry for both new and old identifiers")
        return pairs[0]

    async def update_identity(self, body: Any, request: web.Request) -> Outcome:
        """PATCH /api/user/v1/identity: same identifier type, the old one must exist."""
        allowed = ("old_identifier", "new_identifier")
        old = self._identifiers(body, "old_identifier", allowed)
        new = self._identifiers(body, "new_identifier", allowed)
        old_kind, old_value = self._single(old, "old_identifier")
        new_kind, new_value = self._single(new, "new_identifier")
        if old_kind != new_kind:
            raise bad_request("old_identifier and new_identifier must have the same type")
        if old_value == new_value:
            raise bad_request("identifier values are the same")
        with self.state.lock:
            profile = self._profile(old)
            problem = self.state.store.update_identity(profile, new_kind, new_value)
            if problem is not None:
                raise bad_request(problem)
        return 200, {}, None

    async def delete_identity(self, body: Any, request: web.Request) -> Outcome:
        """DELETE /api/user/v1/identity: never the sole identifier."""
        ids = self._identifiers(body, "identifiers", ("identifiers",))
        kinds = [kind for kind, _ in identifier_pairs(ids)]
        with self.state.lock:
            profile = self._profile(ids)
            if all(kind in kinds for kind in profile.ids):
                raise BadRequest(SOLE_IDENTIFIER)
            self.state.store.delete_identifiers(profile, kinds)
        return 200, {}, None

    async def delete_user(self, body: Any, request: web.Request) -> Outcome:
        """POST /api/user/v1/delete."""
        ids = self._identifiers(body, "identifiers", ("identifiers",))
        with self.state.lock:
            self.state.store.delete_profile(self._profile(ids))
        return 200, {}, None

    async def anonymize(self, body: Any, request: web.Request) -> Outcome:
        """POST /api/user/v1/anonymize: PII deletion, the last identifier stays."""
        ids = self._identifiers(body, "identifiers", ("identifiers",))
        with self.state.lock:
            profile = self._profile(ids)
            self.state.store.anonymize(profile, self.state.options.pii_attributes)
        return 200, {}, None


def create_app(state: EmulatorState) -> web.Application:
    """The aiohttp application serving UCD, FPS, raw export, export files and admin."""
    # Bodies above Insider's 5 MB limit must reach the handler to get Insider's 400.
    app = web.Application(client_max_size=64 * 1024 * 1024)
    pipeline = Pipeline(state)
    ucd = UcdApi(state)
    app.router.add_post("/api/user/v1/upsert", pipeline.wrap("upsert", ucd.upsert))
    app.router.add_post("/api/user/v1/attribute/delete",
                        pipeline.wrap("attribute_delete", ucd.delete_attributes))
    app.router.add_patch("/api/user/v1/identity",
                         pipeline.wrap("identity_update", ucd.update_identity))
    app.router.add_delete("/api/user/v1/identity",
                          pipeline.wrap("identity_delete", ucd.delete_identity))
    app.router.add_post("/api/user/v1/delete", pipeline.wrap("user_delete", ucd.delete_user))
    app.router.add_post("/api/user/v1/anonymize", pipeline.wrap("anonymize", ucd.anonymize))
    profiles.setup(app, state, pipeline, ucd.custom_ids)
    segments.setup(app, state, pipeline)
    export.setup(app, state, pipeline)
    admin.setup(app, state)
    return app

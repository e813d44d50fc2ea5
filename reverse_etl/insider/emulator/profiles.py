"""Read and by-id endpoints of the emulator (Insider's reference, insider-api.md §0).

- ``POST /api/user/v1/profile`` reads one profile. Body: ``identifiers`` (or
  ``insider_id``), ``attributes`` (names; ``custom`` for every custom attribute,
  ``c_<name>`` for one, ``iid`` for the profile id) and/or ``events``
  (``start_date``/``end_date`` epoch seconds, ``wanted`` [{event_name, params}]),
  optional ``quota``. Answer ``{"attributes": {...}, "events": {name: [entry...]}}``;
  an entry holds the wanted params the event has (``timestamp`` as
  ``created_date``, as documented) and ``source`` (``"api"`` for events that
  arrived through upsert). Only wanted events with at least one entry in the range
  are listed. ``"quota": true`` adds ``{"cost", "used", "total"}``: a request costs
  1 + 0.5 per wanted event type (the documented sample: 3 events cost 2.5), the
  tenant has ``profile_quota`` units a minute (1,000 documented); over it: 429.
  No such user: 404 ``{"error":"no such user for these identifiers: no data"}``.
- ``POST /api/contact/v1/anonymize`` deletes PII by profile ID: ``{"insider_id": ...}``
  plus, as in the reference's request body, optional ``partner`` and ``api_key``
  fields that must then match the tenant (else 403). Answers 200 ``{}``; an unknown
  id 404 as above. Shares the anonymize rate limit (500/min).
- ``POST /api/v1/privacy/gdpr/consent/set`` (Insider's mobile host) records data
  processing consent: ``partner_name`` (the tenant's), ``gdpr_consent`` (boolean),
  ``target.udid`` (a string). No auth headers (the reference sends none): 200
  ``{"status":"ok"}``; otherwise 400 with the plain text ``Bad Payload.``.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Any

from aiohttp import web

from .pipeline import ACCESS_DENIED, TOO_MANY, BadRequest, Outcome, Pipeline, bad_request
from .state import EmulatorState
from .store import Profile, identifier_pairs
from .validation import STANDARD_EVENT_PARAMS, check_identifiers, epoch_of

NO_SUCH_USER = {"error": "no such user for these identifiers: no data"}
PROFILE_FIELDS = frozenset({"identifiers", "insider_id", "attributes", "events", "quota"})
QUOTA_WINDOW_SECONDS = 60.0


def _attribute(profile: Profile, name: str) -> Any:
    if name == "iid":
        return profile.insider_id
    if name == "custom":
        return dict(profile.custom) if profile.custom else None
    if name.startswith("c_"):
        return profile.custom.get(name[2:])
    if name in profile.attributes:
        return profile.attributes[name]
    return profile.ids.get(name)  # email, phone_number, uuid held as identifiers


def _entry(event: dict[str, Any], params: list[str]) -> dict[str, Any]:
    stored = event.get("event_params") or {}
    custom = stored.get("custom") or {}
    entry: dict[str, Any] = {}
    for p in params:
        if p == "timestamp":
            entry["created_date"] = event["timestamp"]
        elif p in STANDARD_EVENT_PARAMS and p in stored:
            entry[p] = stored[p]
        elif p.startswith("c_") and p[2:] in custom:
            entry[p] = custom[p[2:]]
        elif p in custom:
            entry[p] = custom[p]
    entry["source"] = event.get("source", "api")
    return entry


def _check_events(events: Any) -> list[dict[str, Any]]:
    if type(events) is not dict or set(events) - {"start_date", "end_date", "wanted"}:
        raise bad_request("events must be an object with start_date, end_date and wanted")
    start, end = events.get("start_date"), events.get("end_date")
    if type(start) is not int or type(end) is not int or start > end:
        raise bad_request("events.start_date and events.end_date must be epoch seconds, "
                          "start before end")
    wanted = events.get("wanted")
    if type(wanted) is not list or not wanted:
        raise bad_request("events.wanted must be a non-empty array")
    for w in wanted:
        if (type(w) is not dict or type(w.get("event_name")) is not str
                or type(w.get("params")) is not list
                or not all(type(p) is str for p in w["params"])):
            raise bad_request("each wanted event needs an event_name and a params array")
    return wanted


class ProfileApi:
    """Handlers of the profile read, PII deletion by id and consent endpoints."""

    def __init__(self, state: EmulatorState, custom_ids: Collection[str]) -> None:
        self.state = state
        self.custom_ids = custom_ids

    def _find(self, body: dict[str, Any]) -> Profile:
        store = self.state.store
        if "insider_id" in body:
            if type(body["insider_id"]) is not str or not body["insider_id"]:
                raise bad_request("insider_id must be a non-empty string")
            found: Profile | None = store.by_id.get(body["insider_id"])
        else:
            ids = body.get("identifiers")
            errs = check_identifiers("identifiers", ids, self.custom_ids, None)
            if errs:
                key, messages = next(iter(errs.items()))
                raise bad_request(f"{key}: {messages[0]}")
            hits = store.find(identifier_pairs(ids or {}))
            if len(hits) > 1:
                raise bad_request("identifiers belong to different users")
            found = hits[0] if hits else None
        if found is None:
            raise BadRequest(NO_SUCH_USER, 404)
        return found

    def _spend(self, cost: float) -> dict[str, float]:
        state = self.state
        now = state.now()
        spent = state.profile_quota_spent
        while spent and spent[0][0] <= now - QUOTA_WINDOW_SECONDS:
            spent.popleft()
        used = sum(c for _, c in spent)
        total = state.options.profile_quota
        if used + cost > total:
            raise BadRequest(TOO_MANY, 429)
        spent.append((now, cost))
        return {"cost": cost, "used": used + cost, "total": total}

    async def read(self, body: Any, request: web.Request) -> Outcome:
        """POST /api/user/v1/profile."""
        if type(body) is not dict:
            raise bad_request("identifiers must be defined")
        for k in body:
            if k not in PROFILE_FIELDS:
                raise bad_request(f"unknown field {k}")
        if "identifiers" not in body and "insider_id" not in body:
            raise bad_request("identifiers must be defined")
        attrs = body.get("attributes")
        if attrs is not None and (type(attrs) is not list
                                  or not all(type(a) is str for a in attrs)):
            raise bad_request("attributes must be an array of attribute names")
        if not attrs and "events" not in body:
            raise bad_request("attributes or events must be defined")
        wanted = _check_events(body["events"]) if "events" in body else []
        if "quota" in body and type(body["quota"]) is not bool:
            raise bad_request("quota must be a boolean")
        with self.state.lock:
            profile = self._find(body)
            quota = self._spend(1.0 + 0.5 * len(wanted))
            answer: dict[str, Any] = {"attributes": {}, "events": {}}
            for name in attrs or ():
                value = _attribute(profile, name)
                if value is not None:
                    answer["attributes"][name] = value
            if wanted:
                start, end = body["events"]["start_date"], body["events"]["end_date"]
                for w in wanted:
                    entries = [_entry(ev, w["params"]) for ev in profile.events
                               if ev["event_name"] == w["event_name"]
                               and start <= epoch_of(ev["timestamp"]) <= end]
                    if entries:
                        answer["events"][w["event_name"]] = entries
        if body.get("quota") is True:
            answer["quota"] = quota
        return 200, answer, None

    async def anonymize_by_id(self, body: Any, request: web.Request) -> Outcome:
        """POST /api/contact/v1/anonymize: PII deletion by insider_id."""
        if type(body) is not dict or "insider_id" not in body:
            raise bad_request("insider_id must be defined")
        for k in body:
            if k not in ("insider_id", "partner", "api_key"):
                raise bad_request(f"unknown field {k}")
        opts = self.state.options
        if "partner" in body and body["partner"] != opts.partner:
            raise BadRequest(ACCESS_DENIED, 403)
        if "api_key" in body and not (type(body["api_key"]) is str and hmac.compare_digest(
                body["api_key"].encode(), opts.api_key.encode())):
            raise BadRequest(ACCESS_DENIED, 403)
        with self.state.lock:
            profile = self._find({"insider_id": body["insider_id"]})
            self.state.store.anonymize(profile, opts.pii_attributes)
        return 200, {}, None

    async def consent(self, body: Any, request: web.Request) -> Outcome:
        """POST /api/v1/privacy/gdpr/consent/set."""
        target = body.get("target") if type(body) is dict else None
        if (type(body) is not dict or set(body) - {"partner_name", "gdpr_consent", "target"}
                or body.get("partner_name") != self.state.options.partner
                or type(body.get("gdpr_consent")) is not bool
                or type(target) is not dict or set(target) != {"udid"}
                or type(target["udid"]) is not str or not target["udid"]):
            return 400, b"Bad Payload.", None
        with self.state.lock:
            self.state.consents[target["udid"]] = body["gdpr_consent"]
        return 200, {"status": "ok"}, None


def setup(app: web.Application, state: EmulatorState, pipeline: Pipeline,
          custom_ids: Collection[str]) -> None:
    """Register the profile read, PII deletion by id and consent routes."""
    api = ProfileApi(state, custom_ids)
    app.router.add_post("/api/user/v1/profile", pipeline.wrap("profile", api.read))
    app.router.add_post("/api/contact/v1/anonymize",
                        pipeline.wrap("anonymize", api.anonymize_by_id))
    app.router.add_post("/api/v1/privacy/gdpr/consent/set",
                        pipeline.wrap("consent", api.consent, auth=False))

"""Replay every request sample of Insider's published API reference against the emulator.

The samples are a copy of ``/work/shared/insider-reference`` in
``tests/fixtures/insider-reference`` (``postman_user_data.json``: each endpoint's body
and saved examples; ``postman_description_samples.json``: every JSON block of the
descriptions, of which the complete request bodies are replayed here; the documented
response bodies are reproduced in ``test_reference_responses.py``).

Each sample is one test id. It is sent over HTTP with the headers the reference lists
and compared with the saved response: status, and the body exactly, except for the
profile read, whose values depend on tenant data (compared by shape: keys and JSON
types). A sample without a saved response expects the endpoint's documented success.

What the test does so that a sample can apply (never a silent skip):

- tenant data the sample presupposes is created first (users it addresses by
  identifier or insider_id, a dynamic segment, the events a saved profile shows);
- the tenant is configured with the custom identifiers the samples use;
- placeholders and remote URLs are replaced (``SUBSTITUTIONS``): the emulator only
  talks to 127.0.0.1, so hooks, callbacks and file URLs point at a local receiver;
- two samples send a purchase without ``quantity`` and the saved answer accepts it;
  the emulator's default is the parameter table's strict reading (quantity required),
  so those run with the tenant setting ``purchase_requires_quantity: false``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from emulator_helpers import Receiver

from reverse_etl.insider.emulator import Emulator
from reverse_etl.insider.emulator.tenant import tenant_settings

REFERENCE = Path(__file__).parents[1] / "fixtures" / "insider-reference"
COLLECTION: dict[str, Any] = json.loads((REFERENCE / "postman_user_data.json").read_text())
DESCRIPTIONS: dict[str, list[dict[str, Any]]] = json.loads(
    (REFERENCE / "postman_description_samples.json").read_text())

PARTNER, API_KEY = "mybrand", "1a2b3c4d5e6f"  # the reference's own sample credentials
TENANT = {"partner": PARTNER, "api_key": API_KEY,
          "custom_identifiers": ["user_loyalty_id", "custom_identifier"]}
NOW = 1677628800.0  # 2023-03-01T00:00:00Z: the saved profile's events are within the TTL
# Which field makes a description sample a request body of its endpoint.
REQUEST_FIELD = {
    "Upsert user data": "users", "Export raw user data": "segment",
    "Delete user attribute": "users", "Update identifiers": "old_identifier",
    "Delete identifiers": "identifiers", "Get user profiles": ("identifiers", "insider_id"),
    "Upload first-party segments": "segmentName",
    "Set data processing consent for app users": "partner_name",
    "Delete user profile": "identifiers", "Delete user's PII data using profile ID": "insider_id",
    "Delete user's PII data using identifier": "identifiers",
}
SUCCESS_BODY: dict[str, Any] = {
    "Update identifiers": {}, "Delete identifiers": {}, "Delete user profile": {},
    "Delete user's PII data using profile ID": {}, "Delete user's PII data using identifier": {},
    "Upload first-party segments": {"statusMessage": "OK"},
    "Set data processing consent for app users": {"status": "ok"},
}
RELAXED_QUANTITY = {"Upsert user data/body", "Upsert user data/saved: Upsert multiple users"}
SUBSTITUTIONS = {
    "{emailAddress}": "sample@useinsider.com",
    "{partnerName}": PARTNER, "{partner_name}": PARTNER, "partnerName": PARTNER,
}
_URL_FIELDS = ("hook", "callbackUrl")


@dataclass
class Sample:
    """One request of the reference and what it should get."""

    id: str
    endpoint: str
    body: Any
    status: int = 200
    expected: Any = None  # None: only the status is compared
    shape_only: bool = False
    tenant: dict[str, Any] = field(default_factory=dict)


def _expected_success(endpoint: str, body: Any) -> Any:
    if endpoint in ("Upsert user data", "Delete user attribute"):
        return {"data": {"successful": {"count": len(body["users"])}, "fail": {}}}
    return SUCCESS_BODY.get(endpoint)


def _is_request(endpoint: str, block: Any) -> bool:
    wanted = REQUEST_FIELD[endpoint]
    keys = (wanted,) if isinstance(wanted, str) else wanted
    return isinstance(block, dict) and any(k in block for k in keys)


def _samples() -> Iterator[Sample]:
    for endpoint, spec in COLLECTION.items():
        body = json.loads(spec["body"])
        yield Sample(f"{endpoint}/body", endpoint, body,
                     expected=_expected_success(endpoint, body))
        for saved in spec["responses"]:
            request = json.loads(saved["request_body"])
            expected = json.loads(saved["body"]) if saved["body"] else None
            if saved["code"] is None:  # a saved example without an answer
                yield Sample(f"{endpoint}/saved: {saved['name']}", endpoint, request,
                             expected=_expected_success(endpoint, request))
                continue
            yield Sample(f"{endpoint}/saved: {saved['name']}", endpoint, request,
                         status=saved["code"], expected=expected,
                         shape_only=endpoint == "Get user profiles")
        for n, block in enumerate(DESCRIPTIONS.get(endpoint, [])):
            if not _is_request(endpoint, block["json"]):
                continue
            request = block["json"]
            sample = Sample(f"{endpoint}/description #{n}", endpoint, request,
                            expected=_expected_success(endpoint, request))
            if endpoint == "Update identifiers" and request["old_identifier"] == request[
                    "new_identifier"]:
                # The description's custom-identifier sample changes nothing: the
                # documented answer for equal values is this 400.
                sample.status = 400
                sample.expected = {"error": "identifier values are the same: bad request"}
            yield sample


SAMPLES = list(_samples())
for _s in SAMPLES:
    if _s.id in RELAXED_QUANTITY:
        _s.tenant["purchase_requires_quantity"] = False


def _substitute(value: Any, receiver: Receiver) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _URL_FIELDS and isinstance(v, str):
                out[k] = f"{receiver.url}/{k}"
            elif k == "fileUrl":
                out[k] = f"{receiver.url}/segment.csv"
            else:
                out[k] = _substitute(v, receiver)
        return out
    if isinstance(value, list):
        return [_substitute(v, receiver) for v in value]
    if isinstance(value, str):
        return SUBSTITUTIONS.get(value, re.sub(
            r"\{[A-Za-z_]+\}", lambda m: SUBSTITUTIONS.get(m.group(0), m.group(0)), value))
    return value


def _seed(emu: Emulator, sample: Sample, body: dict[str, Any]) -> None:
    """Create the tenant data the sample addresses."""
    seen: set[str] = set()

    def person(insider_id: str | None, ids: dict[str, Any] | None,
               attributes: dict[str, Any] | None = None) -> None:
        ids = dict(ids or {})
        key = json.dumps([insider_id, ids], sort_keys=True)
        if key in seen:
            return
        seen.add(key)
        if "uuid" not in ids:  # a second identifier, so none of the sample's is the sole one
            ids["uuid"] = f"seed-{len(seen)}"
        emu.add_profile(insider_id or f"seed-profile-{len(seen)}", ids, attributes)

    endpoint = sample.endpoint
    if endpoint in ("Upsert user data", "Delete user attribute"):
        for user in body["users"]:
            if "insider_id" in user:
                person(user["insider_id"], None)
            elif endpoint == "Delete user attribute":
                person(None, user["identifiers"])
    elif endpoint == "Update identifiers":
        person(None, body["old_identifier"])
    elif endpoint == "Get user profiles":
        attributes = (sample.expected or {}).get("attributes", {})
        person(body.get("insider_id"), body.get("identifiers"), dict(attributes))
    elif endpoint == "Export raw user data":
        emu.add_dynamic_segment(body["segment"]["segment_id"])
    elif "insider_id" in body:
        person(body["insider_id"], None)
    elif "identifiers" in body:
        person(None, body["identifiers"])


def _seed_events(client: httpx.Client, sample: Sample, body: dict[str, Any]) -> None:
    """The events a saved profile answer shows, upserted inside the requested range."""
    events = (sample.expected or {}).get("events") or {}
    if not events:
        return
    when = "2023-02-15T12:00:00Z"
    upsert_events = [{"event_name": name, "timestamp": when,
                      "event_params": {k: v for k, v in entry.items()
                                       if k not in ("source", "created_date")}}
                     for name, entries in events.items() for entry in entries]
    r = client.post("/api/user/v1/upsert", json={"users": [
        {"identifiers": body["identifiers"], "events": upsert_events}]})
    assert r.json()["data"]["successful"] == {"count": 1}, r.text


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local stand-in for hooks, callbacks and the segment file."""
    r = Receiver()
    r.files["/segment.csv"] = b"sample@useinsider.com\n"
    yield r
    r.close()


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.id for s in SAMPLES])
def test_reference_sample_replays(sample: Sample, receiver: Receiver) -> None:
    spec = COLLECTION[sample.endpoint]
    body = _substitute(sample.body, receiver)
    settings = tenant_settings({**TENANT, **sample.tenant})
    headers = {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": API_KEY,
               "Content-Type": "application/json"}
    headers = {k: v for k, v in headers.items() if k in spec["headers"]}
    with Emulator(clock=lambda: NOW, **settings) as emu, httpx.Client(
            base_url=emu.url, timeout=10,
            headers={"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": API_KEY}) as admin:
        _seed(emu, sample, body)
        if sample.endpoint == "Get user profiles":
            _seed_events(admin, sample, body)
        r = httpx.request(spec["method"], emu.url + urlsplit(spec["url"]).path,
                          content=json.dumps(body).encode(), headers=headers, timeout=10)
        emu.wait_idle()
    assert r.status_code == sample.status, r.text
    if sample.expected is None:
        return
    if sample.shape_only:
        assert _shape(r.json()) == _shape(sample.expected)
    else:
        assert r.json() == sample.expected


def test_every_reference_sample_is_replayed() -> None:
    """The count the README gives; a new sample in the reference changes it."""
    saved = sum(len(spec["responses"]) for spec in COLLECTION.values())
    requests = sum(_is_request(e, b["json"]) for e, blocks in DESCRIPTIONS.items()
                   for b in blocks)
    assert len(SAMPLES) == len(COLLECTION) + saved + requests == 42

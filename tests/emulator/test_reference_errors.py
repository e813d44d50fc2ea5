"""Replay every error response the reference's descriptions document, each caused for real.

``postman_description_samples.json`` holds, besides request bodies, the answers each
endpoint's description documents: 400 texts, 403 Access Denied, 404 no such user,
429 rate limit, 500 unknown error, the FPS answers. Each is one test id here: the
condition the description names is produced against the emulator over HTTP (a rate
limit of one request for 429, a wrong token for 403/401, an unknown user for 404, a
scripted fault only for the 500, which has no cause a client can produce) and the
answer must have the documented status (the last ``NNN Text`` heading before the
block) and exactly the documented body.

``EMULATOR_CHOICES`` are the cases the reference is silent on, answered the emulator's
stricter way (the README lists them): an unknown user on identity update, identifier
delete and user delete is the same 404 the profile read and anonymize document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from emulator_helpers import Receiver
from test_reference_replay import (
    API_KEY,
    COLLECTION,
    DESCRIPTIONS,
    NOW,
    PARTNER,
    REFERENCE,
    TENANT,
    _substitute,
)

from reverse_etl.insider.emulator import Emulator
from reverse_etl.insider.emulator.tenant import tenant_settings

NO_SUCH_USER = {"error": "no such user for these identifiers: no data"}
SIMPLE_UPSERT = {"users": [{"identifiers": {"uuid": "prime-1"}, "attributes": {"name": "A"}}]}
# The user the samples address, with enough identifiers that deleting one is allowed.
SAMPLE_USER = {"email": "sample@mail.com", "uuid": "1x2y3z", "phone_number": "+905321234567"}


@dataclass
class Trigger:
    """How to cause one documented answer: tenant, seed data, a priming request, the request."""

    body: Any = None  # None: the endpoint's own sample body
    tenant: dict[str, Any] = field(default_factory=dict)
    seed: dict[str, Any] | None = None  # identifiers of a profile to create first
    prime: tuple[str, Any] | None = None  # (endpoint, body) sent once before
    token: str = API_KEY
    faults: dict[str, Any] | None = None


def _limit(family: str) -> dict[str, Any]:
    return {"rate_limits": {family: [1, 60]}}


_SEGMENT = {"segmentName": "vip", "attributeName": "em", "fileUrl": "x", "callbackUrl": "x"}
# (endpoint, description block index) → how the description's condition is produced.
TRIGGERS: dict[tuple[str, int], Trigger] = {
    ("Upsert user data", 9): Trigger(body={}),  # "if you do not include user"
    ("Upsert user data", 10): Trigger(body=SIMPLE_UPSERT, tenant=_limit("upsert"),
                                      prime=("Upsert user data", SIMPLE_UPSERT)),
    ("Export raw user data", 3): Trigger(prime=("Export raw user data", None)),  # 1 a day
    ("Delete user attribute", 3): Trigger(token="wrong-token"),
    # The description: the limit is shared with upsert, so an upsert spends it.
    ("Delete user attribute", 4): Trigger(seed=SAMPLE_USER, tenant=_limit("upsert"),
                                          prime=("Upsert user data", SIMPLE_UPSERT)),
    ("Delete user attribute", 5): Trigger(seed=SAMPLE_USER, faults={"script": [500]}),
    ("Update identifiers", 2): Trigger(seed=SAMPLE_USER, body={
        "old_identifier": {"email": "sample@mail.com"}, "new_identifier": {"email": "sample@mail.com"}}),
    ("Update identifiers", 3): Trigger(seed=SAMPLE_USER, body={
        "old_identifier": {"email": "sample@mail.com", "uuid": "1x2y3z"},
        "new_identifier": {"email": "sample2@mail.com"}}),
    ("Delete identifiers", 2): Trigger(seed={"email": "sample@mail.com"}),  # the sole identifier
    ("Delete identifiers", 3): Trigger(seed=SAMPLE_USER, tenant=_limit("identity_delete"),
                                       prime=("Delete identifiers", {"identifiers": {"uuid": "1x2y3z"}})),
    ("Get user profiles", 5): Trigger(),  # nobody holds the sample's email
    ("Upload first-party segments", 2): Trigger(prime=("Upload first-party segments", None)),
    ("Upload first-party segments", 3): Trigger(token="wrong-token"),
    ("Upload first-party segments", 4): Trigger(body={"segmentName": "vip"}),  # fields missing
    ("Delete user profile", 3): Trigger(token="wrong-token"),
    ("Delete user profile", 4): Trigger(faults={"script": [500]}),
    ("Delete user's PII data using profile ID", 0): Trigger(),  # no profile 1122334455
    ("Delete user's PII data using identifier", 1): Trigger(),
}
EMULATOR_CHOICES: dict[str, tuple[str, Any]] = {  # reference silent: the documented 404 text
    "identity update, unknown user": ("Update identifiers", None),
    "identifier delete, unknown user": ("Delete identifiers", None),
    "user delete, unknown user": ("Delete user profile", None),
}


def _is_documented_answer(block: Any) -> bool:
    """An error body (or the FPS status answer other than OK) the description shows."""
    return isinstance(block, dict) and (
        "error" in block or "message" in block or block.get("statusMessage", "OK") != "OK")


def _status(context: str) -> int:
    codes = re.findall(r"\b([1-5]\d\d) [A-Za-z]", context)
    assert codes, f"no status heading before the block: {context[-120:]!r}"
    return int(codes[-1])


@dataclass
class Case:
    """One documented answer and how it is caused."""

    id: str
    endpoint: str
    trigger: Trigger
    status: int
    expected: Any


def _cases() -> Iterator[Case]:
    for endpoint, blocks in DESCRIPTIONS.items():
        for n, block in enumerate(blocks):
            if _is_documented_answer(block["json"]):
                yield Case(f"{endpoint}/description #{n}", endpoint,
                           TRIGGERS.get((endpoint, n), Trigger()), _status(block["context"]),
                           block["json"])
    for name, (endpoint, body) in EMULATOR_CHOICES.items():
        yield Case(f"emulator choice: {name}", endpoint, Trigger(body=body), 404, NO_SUCH_USER)


CASES = list(_cases())


def _send(emu: Emulator, receiver: Receiver, endpoint: str, body: Any,
          token: str = API_KEY) -> httpx.Response:
    spec = COLLECTION[endpoint]
    raw = json.loads(spec["body"]) if body is None else body
    headers = {"X-PARTNER-NAME": PARTNER, "X-REQUEST-TOKEN": token,
               "Content-Type": "application/json"}
    headers = {k: v for k, v in headers.items() if k in spec["headers"]}
    return httpx.request(spec["method"], emu.url + urlsplit(spec["url"]).path,
                         content=json.dumps(_substitute(raw, receiver)).encode(),
                         headers=headers, timeout=10)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_documented_answer_replays(case: Case, receiver: Receiver) -> None:
    t = case.trigger
    receiver.files["/segment.csv"] = b"sample@useinsider.com\n"  # the FPS samples' file
    settings = tenant_settings({**TENANT, **t.tenant})
    with Emulator(clock=lambda: NOW, **settings) as emu:
        emu.add_dynamic_segment(123456789)
        if t.seed is not None:
            emu.add_profile("seed-profile", t.seed)
        if t.prime is not None:
            first = _send(emu, receiver, *t.prime)
            assert first.status_code == 200, first.text  # the priming request itself succeeds
        if t.faults is not None:
            emu.set_faults(t.faults)
        r = _send(emu, receiver, case.endpoint, t.body, t.token)
        emu.wait_idle()
    assert (r.status_code, r.json()) == (case.status, case.expected)


def test_every_documented_answer_has_its_cause() -> None:
    """Every error block of the reference is produced by a named trigger (none by default)."""
    documented = {(e, n) for e, blocks in DESCRIPTIONS.items()
                  for n, b in enumerate(blocks) if _is_documented_answer(b["json"])}
    assert documented == set(TRIGGERS)
    assert len(documented) == 18 and len(CASES) == 18 + len(EMULATOR_CHOICES)



# Which limit family each endpoint's documented per-minute limit belongs to.
LIMIT_FAMILY = {
    "Upsert user data": ("upsert", "upsert_per_minute"),
    "Delete user attribute": ("upsert", "upsert_per_minute"),
    "Update identifiers": ("identity_update", "identity_update_per_minute"),
    "Delete identifiers": ("identity_delete", "identity_delete_per_minute"),
    "Delete user profile": ("user_delete", "user_delete_per_minute"),
    "Delete user's PII data using profile ID": ("anonymize", "anonymize_per_minute"),
    "Delete user's PII data using identifier": ("anonymize", "anonymize_per_minute"),
}


def _description(endpoint: str) -> str:
    """One endpoint's description text (``postman_userdata_desc.txt``, sections ``===... <name>``)."""
    text = (REFERENCE / "postman_userdata_desc.txt").read_text()
    sections = dict(re.findall(r"^=+ ([^\n]+)\n(.*?)(?=^=+ |\Z)", text, re.M | re.S))
    return sections[endpoint]


def _documented_per_minute(endpoint: str) -> int:
    text = _description(endpoint)
    found = re.findall(r"(\d[\d,]*)\s+requests\s+(?:can\s+be\s+sent\s+)?per\s+minute", text)  # \s: the text has NBSPs
    assert len(set(found)) == 1, (endpoint, found)
    return int(found[0].replace(",", ""))


@pytest.mark.parametrize("endpoint", sorted(LIMIT_FAMILY))
def test_default_rate_limits_are_the_documented_ones(endpoint: str) -> None:
    """The emulator's and the client's defaults are the reference's per-minute limits."""
    from reverse_etl.insider.config import RateLimits
    from reverse_etl.insider.emulator.limits import DEFAULT_LIMITS

    family, client_field = LIMIT_FAMILY[endpoint]
    documented = _documented_per_minute(endpoint)
    assert DEFAULT_LIMITS[family] == (documented, 60.0)
    assert getattr(RateLimits(), client_field) == documented

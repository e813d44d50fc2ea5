"""Authentication, rate limits and injected faults as a plain httpx client sees them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from emulator_helpers import ANONYMIZE, HEADERS, UPSERT, ok, upsert

from reverse_etl.insider.emulator import Emulator

USER = {"identifiers": {"uuid": "u1"}, "attributes": {"name": "a"}}
BODY = {"users": [USER]}


# One client for the module: building an httpx client (its SSL context) costs ~30 ms.
_CLIENT = httpx.Client(timeout=10)


def post(emu: Emulator, headers: dict[str, str], path: str = UPSERT,
         body: Any = BODY) -> httpx.Response:
    return _CLIENT.post(emu.url + path, json=body, headers=headers)


ACCESS_DENIED = {"success": False, "message": "Access Denied. You do not have sufficient "
                                              "access to perform this action."}


# Insider's reference documents one body for an authentication error: 403 Access Denied.
# (The emulator used to answer 400 "Partner is invalid." / 401 "Partner token
# authentication failed.", texts no public source gives.)
@pytest.mark.parametrize("partner", ["ACME", "Acme", "other", None])
def test_wrong_partner_is_403_access_denied(insider_emulator: Emulator,
                                            partner: str | None) -> None:
    headers = {"X-REQUEST-TOKEN": "test-key"}
    if partner is not None:
        headers["X-PARTNER-NAME"] = partner
    r = post(insider_emulator, headers)
    assert (r.status_code, r.json()) == (403, ACCESS_DENIED)
    assert insider_emulator.counts()["users"] == 0


@pytest.mark.parametrize("token", ["wrong", ""])
def test_wrong_token_is_403_access_denied(insider_emulator: Emulator, token: str) -> None:
    r = post(insider_emulator, {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": token})
    assert (r.status_code, r.json()) == (403, ACCESS_DENIED)
    assert insider_emulator.counts()["users"] == 0


def test_forbidden_key_is_403() -> None:
    with Emulator(forbidden_api_keys=["read-only-key"]) as emu:
        r = post(emu, {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "read-only-key"})
        assert (r.status_code, r.json()) == (403, ACCESS_DENIED)
        assert emu.counts()["users"] == 0


def test_token_never_appears_in_the_log(insider_emulator: Emulator) -> None:
    post(insider_emulator, {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "sekret-token"})
    post(insider_emulator, HEADERS)
    text = httpx.get(insider_emulator.url + "/_emulator/requests").text
    assert "sekret-token" not in text and "test-key" not in text
    assert text.count("[redacted]") == 2


def test_rate_limit_429_with_retry_after() -> None:
    with Emulator(rate_limits={"anonymize": 2}) as emu:
        upsert_ok = post(emu, HEADERS)
        assert upsert_ok.json() == ok(1)
        statuses = [post(emu, HEADERS, ANONYMIZE, {"identifiers": {"uuid": "u1"}}).status_code
                    for _ in range(2)]
        assert statuses == [200, 200]
        r = post(emu, HEADERS, ANONYMIZE, {"identifiers": {"uuid": "u1"}})
        assert r.status_code == 429
        assert r.json() == {"error": "rejected: too many requests"}
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        # Other families are unaffected.
        assert post(emu, HEADERS).status_code == 200


def test_upsert_and_attribute_delete_share_a_budget() -> None:
    with Emulator(rate_limits={"upsert": (2, 60)}) as emu:
        assert post(emu, HEADERS).status_code == 200
        d = post(emu, HEADERS, "/api/user/v1/attribute/delete",
                 {"users": [{"identifiers": {"uuid": "u1"}, "whole": ["name"]}]})
        assert d.status_code == 200
        r = post(emu, HEADERS)
        assert r.status_code == 429 and "Retry-After" in r.headers


def test_injected_429_500_503_store_nothing(insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(script=[429, 500, 503], retry_after=7)
    r429, r500, r503 = (post(insider_emulator, HEADERS) for _ in range(3))
    assert (r429.status_code, r429.json()) == (429, {"error": "rejected: too many requests"})
    assert r429.headers["Retry-After"] == "7"
    assert (r500.status_code, r503.status_code) == (500, 503)
    assert insider_emulator.counts()["users"] == 0
    assert post(insider_emulator, HEADERS).json() == ok(1)  # script exhausted
    assert [e["fault"] for e in insider_emulator.requests()] == [429, 500, 503, None]


def test_dropped_connection_is_seen_by_httpx(insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(drop=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post(insider_emulator, HEADERS)
    assert insider_emulator.counts()["users"] == 0
    insider_emulator.set_faults()
    assert post(insider_emulator, HEADERS).json() == ok(1)


def test_latency_is_added(insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(latency_ms=300)
    start = time.perf_counter()
    assert post(insider_emulator, HEADERS).status_code == 200
    assert time.perf_counter() - start >= 0.3


def test_forced_row_rejections(client: httpx.Client, insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u2", "L7"])
    r = upsert(client, {"identifiers": {"uuid": "u1"}, "attributes": {"name": "a"}},
               {"identifiers": {"uuid": "u2"}, "attributes": {"name": "b"}},
               {"identifiers": {"custom": {"loyalty_id": "L7"}}, "attributes": {"name": "c"}})
    data = r.json()["data"]
    assert data["successful"] == {"count": 1}
    assert data["fail"]["count"] == 2
    assert data["fail"]["errors"] == {
        "users.1.identifiers.*.rejected": ["rejected by emulator fault injection: u2"],
        "users.2.identifiers.*.rejected": ["rejected by emulator fault injection: L7"]}
    assert [p["identifiers"].get("uuid") for p in insider_emulator.profiles()] == ["u1"]


def test_seeded_random_faults_are_reproducible() -> None:
    def run() -> list[int]:
        with Emulator(faults={"seed": 42, "status_500": 0.3, "status_429": 0.2}) as emu:
            return [post(emu, HEADERS).status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert {200, 500, 429} <= set(first)


def test_faults_via_admin_endpoint_and_validation(insider_emulator: Emulator) -> None:
    url = insider_emulator.url + "/_emulator/faults"
    assert httpx.post(url, json={"status_503": 1.0}).status_code == 200
    assert post(insider_emulator, HEADERS).status_code == 503
    bad = httpx.post(url, json={"status_999": 1.0})
    assert bad.status_code == 400 and "status_999" in bad.json()["error"]
    assert httpx.post(url, json={}).status_code == 200
    assert post(insider_emulator, HEADERS).status_code == 200
    with pytest.raises(ValueError, match="probability"):
        insider_emulator.set_faults(drop=2)


def test_faults_can_target_one_endpoint(insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(status_500=1.0, endpoints=["anonymize"])
    assert post(insider_emulator, HEADERS).status_code == 200
    r = post(insider_emulator, HEADERS, ANONYMIZE, {"identifiers": {"uuid": "u1"}})
    assert r.status_code == 500

"""Attribute delete, identity update/delete, user delete and anonymize round trips."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from emulator_helpers import ANONYMIZE, ATTR_DELETE, IDENTITY, USER_DELETE, ok, upsert

from reverse_etl.insider.emulator import Emulator

NO_SUCH_USER = {"error": "no such user for these identifiers: no data"}


def seed(client: httpx.Client, **identifiers: Any) -> None:
    ids = identifiers or {"uuid": "u1", "email": "a@b.co"}
    r = upsert(client, {"identifiers": ids, "attributes": {
        "name": "Ada", "email_optin": True, "static_segment_id": [1, 2, 3], "city": "Oslo",
        "custom": {"tier": "gold", "audiences": ["vip", "new"], "score": 5}}})
    assert r.json() == ok(1)


def attrs(emu: Emulator) -> dict[str, Any]:
    p = emu.profile(uuid="u1")
    assert p is not None
    return p["attributes"]  # type: ignore[no-any-return]


def test_documented_attribute_delete_sample(client: httpx.Client,
                                            insider_emulator: Emulator) -> None:
    seed(client)
    r = client.post(ATTR_DELETE, json={"users": [{
        "identifiers": {"uuid": "u1"}, "whole": ["name", "email_optin"],
        "partial": {"static_segment_id": [1, 2]},
        "custom": {"whole": ["tier"], "partial": {"audiences": ["vip"]}}}]})
    assert (r.status_code, r.json()) == (200, ok(1))
    assert attrs(insider_emulator) == {"static_segment_id": [3], "city": "Oslo",
                                       "custom": {"audiences": ["new"], "score": 5}}


def test_attribute_delete_row_failures(client: httpx.Client, insider_emulator: Emulator) -> None:
    seed(client)
    r = client.post(ATTR_DELETE, json={"users": [
        {"identifiers": {"uuid": "u1"}, "custom": {"partial": {"score": [5]}}},
        {"identifiers": {"uuid": "u1"}, "partial": {"city": ["Oslo"]}},
        {"identifiers": {"uuid": "nobody"}, "whole": ["name"]},
        {"identifiers": {"uuid": "u1"}, "whole": ["tier"]},
        {"identifiers": {"uuid": "u1"}, "custom": {"whole": ["tier"]}}]})
    data = r.json()["data"]
    assert data["successful"] == {"count": 1}
    assert sorted(data["fail"]["errors"]) == [
        "users.0.custom.partial.score.array", "users.1.partial.city.array",
        "users.2.identifiers.*.exists", "users.3.whole.tier.default"]
    a = attrs(insider_emulator)
    assert a["custom"] == {"audiences": ["vip", "new"], "score": 5}
    assert a["city"] == "Oslo"


def test_attribute_delete_of_absent_values_is_idempotent(client: httpx.Client) -> None:
    seed(client)
    body = {"users": [{"identifiers": {"uuid": "u1"},
                       "custom": {"whole": ["tier"], "partial": {"audiences": ["vip"]}}}]}
    assert client.post(ATTR_DELETE, json=body).json() == ok(1)
    assert client.post(ATTR_DELETE, json=body).json() == ok(1)
    assert client.post(ATTR_DELETE, json={}).json() == {"error": "users must be defined: bad request"}


@pytest.mark.parametrize(("old", "new"), [
    ({"email": "a@b.co"}, {"email": "new@b.co"}),
    ({"uuid": "u1"}, {"uuid": "u9"}),
    ({"custom": {"loyalty_id": "L1"}}, {"custom": {"loyalty_id": "L2"}})])
def test_identity_update(client: httpx.Client, insider_emulator: Emulator,
                         old: dict[str, Any], new: dict[str, Any]) -> None:
    seed(client, uuid="u1", email="a@b.co", custom={"loyalty_id": "L1"})
    r = client.patch(IDENTITY, json={"old_identifier": old, "new_identifier": new})
    assert (r.status_code, r.json()) == (200, {})
    kind = next(iter(new))
    lookup_new = new[kind] if kind != "custom" else None
    if kind == "custom":
        assert insider_emulator.profile(custom=new["custom"]) is not None
        assert insider_emulator.profile(custom=old["custom"]) is None
    else:
        assert insider_emulator.profile(**{kind: lookup_new}) is not None
        assert insider_emulator.profile(**{kind: old[kind]}) is None
    assert insider_emulator.counts()["users"] == 1


def test_identity_update_errors(client: httpx.Client) -> None:
    seed(client)
    seed(client, uuid="u2")
    cases = [
        ({"old_identifier": {"email": "zz@b.co"}, "new_identifier": {"email": "n@b.co"}},
         404, NO_SUCH_USER),
        ({"old_identifier": {"email": "a@b.co"}, "new_identifier": {"uuid": "x"}}, 400, None),
        ({"old_identifier": {"uuid": "u1"}, "new_identifier": {"uuid": "u2"}}, 400, None),
        ({"old_identifier": {"email": "a@b.co"}, "new_identifier": {"email": "bad"}}, 400, None),
        ({"new_identifier": {"email": "n@b.co"}}, 400, None),
    ]
    for body, status, payload in cases:
        r = client.patch(IDENTITY, json=body)
        assert r.status_code == status, body
        if payload is not None:
            assert r.json() == payload
        else:
            assert r.json()["error"].endswith(": bad request")


def test_identity_delete(client: httpx.Client, insider_emulator: Emulator) -> None:
    seed(client)
    r = client.request("DELETE", IDENTITY, json={"identifiers": {"email": "a@b.co"}})
    assert (r.status_code, r.json()) == (200, {})
    p = insider_emulator.profile(uuid="u1")
    assert p is not None and p["identifiers"] == {"uuid": "u1", "custom": {}}
    r = client.request("DELETE", IDENTITY, json={"identifiers": {"uuid": "u1"}})
    assert (r.status_code, r.json()) == (400, {
        "error": "you cannot delete the sole identifier specified for a user: bad request"})
    r = client.request("DELETE", IDENTITY, json={"identifiers": {"uuid": "nobody"}})
    assert (r.status_code, r.json()) == (404, NO_SUCH_USER)


def test_user_delete(client: httpx.Client, insider_emulator: Emulator) -> None:
    seed(client)
    r = client.post(USER_DELETE, json={"identifiers": {"email": "a@b.co"}})
    assert (r.status_code, r.json()) == (200, {})
    assert insider_emulator.profile(uuid="u1") is None
    assert insider_emulator.counts()["users"] == 0
    r = client.post(USER_DELETE, json={"identifiers": {"email": "a@b.co"}})
    assert (r.status_code, r.json()) == (404, NO_SUCH_USER)
    # The identifiers are free again: a new upsert creates a fresh profile.
    assert upsert(client, {"identifiers": {"uuid": "u1"}, "attributes": {"age": 1}}).json() == ok(1)
    assert attrs(insider_emulator) == {"age": 1, "custom": {}}


def test_anonymize_removes_pii_but_keeps_the_last_identifier(
        client: httpx.Client, insider_emulator: Emulator) -> None:
    seed(client, uuid="u1", email="a@b.co", custom={"loyalty_id": "L1"})
    seed(client, uuid="u2", email="b@b.co")
    r = client.post(ANONYMIZE, json={"identifiers": {"uuid": "u1"}})
    assert (r.status_code, r.json()) == (200, {})
    p = insider_emulator.profile(loyalty_id="L1")
    assert p is not None
    assert p["identifiers"] == {"custom": {"loyalty_id": "L1"}}
    assert p["attributes"] == {"email_optin": True, "static_segment_id": [1, 2, 3],
                               "custom": {"tier": "gold", "audiences": ["vip", "new"],
                                          "score": 5}}
    assert client.post(ANONYMIZE, json={"identifiers": {"email": "b@b.co"}}).status_code == 200
    only = insider_emulator.profile(uuid="u2")
    assert only is not None and only["identifiers"] == {"uuid": "u2", "custom": {}}
    assert "name" not in only["attributes"]
    r = client.post(ANONYMIZE, json={"identifiers": {"uuid": "nobody"}})
    assert (r.status_code, r.json()) == (404, NO_SUCH_USER)

"""Upsert over real HTTP: the documented sample, row-level validation, state, limits."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from emulator_helpers import UPSERT, ok, upsert

from reverse_etl.insider.emulator import Emulator

RECENT = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
OLD = (datetime.now(UTC) - timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ")

SAMPLE: dict[str, Any] = {"users": [{
    "identifiers": {"uuid": "u1", "email": "a@b.co", "phone_number": "+6598765432",
                    "custom": {"loyalty_id": "L9"}},
    "attributes": {"name": "Ada", "surname": "L", "age": 36, "gender": "f",
                   "birthday": "1980-01-01T00:00:00Z", "language": "en_US",
                   "country": "GB", "city": "London",
                   "email_optin": True, "sms_optin": False, "whatsapp_optin": False,
                   "gdpr_optin": True, "email": "a@b.co", "phone_number": "+6598765432",
                   "custom": {"tier": "gold", "favorite_colors": ["green"]}},
    "not_append": True,
    "events": [{"event_name": "purchase", "timestamp": "2021-01-10T21:35:20Z",
                "event_params": {"product_id": "P1", "name": "Phone",
                                 "taxonomy": ["Electronics"], "currency": "USD",
                                 "unit_price": 990.9, "unit_sale_price": 890.9,
                                 "quantity": 1, "event_group_id": "ORDER123",
                                 "custom": {"customer_type": "trial"}}}],
}]}


def user(uuid: str, **attrs: Any) -> dict[str, Any]:
    return {"identifiers": {"uuid": uuid}, "attributes": attrs}


def test_documented_sample_is_accepted_and_stored(client: httpx.Client,
                                                  insider_emulator: Emulator) -> None:
    r = client.post(UPSERT, json=SAMPLE)
    assert r.status_code == 200
    assert r.json() == ok(1)
    p = insider_emulator.profile(uuid="u1")
    assert p is not None
    assert p["identifiers"] == {"uuid": "u1", "email": "a@b.co", "phone_number": "+6598765432",
                                "custom": {"loyalty_id": "L9"}}
    expected_attrs = copy.deepcopy(SAMPLE["users"][0]["attributes"])
    assert {k: v for k, v in p["attributes"].items()} == expected_attrs
    # The sample's 2021 event is older than the 90-day TTL: dropped, still a success.
    assert p["events"] == []
    assert insider_emulator.counts()["events_dropped_ttl"] == 1


def test_sample_event_within_ttl_is_stored(client: httpx.Client,
                                           insider_emulator: Emulator) -> None:
    body = copy.deepcopy(SAMPLE)
    body["users"][0]["events"][0]["timestamp"] = RECENT
    assert client.post(UPSERT, json=body).json() == ok(1)
    p = insider_emulator.profile(email="a@b.co")
    assert p is not None
    assert p["events"] == [{**body["users"][0]["events"][0]}]
    assert insider_emulator.counts()["events"] == 1


def test_documented_row_failure_shape_and_others_still_stored(
        client: httpx.Client, insider_emulator: Emulator) -> None:
    users = [user(f"u{i}", name=f"n{i}") for i in range(5)]
    users[3] = {"identifiers": {"uuid": "u3", "email": "x"}, "attributes": {"name": "n3"}}
    r = upsert(client, *users)
    assert r.status_code == 200
    assert r.content == (b'{"data":{"successful":{"count":4},"fail":{"count":1,"errors":'
                         b'{"users.3.identifiers.*.regexp(^.+@.+\\\\..+$)":'
                         b'["not a valid email address: x"]}}}}')
    assert insider_emulator.profile(uuid="u3") is None
    assert insider_emulator.counts()["users"] == 4


BAD_USERS: list[tuple[dict[str, Any], str]] = [
    ({"identifiers": {"phone_number": "98765"}, "attributes": {"name": "a"}},
     "users.0.identifiers.*.regexp(^\\+[1-9]\\d{6,14}$)"),
    ({"identifiers": {"uuid": 5}, "attributes": {"name": "a"}},
     "users.0.identifiers.*.type(string)"),
    ({"identifiers": {"custom": {"shoe_size": "9"}}, "attributes": {"name": "a"}},
     "users.0.identifiers.custom.shoe_size.unknown"),
    ({"attributes": {"name": "a"}}, "users.0.identifiers.required"),
    ({"identifiers": {"uuid": "a"}}, "users.0.required(attributes|events)"),
    ({"identifiers": {"uuid": "a"}, "attributes": {}}, "users.0.required(attributes|events)"),
    ({"identifiers": {"uuid": "a"}, "attributes": {"tier": "gold"}},
     "users.0.attributes.tier.default"),
    ({"identifiers": {"uuid": "a"}, "attributes": {"custom": {"Tier": "gold"}}},
     "users.0.attributes.custom.Tier.regexp(^[a-z][a-z0-9_]*$)"),
    ({"identifiers": {"uuid": "a"}, "attributes": {"birthday": "1980-01-01T00:00:00+02:00"}},
     "users.0.attributes.birthday.rfc3339(utc)"),
    ({"identifiers": {"uuid": "a"}, "attributes": {"birthday": "1980-01-01"}},
     "users.0.attributes.birthday.rfc3339(utc)"),
    ({"identifiers": {"uuid": "a"}, "attributes": {"age": "36"}},
     "users.0.attributes.age.type(integer)"),
    ({"identifiers": {"uuid": "a"}, "attributes": {"email_optin": "yes"}},
     "users.0.attributes.email_optin.type(boolean)"),
    ({"identifiers": {"uuid": "a"}, "attributes": {"email": "nope"}},
     "users.0.attributes.email.regexp(^.+@.+\\..+$)"),
    ({"identifiers": {"uuid": "a"}, "attributes": {"country": "gbr"}},
     "users.0.attributes.country.regexp(^[A-Z]{2}$)"),
    ({"identifiers": {"uuid": "a"}, "events": [{"event_name": "Bad Name", "timestamp": RECENT}]},
     "users.0.events.0.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"),
    ({"identifiers": {"uuid": "a"}, "events": [{"event_name": "homepageView",
                                                "timestamp": RECENT}]},
     "users.0.events.0.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"),
    ({"identifiers": {"email_address": "a@b.co"}, "attributes": {"name": "a"}},
     "users.0.identifiers.*.in(defaults_column)"),
    ({"attributes": {"name": "a"}}, "users.0.insider_id.required"),
    ({"identifiers": {"uuid": "a"}, "events": [{"event_name": "login"}]},
     "users.0.events.0.timestamp.required"),
    ({"identifiers": {"uuid": "a"}, "events": [{"event_name": "login", "timestamp": "yesterday"}]},
     "users.0.events.0.timestamp.rfc3339"),
    ({"identifiers": {"uuid": "a"}, "events": [{"event_name": "login", "timestamp": RECENT,
                                                "event_params": {"plan": "x"}}]},
     "users.0.events.0.event_params.plan.default"),
    ({"identifiers": {"uuid": "a"}, "events": [{"event_name": "login", "timestamp": RECENT,
                                                "event_params": {"quantity": 1.5}}]},
     "users.0.events.0.event_params.quantity.type(integer)"),
    ({"identifiers": {"uuid": "a"}, "mystery": 1, "attributes": {"name": "a"}},
     "users.0.mystery.unknown"),
]


@pytest.mark.parametrize(("bad", "key"), BAD_USERS, ids=[k for _, k in BAD_USERS])
def test_row_failures(client: httpx.Client, insider_emulator: Emulator,
                      bad: dict[str, Any], key: str) -> None:
    r = upsert(client, bad, user("good", name="g"))
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["successful"] == {"count": 1}
    assert data["fail"]["count"] == 1
    assert key in data["fail"]["errors"], data["fail"]["errors"]
    assert all(isinstance(m, str) and m for m in data["fail"]["errors"][key])
    assert insider_emulator.counts()["users"] == 1


@pytest.mark.parametrize("event", ["purchase", "cart_page_view"])
def test_commerce_events_need_their_params(client: httpx.Client, event: str) -> None:
    r = upsert(client, {"identifiers": {"uuid": "a"},
                        "events": [{"event_name": event, "timestamp": RECENT}]})
    errors = r.json()["data"]["fail"]["errors"]
    needed = ["event_group_id", "currency", "unit_sale_price"]
    if event == "purchase":
        needed.append("quantity")
    assert errors == {"users.0.events.0.event_params.*.required": [
        f"{p} parameter is required on {event} event" for p in needed]}


ALLOWED = {"s": "text", "i": 42, "f": 2.5, "b": False, "when": "2024-05-01T10:00:00Z",
           "tags": ["a", "b"], "nums": [1, 2.5], "empty": []}


def test_allowed_value_types_round_trip(client: httpx.Client,
                                        insider_emulator: Emulator) -> None:
    assert upsert(client, {"identifiers": {"uuid": "t"},
                           "attributes": {"custom": ALLOWED}}).json() == ok(1)
    p = insider_emulator.profile(uuid="t")
    assert p is not None and p["attributes"]["custom"] == ALLOWED


@pytest.mark.parametrize("value", [{"a": 1}, [{"a": 1}], [True, False], ["a", 1], None, [[1]]],
                         ids=["object", "array-of-objects", "array-of-booleans", "mixed",
                              "null", "nested"])
def test_disallowed_value_types_fail_the_row(client: httpx.Client, value: Any) -> None:
    r = upsert(client, {"identifiers": {"uuid": "t"}, "attributes": {"custom": {"v": value}}})
    data = r.json()["data"]
    assert data["successful"] == {}  # Insider's reference: no successful users -> {}
    assert list(data["fail"]["errors"]) == ["users.0.attributes.custom.v.type"]


def test_whole_request_errors(client: httpx.Client, insider_emulator: Emulator) -> None:
    for body in ({}, {"users": []}, {"users": "x"}, [1]):
        r = client.post(UPSERT, json=body)
        assert (r.status_code, r.json()) == (400, {"error": "users must be defined: bad request"})
    r = client.post(UPSERT, json={"users": [user(f"u{i}", name="a") for i in range(1001)]})
    assert r.status_code == 400 and "1000" in r.json()["error"]
    big = {"users": [user("u", name="x" * 5_000_001)]}
    r = client.post(UPSERT, content=orjson.dumps(big),
                    headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (
        400, {"error": "request body is bigger than maximum allowed size 5,000,000 bytes"})
    assert client.post(UPSERT, content=b"{nope",
                       headers={"Content-Type": "application/json"}).status_code == 400
    assert insider_emulator.counts()["users"] == 0


def test_a_full_batch_of_1000_is_accepted(client: httpx.Client,
                                          insider_emulator: Emulator) -> None:
    r = client.post(UPSERT, json={"users": [user(f"u{i}", name="a") for i in range(1000)]})
    assert r.json() == ok(1000)
    assert insider_emulator.counts()["users"] == 1000


@pytest.mark.parametrize("ids", [{"uuid": "u1"}, {"email": "a@b.co"},
                                 {"phone_number": "+6598765432"},
                                 {"custom": {"loyalty_id": "L9"}}],
                         ids=["uuid", "email", "phone", "custom"])
def test_unification_by_each_identifier_kind(client: httpx.Client, insider_emulator: Emulator,
                                             ids: dict[str, Any]) -> None:
    full = {"uuid": "u1", "email": "a@b.co", "phone_number": "+6598765432",
            "custom": {"loyalty_id": "L9"}}
    assert upsert(client, {"identifiers": full, "attributes": {"name": "Ada"}}).json() == ok(1)
    assert upsert(client, {"identifiers": ids, "attributes": {"city": "Paris"}}).json() == ok(1)
    profiles = insider_emulator.profiles()
    assert len(profiles) == 1
    assert profiles[0]["attributes"]["name"] == "Ada"
    assert profiles[0]["attributes"]["city"] == "Paris"


def test_new_identifiers_are_added_existing_never_changed(
        client: httpx.Client, insider_emulator: Emulator) -> None:
    upsert(client, {"identifiers": {"uuid": "u1", "email": "a@b.co"}, "attributes": {"age": 1}})
    upsert(client, {"identifiers": {"uuid": "u1", "email": "other@b.co",
                                    "custom": {"segment_anonymous_id": "anon"}},
                    "attributes": {"age": 2}})
    p = insider_emulator.profile(uuid="u1")
    assert p is not None
    assert p["identifiers"] == {"uuid": "u1", "email": "a@b.co",
                                "custom": {"segment_anonymous_id": "anon"}}
    assert p["attributes"]["age"] == 2
    assert insider_emulator.profile(email="other@b.co") is None
    assert insider_emulator.profile(custom={"segment_anonymous_id": "anon"}) == p


def test_identifiers_of_two_different_users_fail_the_row(client: httpx.Client) -> None:
    upsert(client, user("u1", name="a"), {"identifiers": {"email": "b@b.co"},
                                          "attributes": {"name": "b"}})
    r = upsert(client, {"identifiers": {"uuid": "u1", "email": "b@b.co"},
                        "attributes": {"name": "c"}})
    assert list(r.json()["data"]["fail"]["errors"]) == ["users.0.identifiers.*.conflict"]


def test_arrays_append_by_default_and_not_append_replaces(
        client: httpx.Client, insider_emulator: Emulator) -> None:
    def arrays() -> tuple[Any, Any]:
        p = insider_emulator.profile(uuid="u1")
        assert p is not None
        return p["attributes"]["custom"]["colors"], p["attributes"]["static_segment_id"]

    upsert(client, {"identifiers": {"uuid": "u1"},
                    "attributes": {"static_segment_id": [1], "custom": {"colors": ["red"]}}})
    upsert(client, {"identifiers": {"uuid": "u1"},
                    "attributes": {"static_segment_id": [1, 2],
                                   "custom": {"colors": ["red", "blue"]}}})
    assert arrays() == (["red", "red", "blue"], [1, 1, 2])  # Insider appends, no dedup
    upsert(client, {"identifiers": {"uuid": "u1"}, "not_append": True,
                    "attributes": {"static_segment_id": [7], "custom": {"colors": ["green"]}}})
    assert arrays() == (["green"], [7])


def test_events_append_and_old_events_are_dropped(client: httpx.Client,
                                                  insider_emulator: Emulator) -> None:
    ev = {"event_name": "login", "timestamp": RECENT}
    old = {"event_name": "login", "timestamp": OLD}
    assert upsert(client, {"identifiers": {"uuid": "u1"}, "events": [ev, old]}).json() == ok(1)
    assert upsert(client, {"identifiers": {"uuid": "u1"}, "events": [ev]}).json() == ok(1)
    p = insider_emulator.profile(uuid="u1")
    assert p is not None
    assert [e["timestamp"] for e in p["events"]] == [RECENT, RECENT]
    counts = insider_emulator.counts()
    assert (counts["events"], counts["events_dropped_ttl"]) == (2, 1)


def test_event_ttl_is_configurable() -> None:
    from emulator_helpers import HEADERS
    with Emulator(event_ttl_days=365) as emu:
        r = httpx.post(emu.url + UPSERT, headers=HEADERS, json={"users": [
            {"identifiers": {"uuid": "u"}, "events": [{"event_name": "x", "timestamp": OLD}]}]})
        assert r.json() == ok(1)
        assert emu.counts()["events"] == 1


def test_custom_attribute_cap_of_255(client: httpx.Client, insider_emulator: Emulator) -> None:
    names = {f"a{i}": i for i in range(255)}
    assert upsert(client, {"identifiers": {"uuid": "u1"},
                           "attributes": {"custom": names}}).json() == ok(1)
    r = upsert(client, {"identifiers": {"uuid": "u2"}, "attributes": {"custom": {"a1": 1}}},
               {"identifiers": {"uuid": "u3"}, "attributes": {"custom": {"new_one": 1}}})
    data = r.json()["data"]
    assert data["successful"] == {"count": 1}
    assert list(data["fail"]["errors"]) == ["users.1.attributes.custom.limit(255)"]
    assert insider_emulator.profile(uuid="u3") is None
    assert insider_emulator.counts()["custom_attribute_names"] == 255


def test_request_log_shows_each_requests_users_and_skip_hook(
        client: httpx.Client, insider_emulator: Emulator) -> None:
    upsert(client, user("a", name="1"), user("b", name="2"), skip_hook=True)
    upsert(client, user("c", name="3"))
    log = insider_emulator.requests()
    assert [[u["identifiers"]["uuid"] for u in e["body"]["users"]] for e in log] == [
        ["a", "b"], ["c"]]
    assert [e["skip_hook"] for e in log] == [True, None]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("POST", UPSERT, 200)] * 2
    assert "test-key" not in orjson.dumps(log).decode()
    http_log = httpx.get(insider_emulator.url + "/_emulator/requests").json()
    assert http_log == log


def test_admin_endpoints_mirror_python_helpers(client: httpx.Client,
                                               insider_emulator: Emulator) -> None:
    upsert(client, {"identifiers": {"uuid": "u1", "custom": {"loyalty_id": "L9"}},
                    "attributes": {"name": "a"}})
    base = insider_emulator.url + "/_emulator"
    p = insider_emulator.profile(loyalty_id="L9")
    assert httpx.get(base + "/profile", params={"custom.loyalty_id": "L9"}).json() == p
    assert httpx.get(base + "/profile", params={"uuid": "nobody"}).status_code == 404
    assert httpx.get(base + "/profiles").json() == [p]
    assert httpx.get(base + "/counts").json()["users"] == 1
    assert httpx.post(base + "/reset").status_code == 200
    assert insider_emulator.counts()["users"] == 0
    assert insider_emulator.requests() == []


def test_upsert_by_insider_id(client: httpx.Client, insider_emulator: Emulator) -> None:
    upsert(client, user("u1", name="a"))
    p = insider_emulator.profile(uuid="u1")
    assert p is not None
    r = upsert(client, {"insider_id": p["insider_id"], "attributes": {"name": "b"}},
               {"insider_id": "nope", "attributes": {"name": "c"}})
    data = r.json()["data"]
    assert data["successful"] == {"count": 1}
    assert list(data["fail"]["errors"]) == ["users.1.insider_id.exists"]
    assert insider_emulator.profile(insider_id=p["insider_id"])["attributes"]["name"] == "b"  # type: ignore[index]

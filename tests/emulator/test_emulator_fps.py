"""First-party segment upload: answer, download, validation counts and callback."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from emulator_helpers import FPS, HEADERS, Receiver, ok, upsert

from reverse_etl.insider.emulator import Emulator

EMAILS = b"a@b.co\nc@d.co\ne@f.co\ng@h.co\ni@j.co\nnope\nx\n@\nfoo@bar\n1\n2\n3\n"


def body(receiver: Receiver, name: str = "vip_customers", attribute: str = "em",
         file: str = "/vip.csv?sig=abc") -> dict[str, Any]:
    return {"segmentName": name, "attributeName": attribute,
            "fileUrl": receiver.url + file, "callbackUrl": receiver.url + "/cb"}


def test_documented_upload_and_callback(client: httpx.Client, insider_emulator: Emulator,
                                        receiver: Receiver) -> None:
    assert upsert(client, {"identifiers": {"email": "a@b.co"}, "attributes": {"name": "a"}},
                  {"identifiers": {"email": "c@d.co"}, "attributes": {"name": "c"}}
                  ).json() == ok(2)
    receiver.files["/vip.csv?sig=abc"] = EMAILS
    r = client.post(FPS, json=body(receiver))
    assert (r.status_code, r.json()) == (200, {"statusMessage": "OK"})
    (path, callback), = receiver.wait_for(1)
    assert path == "/cb"
    assert callback == {"segment_name": "vip_customers", "valid_values_count": 5,
                        "invalid_values_count": 7, "total_entered_values": 12}
    insider_emulator.wait_idle()
    segment, = insider_emulator.segments()
    assert segment["status"] == "processed"
    assert segment["callback_status"] == 200
    members = {insider_emulator.profile(email=e)["insider_id"]  # type: ignore[index]
               for e in ("a@b.co", "c@d.co")}
    assert set(segment["members"]) == members
    assert insider_emulator.counts()["users"] == 2  # FPS creates no user


@pytest.mark.parametrize(("attribute", "data", "valid", "invalid"), [
    ("pn", b"+6598765432\n98765432\n+447700900123\n", 2, 1),
    ("uuid", b"u1\nu2\n\n u3 \n", 3, 0)])
def test_phone_and_uuid_files(client: httpx.Client, receiver: Receiver, attribute: str,
                              data: bytes, valid: int, invalid: int) -> None:
    receiver.files["/s.csv"] = data
    assert client.post(FPS, json=body(receiver, attribute=attribute, file="/s.csv")
                       ).status_code == 200
    (_, callback), = receiver.wait_for(1)
    assert (callback["valid_values_count"], callback["invalid_values_count"],
            callback["total_entered_values"]) == (valid, invalid, valid + invalid)


def test_any_attribute_default_custom_and_custom_identifier(
        client: httpx.Client, insider_emulator: Emulator, receiver: Receiver) -> None:
    # The reference: attributeName "can be either an identifier or any attribute".
    assert upsert(client,
                  {"identifiers": {"email": "a@b.co", "custom": {"loyalty_id": "L1"}},
                   "attributes": {"age": 30, "email_optin": True, "custom": {"store_id": ["s1", "s2"]}}},
                  {"identifiers": {"email": "c@d.co"},
                   "attributes": {"age": 41, "email_optin": False, "custom": {"store_id": ["s3"]}}},
                  ).json() == ok(2)
    first = insider_emulator.profile(email="a@b.co")["insider_id"]  # type: ignore[index]
    second = insider_emulator.profile(email="c@d.co")["insider_id"]  # type: ignore[index]
    cases = [  # (attribute, file, valid, invalid, members)
        ("age", b"30\nabc\n29\n4.5\n", 2, 2, {first}),  # the reference: age (a number) refuses text; an integer
        ("email_optin", b"false\nmaybe\n", 1, 1, {second}),
        ("store_id", b"s2\ns3\ns9\n", 3, 0, {first, second}),  # a custom array attribute: contains
        ("loyalty_id", b"L1\nL2\n", 2, 0, {first}),  # a custom identifier of the tenant
        ("email", b"c@d.co\nnope\n", 1, 1, {second}),  # the default attribute, format-checked
    ]
    for n, (attribute, data, valid, invalid, _) in enumerate(cases):
        receiver.files[f"/{attribute}.csv"] = data
        r = client.post(FPS, json=body(receiver, name=f"seg{n}", attribute=attribute, file=f"/{attribute}.csv"))
        assert (r.status_code, r.json()) == (200, {"statusMessage": "OK"}), r.headers.get("X-Emulator-Reason")
        (_, callback), = receiver.wait_for(n + 1)[n:]
        assert (callback["valid_values_count"], callback["invalid_values_count"]) == (valid, invalid), attribute
    insider_emulator.wait_idle()
    got = {s["name"]: set(s["members"]) for s in insider_emulator.segments()}
    assert got == {f"seg{n}": case[4] for n, case in enumerate(cases)}


def test_segment_name_already_in_use(client: httpx.Client, receiver: Receiver) -> None:
    receiver.files["/vip.csv?sig=abc"] = EMAILS
    assert client.post(FPS, json=body(receiver)).status_code == 200
    r = client.post(FPS, json=body(receiver))
    assert (r.status_code, r.json()) == (400, {"statusMessage": "segment name already in use"})


@pytest.mark.parametrize("headers", [
    {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "wrong"},
    {"X-PARTNER-NAME": "ACME", "X-REQUEST-TOKEN": "test-key"}, {"X-PARTNER-NAME": "acme"}])
def test_unauthorized(insider_emulator: Emulator, receiver: Receiver,
                      headers: dict[str, str]) -> None:
    r = httpx.post(insider_emulator.url + FPS, json=body(receiver), headers=headers)
    assert (r.status_code, r.json()) == (401, {"statusMessage": "Unauthorized"})
    assert insider_emulator.segments() == []


@pytest.mark.parametrize("change", [
    {"segmentName": "x" * 41}, {"segmentName": ""}, {"attributeName": "store_id"}, {"attributeName": "Store ID"},
    {"attributeName": 7},
    {"fileUrl": "https://files.example/vip.csv"},
    {"callbackUrl": "https://me.example/cb"}, {"extra": 1}, {"callbackUrl": None}])
def test_invalid_payload_is_405(client: httpx.Client, insider_emulator: Emulator,
                                receiver: Receiver, change: dict[str, Any]) -> None:
    payload = {**body(receiver), **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    r = client.post(FPS, json=payload)
    assert (r.status_code, r.json()) == (405, {"error": "Invalid Payload."})
    assert r.headers["X-Emulator-Reason"]
    assert insider_emulator.segments() == []
    assert client.post(FPS, content=b"not json").status_code == 405


@pytest.mark.parametrize(("change", "headers", "message"), [
    ({"fileUrl": "http://127.0.0.1:1/vip.txt"}, HEADERS,
     "the file URL is invalid. The URL should include .csv extension"),
    ({}, {"X-REQUEST-TOKEN": "test-key"}, "partner name is missing"),
])
def test_reference_error_table_texts(insider_emulator: Emulator, receiver: Receiver, change: dict[str, Any],
                                     headers: dict[str, str], message: str) -> None:
    r = httpx.post(insider_emulator.url + FPS, json={**body(receiver), **change}, headers=headers)
    assert (r.status_code, r.json()) == (400, {"statusMessage": message})
    assert insider_emulator.segments() == []


def test_fps_rate_limit(receiver: Receiver) -> None:
    receiver.files["/s.csv"] = b"u1\n"
    with Emulator(rate_limits={"fps": (2, 60)}) as emu:
        statuses = [httpx.post(emu.url + FPS, headers=HEADERS,
                               json=body(receiver, name=f"s{i}", attribute="uuid",
                                         file="/s.csv")).status_code for i in range(3)]
        assert statuses == [200, 200, 429]


def test_callback_delay_and_oversize_file(receiver: Receiver) -> None:
    receiver.files["/s.csv"] = b"u1\nu2\n"
    receiver.files["/big.csv"] = b"u" * 100
    with Emulator(fps_callback_delay=0.3, fps_max_file_bytes=50) as emu:
        start = time.perf_counter()
        httpx.post(emu.url + FPS, headers=HEADERS, json=body(receiver, "big", "uuid", "/big.csv"))
        httpx.post(emu.url + FPS, headers=HEADERS, json=body(receiver, "ok", "uuid", "/s.csv"))
        (_, callback), = receiver.wait_for(1)
        assert time.perf_counter() - start >= 0.3
        assert callback["segment_name"] == "ok"
        emu.wait_idle()
        status = {s["name"]: s["status"] for s in emu.segments()}
        assert status["ok"] == "processed"
        assert status["big"].startswith("failed: file is larger than")
        assert len(receiver.posts) == 1  # no callback for the refused file

"""Raw data export: request validation, the hook, the file in three formats, limits."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from emulator_helpers import EXPORT, Receiver, ok, upsert

from reverse_etl.insider.emulator import Emulator

NOW = datetime.now(UTC)
TS = (NOW - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
START = int((NOW - timedelta(days=1)).timestamp())
END = int((NOW + timedelta(days=1)).timestamp())
# Insider's raw export v1 columns: iid, a_<attribute>, a_c_<custom>, e_<param>, e_c_<custom>.
ID_COLS = ["iid", "a_uuid", "a_email", "a_phone_number", "a_c_loyalty_id", "a_c_segment_anonymous_id"]


def cart(product: str, price: float) -> dict[str, Any]:
    return {"event_name": "item_added_to_cart", "timestamp": TS,
            "event_params": {"product_id": product, "unit_price": price}}


def seed(client: httpx.Client) -> None:
    r = upsert(client,
               {"identifiers": {"uuid": "u1"},
                "attributes": {"name": "Ada", "custom": {"tier": "gold", "colors": ["red"]}},
                "events": [cart("P1", 10.5), cart("P2", 3.0)]},
               {"identifiers": {"uuid": "u2", "email": "b@b.co"},
                "attributes": {"name": "Bob", "custom": {"tier": "silver"}},
                "events": [cart("P1", 12.0)]})
    assert r.json() == ok(2)


def request(receiver: Receiver, fmt: str, **change: Any) -> dict[str, Any]:
    body = {"segment": {"segment_id": 123456789}, "attributes": ["name", "tier"],
            "events": {"start_date": START, "end_date": END, "wanted": [
                {"event_name": "item_added_to_cart", "params": ["product_id", "timestamp",
                                                                "unit_price"],
                 "filters": [{"key": "product_id", "operator": "eq", "values": ["P1"]}]}]},
            "format": fmt, "hook": receiver.url + "/export-ready"}
    body.update(change)
    return body


def fetch(emu: Emulator, receiver: Receiver) -> httpx.Response:
    (path, hook), = receiver.wait_for(1)
    assert path == "/export-ready"
    assert hook["url"].startswith(f"{emu.url}/acme/p/")
    return httpx.get(hook["url"])


def expected(emu: Emulator) -> list[dict[str, Any]]:
    ids = {u: emu.profile(uuid=u)["insider_id"] for u in ("u1", "u2")}  # type: ignore[index]
    blank = dict.fromkeys(ID_COLS[1:])

    def row(u: str, **values: Any) -> dict[str, Any]:
        r = {"iid": ids[u], **blank, "a_uuid": u,
             "a_name": None, "a_c_tier": None, "e_event_name": None, "e_timestamp": None,
             "e_product_id": None, "e_unit_price": None, **values}
        if u == "u2":
            r["a_email"] = "b@b.co"
        return r

    return [row("u1", a_name="Ada", a_c_tier="gold"),
            row("u2", a_name="Bob", a_c_tier="silver"),
            row("u1", e_event_name="item_added_to_cart", e_timestamp=TS,
                e_product_id="P1", e_unit_price=10.5),
            row("u2", e_event_name="item_added_to_cart", e_timestamp=TS,
                e_product_id="P1", e_unit_price=12.0)]


COLUMNS = [*ID_COLS, "a_name", "a_c_tier", "e_event_name", "e_timestamp", "e_product_id", "e_unit_price"]


def test_json_export(client: httpx.Client, insider_emulator: Emulator,
                     receiver: Receiver) -> None:
    seed(client)
    r = client.post(EXPORT, json=request(receiver, "json"))
    assert r.status_code == 200 and r.json()["success"] is True
    f = fetch(insider_emulator, receiver)
    assert f.status_code == 200
    rows = [json.loads(line) for line in f.text.splitlines()]
    assert [list(r) for r in rows] == [COLUMNS] * 4
    assert rows == expected(insider_emulator)


def test_csv_export(client: httpx.Client, insider_emulator: Emulator,
                    receiver: Receiver) -> None:
    seed(client)
    assert client.post(EXPORT, json=request(receiver, "csv")).status_code == 200
    f = fetch(insider_emulator, receiver)
    rows = list(csv.reader(io.StringIO(f.text)))
    assert rows[0] == COLUMNS
    want = [["" if v is None else str(v) for v in r.values()] for r in expected(insider_emulator)]
    assert rows[1:] == want


def test_parquet_export(client: httpx.Client, insider_emulator: Emulator,
                        receiver: Receiver) -> None:
    seed(client)
    assert client.post(EXPORT, json=request(receiver, "parquet")).status_code == 200
    f = fetch(insider_emulator, receiver)
    parquet = pq.ParquetFile(io.BytesIO(f.content))
    assert parquet.metadata.format_version == "1.0"
    assert parquet.read().to_pylist() == expected(insider_emulator)


def test_star_attributes_and_custom_prefix(client: httpx.Client, insider_emulator: Emulator,
                                           receiver: Receiver) -> None:
    seed(client)
    body = request(receiver, "json", attributes=["*"])
    del body["events"]
    assert client.post(EXPORT, json=body).status_code == 200
    rows = [json.loads(x) for x in fetch(insider_emulator, receiver).text.splitlines()]
    assert list(rows[0])[len(ID_COLS):] == ["a_name", "a_c_colors", "a_c_tier"]
    assert [(r["a_name"], r["a_c_colors"], r["a_c_tier"]) for r in rows] == [
        ("Ada", ["red"], "gold"), ("Bob", None, "silver")]


def test_documented_sample_request_is_accepted(client: httpx.Client, insider_emulator: Emulator,
                                               receiver: Receiver) -> None:
    seed(client)
    sample = {"segment": {"segment_id": 123456789}, "attributes": ["*"],
              "events": {"start_date": 1606311893, "end_date": 1611582293,
                         "wanted": [{"event_name": "item_added_to_cart",
                                     "params": ["product_id", "timestamp"],
                                     "filters": [{"key": "product_id", "operator": "eq",
                                                  "values": ["P1"]}]}]},
              "format": "parquet", "hook": receiver.url + "/export-ready"}
    assert client.post(EXPORT, json=sample).status_code == 200
    table = pq.read_table(io.BytesIO(fetch(insider_emulator, receiver).content))
    # The sample's 2020-2021 window holds no event: only the two user rows.
    assert table.column("e_event_name").to_pylist() == [None, None]
    assert table.column("a_uuid").to_pylist() == ["u1", "u2"]


def test_one_accepted_request_per_utc_day(client: httpx.Client, insider_emulator: Emulator,
                                          receiver: Receiver) -> None:
    bad = client.post(EXPORT, json=request(receiver, "xml"))
    assert bad.status_code == 400  # failed requests do not count
    assert client.post(EXPORT, json=request(receiver, "json")).status_code == 200
    again = client.post(EXPORT, json=request(receiver, "csv"))
    assert (again.status_code, again.json()) == (429, {"error": "rejected: too many requests"})
    assert 1 <= int(again.headers["Retry-After"]) <= 86400
    insider_emulator.advance_clock(86400)
    assert client.post(EXPORT, json=request(receiver, "csv")).status_code == 200


def test_link_expires_after_24_hours(client: httpx.Client, insider_emulator: Emulator,
                                     receiver: Receiver) -> None:
    seed(client)
    client.post(EXPORT, json=request(receiver, "json"))
    (_, hook), = receiver.wait_for(1)
    insider_emulator.advance_clock(23 * 3600)
    assert httpx.get(hook["url"]).status_code == 200
    insider_emulator.advance_clock(3600 + 1)
    gone = httpx.get(hook["url"])
    assert gone.status_code == 410 and "24 hours" in gone.json()["error"]
    assert httpx.get(insider_emulator.url + "/acme/p/nothing.json").status_code == 404
    assert httpx.get(hook["url"].replace("/acme/", "/other/")).status_code == 404


def test_filters_by_values_url_and_numeric_operator(client: httpx.Client,
                                                    insider_emulator: Emulator,
                                                    receiver: Receiver) -> None:
    seed(client)
    receiver.files["/values.csv"] = b"P2\nP9\n"
    body = request(receiver, "json", attributes=[])
    body["events"]["wanted"][0]["filters"] = [{"key": "product_id", "operator": "eq",
                                               "values_url": receiver.url + "/values.csv"}]
    assert client.post(EXPORT, json=body).status_code == 200
    rows = [json.loads(x) for x in fetch(insider_emulator, receiver).text.splitlines()]
    assert [(r["a_uuid"], r["e_product_id"]) for r in rows] == [("u1", "P2")]
    assert "a_name" not in rows[0]  # no attributes asked: no user rows, no attribute columns


def test_gt_filter(client: httpx.Client, insider_emulator: Emulator, receiver: Receiver) -> None:
    seed(client)
    body = request(receiver, "json")
    body["events"]["wanted"][0]["filters"] = [{"key": "unit_price", "operator": "gt",
                                               "values": ["10"]}]
    assert client.post(EXPORT, json=body).status_code == 200
    rows = [json.loads(x) for x in fetch(insider_emulator, receiver).text.splitlines()]
    assert [r["e_unit_price"] for r in rows if r["e_event_name"] is not None] == [10.5, 12.0]


def _wanted(**change: Any) -> dict[str, Any]:
    w = {"event_name": "item_added_to_cart", "params": ["product_id"],
         "filters": [{"key": "product_id", "operator": "eq", "values": ["P1"]}]}
    w.update(change)
    return {"start_date": START, "end_date": END, "wanted": [w]}


BAD = {
    "no-segment": {"segment": None},
    "unknown-segment": {"segment": {"segment_id": 42}},
    "nothing-wanted": {"attributes": [], "events": None},
    "bad-operator": {"events": _wanted(filters=[{"key": "p", "operator": "like",
                                                 "values": ["x"]}])},
    "two-filters": {"events": _wanted(filters=[{"key": "p", "operator": "eq", "values": ["x"]}] * 2)},
    "values-and-url": {"events": _wanted(filters=[{"key": "p", "operator": "eq", "values": ["x"],
                                                   "values_url": "http://127.0.0.1:9/v.csv"}])},
    "no-values": {"events": _wanted(filters=[{"key": "p", "operator": "eq"}])},
    "lt-two-values": {"events": _wanted(filters=[{"key": "p", "operator": "lt",
                                                  "values": [1, 2]}])},
    "dates-reversed": {"events": {"start_date": END, "end_date": START, "wanted": []}},
    "bad-format": {"format": "xml"},
    "remote-hook": {"hook": "https://me.example/export-ready"},
    "unknown-field": {"limit": 5},
}


@pytest.mark.parametrize("change", list(BAD.values()), ids=list(BAD))
def test_invalid_export_requests_are_400(client: httpx.Client, insider_emulator: Emulator,
                                         receiver: Receiver, change: dict[str, Any]) -> None:
    body = {k: v for k, v in request(receiver, "json", **change).items() if v is not None}
    r = client.post(EXPORT, json=body)
    assert r.status_code == 400
    assert r.json()["error"].endswith(": bad request")
    assert client.post(EXPORT, json=request(receiver, "json")).status_code == 200


def test_dynamic_segments_select_profiles(client: httpx.Client, insider_emulator: Emulator,
                                          receiver: Receiver) -> None:
    seed(client)
    insider_emulator.add_dynamic_segment(
        7, lambda p: p["attributes"]["custom"].get("tier") == "gold")
    body = request(receiver, "json", segment={"segment_id": 7})
    del body["events"]
    assert client.post(EXPORT, json=body).status_code == 200
    rows = [json.loads(x) for x in fetch(insider_emulator, receiver).text.splitlines()]
    assert [r["a_uuid"] for r in rows] == ["u1"]


def test_admin_endpoint_adds_an_every_profile_segment(client: httpx.Client,
                                                      insider_emulator: Emulator,
                                                      receiver: Receiver) -> None:
    seed(client)
    bad = client.post(EXPORT, json=request(receiver, "json", segment={"segment_id": 8}))
    assert bad.status_code == 400 and "not a dynamic segment" in bad.json()["error"]
    assert httpx.post(insider_emulator.url + "/_emulator/dynamic_segments",
                      json={"segment_id": 8}).status_code == 200
    assert client.post(EXPORT, json=request(receiver, "json",
                                            segment={"segment_id": 8})).status_code == 200
    rows = [json.loads(x) for x in fetch(insider_emulator, receiver).text.splitlines()]
    assert sorted({r["a_uuid"] for r in rows}) == ["u1", "u2"]

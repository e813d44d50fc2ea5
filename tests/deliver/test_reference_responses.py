"""The client reads every answer body Insider's reference documents (the samples' text)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from reverse_etl.insider.http import Endpoint
from reverse_etl.insider.http.responses import Kind, judge

SAMPLES: dict[str, list[dict[str, Any]]] = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "insider-reference"
     / "postman_description_samples.json").read_text())
ROW_FAILURES = [b["json"] for b in SAMPLES["Upsert user data"]
                if "data" in b["json"] and b["json"]["data"]["fail"]]


@pytest.mark.parametrize("body", ROW_FAILURES, ids=[
    sorted(b["data"]["fail"]["errors"])[-1] for b in ROW_FAILURES])
def test_documented_row_failures_map_to_the_user(body: dict[str, Any]) -> None:
    # "successful": {} (no user succeeded) and every documented key is users.<i>....
    verdict = judge(Endpoint.UPSERT, 200, orjson.dumps(body), 1)
    assert verdict.kind is Kind.PARTIAL
    assert list(verdict.rejected) == [0]
    for messages in body["data"]["fail"]["errors"].values():
        assert all(m in verdict.rejected[0] for m in messages)


def test_invalid_event_name_example_rejects_the_row() -> None:
    body = {"data": {"successful": {}, "fail": {"count": 1, "errors": {
        "users.0.events.0.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)":
            ["invalid event name: homepageView"]}}}}
    verdict = judge(Endpoint.UPSERT, 200, orjson.dumps(body), 2)
    assert verdict.kind is Kind.PARTIAL
    assert verdict.rejected == {0: "events.0.event_name.*.regexp(^[a-z0-9][a-zA-Z0-9._-]*$): "
                                   "invalid event name: homepageView"}


def test_documented_403_stops_and_500_retries() -> None:
    denied = next(b["json"] for b in SAMPLES["Delete user attribute"]
                  if b["json"].get("message", "").startswith("Access Denied"))
    verdict = judge(Endpoint.UPSERT, 403, orjson.dumps(denied), 1)
    assert verdict.kind is Kind.AUTH and "Access Denied" in verdict.reason
    unknown = next(b["json"] for b in SAMPLES["Delete user attribute"]
                   if "unknown error" in b["json"].get("message", ""))
    assert judge(Endpoint.UPSERT, 500, orjson.dumps(unknown), 1).kind is Kind.RETRY


def test_zero_success_without_failures_is_an_ack() -> None:
    body = {"data": {"successful": {}, "fail": {}}}
    assert judge(Endpoint.UPSERT, 200, orjson.dumps(body), 1).kind is Kind.ACK

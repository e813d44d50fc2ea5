"""The pull's parts on their own: column mapping, the hook receiver, the request body."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from reverse_etl.errors import DeliveryError
from reverse_etl.insider.pull.config import ExportConfig, ExportWebhook
from reverse_etl.insider.pull.hook import HookReceiver
from reverse_etl.insider.pull.load import map_columns
from reverse_etl.insider.pull.request import build_body


def test_custom_columns_lose_the_prefix_unless_the_name_is_taken() -> None:
    # Custom columns first in the file: claims go by kind, not by file order.
    mapping = map_columns(["a_c_email", "iid", "a_uuid", "a_email", "a_c_tier", "a_c_name", "a_name",
                           "a_c_product_id", "e_product_id", "e_name", "e_c_tier", "e_c_coupon",
                           "a_c_", "a_c_Visits", "e_timestamp", "e_event_name", "other"])
    assert mapping.columns == [
        ("a_c_email", "c_email"),  # the default a_email keeps the clean name
        ("iid", "insider_id"), ("a_uuid", "uuid"), ("a_email", "email"), ("a_c_tier", "tier"),
        ("a_c_name", "c_name"), ("a_name", "name"),
        ("a_c_product_id", "c_product_id"),  # a standard event parameter's name is reserved
        ("e_product_id", "product_id"),
        ("e_name", "e_name"),  # the attribute name holds "name": the parameter keeps e_
        ("e_c_tier", "c_tier"),  # the custom attribute tier came first
        ("e_c_coupon", "coupon"), ("a_c_", "c_"), ("a_c_Visits", "Visits"),
        ("e_timestamp", "timestamp"), ("e_event_name", "event_name"), ("other", "other")]
    assert mapping.kept_prefix == ["c_email", "c_name", "c_product_id", "e_name", "c_tier"]
    assert "other" not in mapping.renamed and mapping.renamed["iid"] == "insider_id"


def test_hook_receiver_takes_the_first_valid_url_and_refuses_junk() -> None:
    with HookReceiver(ExportWebhook(wait_seconds=5), "x") as hook:
        assert hook.hook_url == f"http://127.0.0.1:{hook.port}/reverse-etl/export-ready"
        assert httpx.post(hook.hook_url, content=b"not json").status_code == 400
        assert httpx.post(hook.hook_url, json={"link": "http://a"}).status_code == 400
        assert httpx.post(hook.hook_url, json={"url": "ftp://a/b"}).status_code == 400
        assert httpx.post(hook.hook_url + "/other",
                          json={"url": "https://files.example/acme/p/f.csv"}).status_code == 200
        assert hook.wait() == "https://files.example/acme/p/f.csv"


def test_hook_receiver_public_url_and_bounded_wait() -> None:
    config = ExportWebhook(public_url="https://me.example/hook", wait_seconds=0.2)
    with HookReceiver(config, "nightly") as hook:
        assert hook.hook_url == "https://me.example/hook"
        with pytest.raises(DeliveryError, match=r"no hook reached https://me\.example/hook"):
            hook.wait()


def test_busy_port_is_a_config_error() -> None:
    from reverse_etl.errors import ConfigError

    with HookReceiver(ExportWebhook(), "a") as first, \
            pytest.raises(ConfigError, match=rf"cannot listen on 127\.0\.0\.1:{first.port}"):
        HookReceiver(ExportWebhook(port=first.port), "b")


def test_request_body_follows_the_documented_shape() -> None:
    export = ExportConfig.model_validate({
        "name": "carts", "segment_id": 42, "format": "csv",
        "destination": {"table": "t"},
        "events": {"start": "-1d", "end": "now", "wanted": [
            {"name": "item_added_to_cart", "params": ["product_id"],
             "filter": {"key": "product_id", "operator": "eq", "values": ["P1"]}},
            {"name": "purchase",
             "filter": {"key": "sku", "operator": "ne", "values_url": "https://x/v.csv"}}]}})
    now = datetime(2024, 5, 2, tzinfo=UTC)
    assert build_body(export, "http://127.0.0.1:1/h", now) == {
        "segment": {"segment_id": 42},
        "events": {"start_date": 1714521600, "end_date": 1714608000, "wanted": [
            {"event_name": "item_added_to_cart", "params": ["product_id"],
             "filters": [{"key": "product_id", "operator": "eq", "values": ["P1"]}]},
            {"event_name": "purchase", "params": [],
             "filters": [{"key": "sku", "operator": "ne", "values_url": "https://x/v.csv"}]}]},
        "format": "csv", "hook": "http://127.0.0.1:1/h"}

"""Shared helpers of the pull tests: seeding the emulator, export configs, table reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import yaml
from project_factory import ProjectUnderTest, base_config, make_project

from reverse_etl.insider.emulator import Emulator

HEADERS = {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "test-key"}
EXPORT_PATH = "/api/raw/v1/export"
NOW = datetime.now(UTC).replace(microsecond=0)


def ts(hours_ago: float) -> str:
    """An RFC 3339 UTC timestamp ``hours_ago`` hours before the test started."""
    return (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cart(product: str, price: float, hours_ago: float, **custom: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"product_id": product, "unit_price": price}
    if custom:
        params["custom"] = custom
    return {"event_name": "item_added_to_cart", "timestamp": ts(hours_ago), "event_params": params}


def seed(emu: Emulator) -> None:
    """Three profiles with default and custom attributes, cart events and a purchase."""
    users = [
        {"identifiers": {"uuid": "u1", "email": "ada@example.com"},
         "attributes": {"name": "Ada", "city": "London",
                        "custom": {"tier": "gold", "colors": ["red", "blue"], "visits": 7,
                                   "product_id": "P-fav"}},
         "events": [cart("P1", 10.5, 2, coupon="SPRING"), cart("P2", 3.0, 3),
                    cart("P3", 1.0, 24 * 10)]},  # outside the -7d window
        {"identifiers": {"uuid": "u2"},
         "attributes": {"name": "Bob", "custom": {"tier": "silver", "visits": 2}},
         "events": [cart("P1", 12.0, 1),
                    {"event_name": "page_visit", "timestamp": ts(1),
                     "event_params": {"url": "https://shop.example/p1"}}]},
        {"identifiers": {"uuid": "u3", "phone_number": "+447700900123"},
         "attributes": {"surname": "Curie"}},
    ]
    response = httpx.post(f"{emu.url}/api/user/v1/upsert", headers=HEADERS,
                          json={"users": users})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["fail"] == {}, response.text


def export_def(name: str = "activity", fmt: str = "parquet", **change: Any) -> dict[str, Any]:
    """An export of every attribute and the cart events of the last 7 days."""
    export: dict[str, Any] = {
        "name": name,
        "segment_id": 123456789,
        "attributes": ["*"],
        "events": {"start": "-7d", "end": "now", "wanted": [
            {"name": "item_added_to_cart",
             "params": ["product_id", "unit_price", "timestamp", "coupon"]}]},
        "format": fmt,
        "destination": {"table": f"insider_{name}", "mode": "replace"},
        "webhook": {"wait_seconds": 20},
    }
    export.update(change)
    return export


def pull_project(root: Path, emu_url: str, *exports: dict[str, Any]) -> ProjectUnderTest:
    """A project whose syncs.yml holds ``exports`` (default: one ``activity`` export)."""
    project = make_project(root, emu_url, rows=1)
    config = base_config(emu_url)
    config["exports"] = list(exports) or [export_def()]
    project.write_config(config)
    return project


def table_rows(project: ProjectUnderTest, table: str) -> list[dict[str, Any]]:
    """Every row of a warehouse table as dicts."""
    with duckdb.connect(str(project.warehouse)) as con:
        cursor = con.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def norm(value: Any) -> Any:
    """A loaded value in a format-independent shape (CSV has text arrays and timestamps)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(aware.timestamp())
    if isinstance(value, str):
        if value.startswith("["):
            return norm(json.loads(value))
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [norm(v) for v in value]
    return value


def export_requests(emu: Emulator) -> list[dict[str, Any]]:
    """The export requests the emulator received (any status)."""
    return [r for r in emu.requests() if r["path"].split("?")[0] == EXPORT_PATH]


def dump(config: dict[str, Any]) -> str:
    """syncs.yml text of a config dict."""
    return yaml.safe_dump(config, sort_keys=False)

"""The ``ecommerce`` preset of user_events (insider-api.md §9), observed in the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from project_factory import ProjectUnderTest, make_project
from test_sync_engine import UPSERT, run, sent

import reverse_etl
from reverse_etl.errors import ConfigError
from reverse_etl.insider.emulator import Emulator

PRODUCT = "STRUCT(product_id VARCHAR, name VARCHAR, category VARCHAR, price DOUBLE, quantity INTEGER, image_url VARCHAR, url VARCHAR)"
COLUMNS = (f"message_id VARCHAR, user_id VARCHAR, event VARCHAR, timestamp TIMESTAMP, product_id VARCHAR, "
           f"name VARCHAR, category VARCHAR, price DOUBLE, sale_price DOUBLE, quantity INTEGER, currency VARCHAR, "
           f"image_url VARCHAR, url VARCHAR, cart_id VARCHAR, order_id VARCHAR, revenue DOUBLE, tax DOUBLE, "
           f"shipping DOUBLE, discount DOUBLE, coupon VARCHAR, affiliation VARCHAR, page VARCHAR, products {PRODUCT}[]")


def _ts(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d %H:%M:%S")


def _product(pid: str, price: float, quantity: int) -> str:
    return (f"{{'product_id': '{pid}', 'name': 'Item {pid}', 'category': 'Cat {pid}', 'price': {price}, "
            f"'quantity': {quantity}, 'image_url': 'https://img/{pid}.png', 'url': 'https://shop/{pid}'}}")


def _row(message_id: str, user: str, event: str, **values: Any) -> str:
    """One INSERT row; columns not given are NULL."""
    names = [c.split()[0] for c in COLUMNS.split(f" {PRODUCT}")[0].split(", ")]
    given = {"message_id": f"'{message_id}'", "user_id": f"'{user}'", "event": f"'{event}'",
             "timestamp": f"TIMESTAMP '{_ts(1)}'", **values}
    return "(" + ", ".join(str(given.get(n, "NULL")) for n in names) + ")"


ROWS = [
    _row("m1", "u1", "Product Viewed", product_id="'P1'", name="'Phone'", category="'Electronics'",
         price=990.9, sale_price=890.9, currency="'USD'", image_url="'https://img/p1.png'",
         url="'https://shop/p1'", page="'pdp'"),
    _row("m2", "u1", "Product List Viewed", category="'Phones'"),
    _row("m3", "u1", "Product Added", product_id="'P1'", price=10.0, quantity=2, currency="'USD'"),
    _row("m4", "u1", "Product Removed", product_id="'P1'"),
    _row("m5", "u1", "Cart Viewed", cart_id="'C1'", currency="'USD'",
         products=f"[{_product('A', 1.5, 1)}, {_product('B', 2.0, 3)}]"),
    _row("m6", "u1", "Checkout Started", order_id="'O1'", revenue=30.0),
    _row("m7", "u1", "Checkout Step Viewed"),
    _row("m8", "u2", "Order Completed", order_id="'O1'", currency="'EUR'", revenue=25.5, tax=2.5,
         shipping=4.0, discount=1.0, coupon="'SAVE1'", affiliation="'web'",
         products=f"[{_product('A', 1.5, 1)}, {_product('B', 2.0, 3)}, {_product('C', 17.0, 1)}]"),
    _row("m9", "u2", "User Registered"),
    _row("m10", "u2", "Coupon Applied", coupon="'SAVE1'", discount=1.0),
    _row("m11", "u3", "Order Completed", order_id="'O2'", products=f"[{_product('D', 5.0, 1)}]"),
]


def ecommerce_project(tmp_path: Path, emu: Emulator, **event: Any) -> ProjectUnderTest:
    project = make_project(tmp_path / "ec", emu.url, rows=3)
    project.sql(f"CREATE TABLE raw_ecommerce ({COLUMNS}); INSERT INTO raw_ecommerce VALUES {', '.join(ROWS)}")
    project.write_model("ecommerce", "select * from raw_ecommerce")
    with project.config() as config:
        config["syncs"] = [{"name": "shop", "model": "ecommerce", "mode": "user_events",
                            "identifiers": {"uuid": "user_id"},
                            "options": {"skip_invalid_records": True},
                            "event": {"preset": "ecommerce", "params": {"page": "page"}, **event}}]
    return project


def _item(pid: str, price: float, quantity: int, currency: str, group: str) -> dict[str, Any]:
    return {"product_id": pid, "name": f"Item {pid}", "taxonomy": [f"Cat {pid}"], "unit_price": price,
            "unit_sale_price": price, "quantity": quantity, "product_image_url": f"https://img/{pid}.png",
            "url": f"https://shop/{pid}", "currency": currency, "event_group_id": group}


ORDER_CUSTOM = {"revenue": 25.5, "tax": 2.5, "shipping": 4.0, "discount": 1.0, "coupon": "SAVE1", "affiliation": "web"}
EXPECTED: list[tuple[str, str, dict[str, Any]]] = sorted([
    ("u1", "product_detail_page_view", {
        "product_id": "P1", "name": "Phone", "taxonomy": ["Electronics"], "unit_price": 990.9,
        "unit_sale_price": 890.9, "currency": "USD", "product_image_url": "https://img/p1.png",
        "url": "https://shop/p1", "custom": {"page": "pdp"}}),
    ("u1", "listing_page_view", {"taxonomy": ["Phones"]}),
    ("u1", "item_added_to_cart", {"product_id": "P1", "unit_price": 10.0, "unit_sale_price": 10.0,
                                  "quantity": 2, "currency": "USD"}),
    ("u1", "item_removed_from_cart", {"product_id": "P1"}),
    ("u1", "cart_page_view", _item("A", 1.5, 1, "USD", "C1")),
    ("u1", "cart_page_view", _item("B", 2.0, 3, "USD", "C1")),
    # Insider's destination: a checkout is grouped by checkout_id, else order_id.
    ("u1", "checkout_page_view", {"event_group_id": "O1", "custom": {"revenue": 30.0}}),
    ("u1", "checkout_page_view", {}),
    ("u2", "purchase", {**_item("A", 1.5, 1, "EUR", "O1"), "custom": ORDER_CUSTOM}),
    ("u2", "purchase", {**_item("B", 2.0, 3, "EUR", "O1"), "custom": ORDER_CUSTOM}),
    ("u2", "purchase", {**_item("C", 17.0, 1, "EUR", "O1"), "custom": ORDER_CUSTOM}),
    ("u2", "sign_up_confirmation", {}),
    ("u2", "coupon_applied", {"custom": {"coupon": "SAVE1", "discount": 1.0}}),
], key=repr)


def _sent_events(emu: Emulator) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for user in sent(emu, UPSERT):
        for event in user["events"]:
            assert event["timestamp"].endswith("Z")
            out.append((user["identifiers"]["uuid"], event["event_name"], event.get("event_params", {})))
    return sorted(out, key=repr)


def test_ecommerce_events_map_exactly_and_are_sent_once(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = ecommerce_project(tmp_path, insider_emulator)
    first = run(project)
    # One purchase row is invalid (below): the run is partial, the valid events all went.
    assert first.outcome == "partial", first.message
    assert first.message == "1 invalid row(s); see `reverse-etl rejected shop`"
    assert _sent_events(insider_emulator) == EXPECTED
    assert first.counts["acked"] == 13 and first.counts["invalid"] == 1
    assert len(insider_emulator.profile(uuid="u2")["events"]) == 5  # type: ignore[index]
    # The purchase without a currency is rejected, product by product, with a reason.
    _, rows = reverse_etl.rejected_rows(project.root, "shop", environ=project.env)
    assert [r["key"] for r in rows] == ["m11:1"]
    assert "purchase needs event_group_id, currency, unit_sale_price, quantity; missing: currency" in rows[0]["reason"]
    # A rerun sends nothing; a new product in a cart is one new event (its own key).
    insider_emulator.reset()
    assert run(project).counts["to_send"] == 0
    assert insider_emulator.requests() == []
    project.sql(f"UPDATE raw_ecommerce SET products = list_append(products, {_product('Z', 9.0, 1)}) "
                "WHERE message_id = 'm5'")
    third = run(project)
    assert third.counts["acked"] == 1
    assert _sent_events(insider_emulator) == [("u1", "cart_page_view", _item("Z", 9.0, 1, "USD", "C1"))]


def test_ecommerce_without_message_id_keys_by_digest_plus_position(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = ecommerce_project(tmp_path, insider_emulator)
    project.sql("ALTER TABLE raw_ecommerce DROP COLUMN message_id")
    # Two identical products in one order are still two events.
    project.sql(f"UPDATE raw_ecommerce SET products = [{_product('A', 1.5, 1)}, {_product('A', 1.5, 1)}] "
                "WHERE order_id = 'O1' AND event = 'Order Completed'")
    first = run(project)
    assert first.counts["acked"] == 12, first.message
    assert sum(1 for _, name, _ in _sent_events(insider_emulator) if name == "purchase") == 2
    assert run(project).counts["to_send"] == 0


def test_ecommerce_products_as_json_text_and_a_custom_name_column(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "js", insider_emulator.url, rows=1)
    project.write_model("orders", f"""
        select 'o-1' as id, 'u1' as user_id, 'order_completed' as event_type, TIMESTAMP '{_ts(1)}' as sent_at,
               'O9' as order_id, 'TRY' as currency,
               '[{{"product_id": "X", "price": 10, "sale_price": 8, "quantity": 2, "category": ["A", "B"]}}]' as products
    """)
    with project.config() as config:
        config["syncs"] = [{"name": "orders", "model": "orders", "mode": "user_events", "identifiers": {"uuid": "user_id"},
                            "event": {"preset": "ecommerce", "name_column": "event_type", "timestamp": "sent_at",
                                      "key": "id"}}]
    result = run(project)
    assert result.outcome == "success", result.message
    assert _sent_events(insider_emulator) == [("u1", "purchase", {
        "product_id": "X", "unit_price": 10, "unit_sale_price": 8, "quantity": 2, "taxonomy": ["A", "B"],
        "currency": "TRY", "event_group_id": "O9"})]


def test_checkout_per_product_variant_and_page_context_as_insiders_destination(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    # Insider's own Segment destination: Checkout Started → one checkout_page_view per product,
    # event_group_id = checkout_id (else order_id); variant → variant_id; url / referrer /
    # user agent from the properties, else from the page context.
    project = make_project(tmp_path / "co", insider_emulator.url, rows=1)
    product = "STRUCT(product_id VARCHAR, price DOUBLE, quantity INTEGER, variant VARCHAR)"
    project.write_model("shop", f"""
        select * from (values
          ('c-1', 'u1', 'Checkout Started', TIMESTAMP '{_ts(1)}', 'K1', 'O1', 'USD', NULL, NULL,
           'https://shop/checkout', 'https://shop/cart', 'Mozilla/5.0 (X11)',
           [{{'product_id': 'A', 'price': 2.0, 'quantity': 1, 'variant': 'red'}},
            {{'product_id': 'B', 'price': 3.0, 'quantity': 2, 'variant': NULL}}]::{product}[]),
          ('c-2', 'u1', 'Checkout Started', TIMESTAMP '{_ts(1)}', NULL, 'O2', 'USD', NULL, NULL,
           NULL, NULL, NULL, [{{'product_id': 'C', 'price': 1.0, 'quantity': 1, 'variant': 'xl'}}]::{product}[]),
          ('v-1', 'u1', 'Product Viewed', TIMESTAMP '{_ts(1)}', NULL, NULL, NULL, 'P9', 'blue',
           'https://shop/p9', 'https://search.example/?q=p9', 'Mozilla/5.0 (Mac)', NULL)
        ) t(message_id, user_id, event, timestamp, checkout_id, order_id, currency, product_id, variant,
            context_page_url, context_page_referrer, context_user_agent, products)
    """)
    with project.config() as config:
        config["syncs"] = [{"name": "shop", "model": "shop", "mode": "user_events",
                            "identifiers": {"uuid": "user_id"}, "event": {"preset": "ecommerce"}}]
    result = run(project)
    assert result.outcome == "success", result.message
    page = {"referrer": "https://shop/cart", "user_agent": "Mozilla/5.0 (X11)"}
    assert _sent_events(insider_emulator) == sorted([
        ("u1", "checkout_page_view", {"product_id": "A", "unit_price": 2.0, "unit_sale_price": 2.0,
                                      "quantity": 1, "variant_id": "red", "currency": "USD",
                                      "event_group_id": "K1", **page}),
        ("u1", "checkout_page_view", {"product_id": "B", "unit_price": 3.0, "unit_sale_price": 3.0,
                                      "quantity": 2, "currency": "USD", "event_group_id": "K1", **page}),
        ("u1", "checkout_page_view", {"product_id": "C", "unit_price": 1.0, "unit_sale_price": 1.0,
                                      "quantity": 1, "variant_id": "xl", "currency": "USD",
                                      "event_group_id": "O2"}),
        ("u1", "product_detail_page_view", {"product_id": "P9", "variant_id": "blue", "url": "https://shop/p9",
                                            "referrer": "https://search.example/?q=p9",
                                            "user_agent": "Mozilla/5.0 (Mac)"}),
    ], key=repr)
    # The emulator stored them as Insider would: three checkout events, one product view.
    stored = insider_emulator.profile(uuid="u1")["events"]  # type: ignore[index]
    assert sorted(e["event_name"] for e in stored) == ["checkout_page_view"] * 3 + ["product_detail_page_view"]


def test_ecommerce_preset_refuses_a_constant_name_and_a_missing_name_column(tmp_path: Path,
                                                                            insider_emulator: Emulator) -> None:
    project = ecommerce_project(tmp_path, insider_emulator, name="purchase")
    with pytest.raises(ConfigError, match=r"remove event\.name"):
        reverse_etl.validate(project.root, environ=project.env)
    project2 = ecommerce_project(tmp_path / "b", insider_emulator, name_column="kind")
    result = run(project2)
    assert result.outcome == "failed" and result.failure == "config" and result.exit_code == 1
    assert "event.name_column 'kind'" in (result.message or "")
    assert insider_emulator.requests() == []

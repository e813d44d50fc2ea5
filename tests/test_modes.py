"""Every user_attributes operation and user_events, observed in the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from project_factory import ProjectUnderTest, make_project
from test_sync_engine import UPSERT, run, sent

import reverse_etl
from reverse_etl.insider.emulator import Emulator


def project_with(tmp_path: Path, emu: Emulator, name: str, model_sql: str, sync: dict[str, Any],
                 rows: int = 5) -> ProjectUnderTest:
    """A project whose first sync loads the profiles and a second sync under test."""
    project = make_project(tmp_path / name, emu.url, rows=rows)
    project.write_model("under_test", model_sql)
    with project.config() as config:
        config["syncs"].append({"name": "under_test", "model": "under_test", **sync})
    return project


def run_one(project: ProjectUnderTest, name: str) -> reverse_etl.SyncResult:
    result = reverse_etl.run(project.root, select=[name], environ=project.env)
    return result.syncs[0]


def test_append_arrays_option_appends(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=2, options={"append_arrays": True})
    run(project)
    project.sql("UPDATE raw_customers SET tags = ['new'] WHERE customer_id = 'u1'")
    run(project)
    assert insider_emulator.profile(uuid="u1")["attributes"]["custom"]["tags"] == ["t1", "new"]  # type: ignore[index]
    assert "not_append" not in sent(insider_emulator, UPSERT)[-1]


def test_replace_attributes_always_replaces_arrays(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=2, operation="replace_attributes",
                           options={"append_arrays": True})
    run(project)
    project.sql("UPDATE raw_customers SET tags = ['only'] WHERE customer_id = 'u1'")
    run(project)
    assert insider_emulator.profile(uuid="u1")["attributes"]["custom"]["tags"] == ["only"]  # type: ignore[index]


def test_delete_attributes_whole_and_partial(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = project_with(tmp_path, insider_emulator, "p", """
        select 'u1' as customer_id, true as drop_city, ['t1'] as drop_tags
        union all select 'u2', false, []::VARCHAR[]
    """, {"identifiers": {"uuid": "customer_id"}, "operation": "delete_attributes",
          "attributes": {"city": "drop_city", "tags": "drop_tags"}})
    project.sql("UPDATE raw_customers SET tags = ['t1', 'keep'] WHERE customer_id = 'u1'")
    assert run_one(project, "customers").outcome == "success"
    result = run_one(project, "under_test")
    assert result.outcome == "success" and result.counts["acked"] == 1
    u1 = insider_emulator.profile(uuid="u1")
    assert u1 is not None and "city" not in u1["attributes"]
    assert u1["attributes"]["custom"]["tags"] == ["keep"]
    assert insider_emulator.profile(uuid="u2")["attributes"]["city"] == "City2"  # type: ignore[index]
    bodies = sent(insider_emulator, "/api/user/v1/attribute/delete")
    assert bodies == [{"identifiers": {"uuid": "u1"}, "whole": ["city"], "custom": {"partial": {"tags": ["t1"]}}}]
    assert run_one(project, "under_test").counts["to_send"] == 0  # done once, not repeated


def test_delete_pii_anonymizes_and_unknown_user_is_a_result(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = project_with(tmp_path, insider_emulator, "p",
                           "select 'u1' as customer_id union all select 'nobody'",
                           {"identifiers": {"uuid": "customer_id"}, "operation": "delete_pii"})
    project.sql("UPDATE raw_customers SET first_name = 'Ada' WHERE customer_id = 'u1'")
    run_one(project, "customers")
    result = run_one(project, "under_test")
    assert result.outcome == "success", result.message
    assert result.counts["acked"] == 2  # 404 "no such user" is an answer, not a failure
    profiles = insider_emulator.profiles()
    assert len(profiles) == 5  # anonymized, not deleted
    assert not [p for p in profiles if p["attributes"].get("name") == "Ada"]
    assert insider_emulator.profile(uuid="u2")["attributes"]["name"] == "Name2"  # type: ignore[index]


def test_delete_users_removes_profiles(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = project_with(tmp_path, insider_emulator, "p", "select 'u1' as customer_id union all select 'u3'",
                           {"identifiers": {"uuid": "customer_id"}, "operation": "delete_users"})
    run_one(project, "customers")
    assert run_one(project, "under_test").counts["acked"] == 2
    assert insider_emulator.profile(uuid="u1") is None and insider_emulator.profile(uuid="u3") is None
    assert len(insider_emulator.profiles()) == 3


def test_delete_identifiers_never_the_sole_one(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = project_with(tmp_path, insider_emulator, "p",
                           "select 'user1@example.com' as email union all select 'solo@example.com'",
                           {"identifiers": {"email": "email"}, "operation": "delete_identifiers"})
    run_one(project, "customers")
    import httpx
    httpx.post(f"{insider_emulator.url}/api/user/v1/upsert",
               headers={"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "test-key"},
               json={"users": [{"identifiers": {"email": "solo@example.com"}, "attributes": {"name": "S"}}]})
    result = run_one(project, "under_test")
    assert result.counts["acked"] == 1 and result.counts["rejected"] == 1
    assert insider_emulator.profile(uuid="u1")["identifiers"].get("email") is None  # type: ignore[index]
    total, rows = reverse_etl.rejected_rows(project.root, "under_test", environ=project.env)
    assert total == 1 and "sole identifier" in rows[0]["reason"]


def test_trigger_data_stream_false_sends_skip_hook(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=2,
                           options={"trigger_data_stream": False})
    run(project)
    bodies = [e["body"] for e in insider_emulator.requests() if e["path"] == UPSERT]
    assert bodies and all(b.get("skip_hook") is True for b in bodies)


def test_text_arrays_are_parsed_and_bad_arrays_rejected(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=4)
    project.write_model("customers", """
        select customer_id, email, first_name, city, lifetime_value,
               case customer_id when 'u1' then '[''a'', ''b'']' when 'u2' then '[1, 2.5]'
                                when 'u3' then '[1, "x"]' else '[{"k": 1}]' end as tags
        from raw_customers
    """)
    result = run(project)
    assert result.counts["acked"] == 2 and result.counts["invalid"] == 2
    assert insider_emulator.profile(uuid="u1")["attributes"]["custom"]["tags"] == ["a", "b"]  # type: ignore[index]
    assert insider_emulator.profile(uuid="u2")["attributes"]["custom"]["tags"] == [1, 2.5]  # type: ignore[index]
    _, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    assert {r["key"] for r in rows} == {"u3", "u4"}
    assert all("only strings or only numbers" in r["reason"] for r in rows)


def test_custom_attribute_cap_refused_before_sending(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=1,
                           attributes={f"attr_{i}": "city" for i in range(256)})
    with pytest.raises(reverse_etl.ConfigError, match="at most 255"):
        reverse_etl.validate(project.root, environ=project.env)
    assert run(project).outcome == "failed"
    assert insider_emulator.requests() == []


# ---------------------------------------------------------------- events
def _ts(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d %H:%M:%S")


def events_project(tmp_path: Path, emu: Emulator, event: dict[str, Any]) -> ProjectUnderTest:
    project = make_project(tmp_path / "ev", emu.url, rows=3)
    project.sql(f"""
        CREATE TABLE raw_events AS SELECT * FROM (VALUES
          ('e1', 'u1', 'page_viewed', TIMESTAMP '{_ts(1)}', 'P1', 'home', 9.5),
          ('e2', 'u1', 'page_viewed', TIMESTAMP '{_ts(2)}', 'P2', 'shop', 1.0),
          ('e3', 'u2', 'signed_in',   TIMESTAMP '{_ts(3)}', NULL, NULL, NULL),
          ('e4', 'u3', 'page_viewed', TIMESTAMP '{_ts(400)}', 'P3', 'old', 2.0)
        ) t(event_id, customer_id, event_name, occurred_at, product_id, page, score)
    """)
    project.write_model("events", "select * from raw_events")
    with project.config() as config:
        config["syncs"] = [{"name": "events", "model": "events", "mode": "user_events",
                            "identifiers": {"uuid": "customer_id"}, "event": event}]
    return project


def test_events_sent_once_old_ones_rejected(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = events_project(tmp_path, insider_emulator, {
        "name_column": "event_name", "timestamp": "occurred_at", "key": "event_id",
        "params": {"product_id": "product_id", "page": "page", "score": "score"}})
    first = run(project)
    assert first.counts["acked"] == 3 and first.counts["invalid"] == 1
    users = sent(insider_emulator, UPSERT)
    e1 = next(u for u in users if u["events"][0]["event_params"].get("product_id") == "P1")
    assert e1["identifiers"] == {"uuid": "u1"}
    assert e1["events"][0]["event_name"] == "page_viewed"
    assert e1["events"][0]["event_params"] == {"product_id": "P1", "custom": {"page": "home", "score": 9.5}}
    assert e1["events"][0]["timestamp"].endswith("Z")
    assert len(insider_emulator.profile(uuid="u1")["events"]) == 2  # type: ignore[index]
    _, rows = reverse_etl.rejected_rows(project.root, "events", environ=project.env)
    assert rows[0]["key"] == "e4" and "older than the 90-day event TTL" in rows[0]["reason"]
    # A rerun never resends an event; a new one is sent alone, even after old ones leave the model.
    insider_emulator.reset()
    project.sql(f"DELETE FROM raw_events WHERE event_id = 'e2'; INSERT INTO raw_events VALUES "
                f"('e5', 'u2', 'page_viewed', TIMESTAMP '{_ts(0.5)}', 'P9', 'cart', 3.0)")
    second = run(project)
    assert second.counts["acked"] == 1
    assert [u["events"][0]["event_params"]["product_id"] for u in sent(insider_emulator, UPSERT)] == ["P9"]
    project.sql(f"INSERT INTO raw_events VALUES ('e2', 'u1', 'page_viewed', TIMESTAMP '{_ts(2)}', 'P2', 'shop', 1.0)")
    assert run(project).counts["to_send"] == 0


def test_an_event_at_the_same_moment_as_a_sent_one_is_still_sent(tmp_path: Path, insider_emulator: Emulator) -> None:
    # An event's digest covers its timestamp only: a new event sharing a sent one's
    # timestamp has that event's digest, and is new only by its key.
    project = events_project(tmp_path, insider_emulator, {
        "name_column": "event_name", "timestamp": "occurred_at", "key": "event_id",
        "params": {"product_id": "product_id"}})
    assert run(project).counts["acked"] == 3
    insider_emulator.reset()
    project.sql("INSERT INTO raw_events SELECT 'e9', 'u2', 'page_viewed', occurred_at, 'P7', 'home', 1.0 "
                "FROM raw_events WHERE event_id = 'e1'")
    second = run(project)
    assert second.counts["added"] == 1 and second.counts["acked"] == 1
    assert [u["events"][0]["event_params"]["product_id"] for u in sent(insider_emulator, UPSERT)] == ["P7"]


def test_events_without_key_use_a_digest_and_purchase_needs_its_params(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = events_project(tmp_path, insider_emulator, {
        "name": "purchase", "timestamp": "occurred_at", "params": {"product_id": "product_id"}})
    result = run(project)
    assert result.counts["acked"] == 0 and result.counts["invalid"] == 4
    _, rows = reverse_etl.rejected_rows(project.root, "events", environ=project.env)
    assert any("purchase needs event_group_id, currency, unit_sale_price, quantity; missing: "
               "event_group_id, currency, unit_sale_price, quantity" in r["reason"] for r in rows)
    project2 = events_project(tmp_path / "b", insider_emulator, {
        "name": "page_viewed", "timestamp": "occurred_at", "params": {"product_id": "product_id"}})
    assert run(project2).counts["acked"] == 3
    assert run(project2).counts["to_send"] == 0  # the digest key is stable


def test_custom_attribute_cap_is_per_tenant_across_syncs(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=1,
                           attributes={f"a_{i}": "city" for i in range(200)})
    with project.config() as config:
        config["syncs"].append({"name": "more", "model": "customers", "identifiers": {"uuid": "customer_id"},
                                "attributes": {f"b_{i}": "city" for i in range(100)}})
    with pytest.raises(reverse_etl.ConfigError, match="together write 300 custom attributes"):
        reverse_etl.validate(project.root, environ=project.env)
    result = reverse_etl.run(project.root, select=["customers"], environ=project.env)
    assert result.exit_code == 1 and insider_emulator.requests() == []


def test_editing_an_events_model_or_params_resends_nothing(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = events_project(tmp_path, insider_emulator, {
        "name_column": "event_name", "timestamp": "occurred_at", "key": "event_id",
        "params": {"product_id": "product_id"}})
    assert run(project).counts["acked"] == 3
    project.write_model("events", "select *, 'web' as channel from raw_events where true")
    with project.config() as config:
        config["syncs"][0]["event"]["params"]["channel"] = "channel"
    planned = reverse_etl.plan(project.root, environ=project.env).syncs[0]
    assert planned.full_resend_reason is None and planned.counts["to_send"] == 0
    insider_emulator.reset()
    assert run(project).counts["to_send"] == 0 and insider_emulator.requests() == []

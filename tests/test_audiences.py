"""Computed audiences: membership transitions per delivery style, observed in the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from project_factory import ProjectUnderTest, make_project
from test_sync_engine import ATTR_DELETE, UPSERT, run, sent

import reverse_etl
from reverse_etl.errors import ConfigError
from reverse_etl.insider.emulator import Emulator

HIGH = {"name": "High Value Customers", "when": "lifetime_value > 20"}
CHURN = {"name": "Churn Risk", "model": "churn_members"}


def audience_project(tmp_path: Path, emu: Emulator, **sync: Any) -> ProjectUnderTest:
    """Three customers; u2 and u3 are high value (ltv 21, 31.5); churn members from a table."""
    project = make_project(tmp_path / "p", emu.url, rows=3, **{"audiences": [HIGH, CHURN], **sync})
    project.sql("CREATE TABLE churn AS SELECT 'u1' AS customer_id")
    project.write_model("churn_members", "select customer_id from churn")
    return project


def audience_requests(log: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(path, user object) of every audience write, by path and user (attribute upserts left out)."""
    out = []
    for entry in log:
        path = entry["path"]
        for user in (entry["body"] or {}).get("users", []):
            custom = user.get("attributes", {}).get("custom", {})
            if path == UPSERT and ("name" in user.get("attributes", {}) or "ltv" in custom):
                continue  # the ordinary attribute upsert
            out.append((path, user))
    return sorted(out, key=lambda r: (r[0], r[1]["identifiers"]["uuid"]))


def three_runs(project: ProjectUnderTest, emu: Emulator) -> list[list[tuple[str, dict[str, Any]]]]:
    """Run 1; u1 becomes high value and leaves churn; u3 leaves the model. Then run 3 unchanged."""
    seen: list[list[tuple[str, dict[str, Any]]]] = []
    for step in range(3):
        if step == 1:
            project.sql("UPDATE raw_customers SET lifetime_value = 99 WHERE customer_id = 'u1'")
            project.sql("DELETE FROM churn")
            project.sql("DELETE FROM raw_customers WHERE customer_id = 'u3'")
        before = len(emu.requests())
        result = run(project)
        assert result.outcome == "success", result.message
        seen.append(audience_requests(emu.requests()[before:]))
    return seen


def ids(uuid: str) -> dict[str, str]:
    return {"uuid": uuid, "email": f"user{uuid[1:]}@example.com"}


def test_boolean_audiences_flip_true_and_false(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = audience_project(tmp_path, insider_emulator)
    first, second, third = three_runs(project, insider_emulator)
    assert first == [  # members only
        (UPSERT, {"identifiers": ids("u1"), "attributes": {"custom": {"churn_risk": True}}}),
        (UPSERT, {"identifiers": ids("u2"), "attributes": {"custom": {"high_value_customers": True}}}),
        (UPSERT, {"identifiers": ids("u3"), "attributes": {"custom": {"high_value_customers": True}}}),
    ]
    assert second == [  # u1 enters one and exits the other; u3 left the model while a member
        (UPSERT, {"identifiers": ids("u1"), "attributes": {"custom": {"high_value_customers": True,
                                                                     "churn_risk": False}}}),
        (UPSERT, {"identifiers": ids("u3"), "attributes": {"custom": {"high_value_customers": False}}}),
    ]
    assert third == []  # unchanged audiences send nothing
    u1 = insider_emulator.profile(uuid="u1")["attributes"]["custom"]  # type: ignore[index]
    assert u1["high_value_customers"] is True and u1["churn_risk"] is False
    assert insider_emulator.profile(uuid="u3")["attributes"]["custom"]["high_value_customers"] is False  # type: ignore[index]
    assert "churn_risk" not in insider_emulator.profile(uuid="u2")["attributes"]["custom"]  # type: ignore[index]


def test_array_audiences_append_and_partially_delete(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = audience_project(tmp_path, insider_emulator, audience_delivery="array")
    first, second, third = three_runs(project, insider_emulator)
    assert first == [
        (UPSERT, {"identifiers": ids("u1"), "attributes": {"custom": {"audiences": ["Churn Risk"]}}}),
        (UPSERT, {"identifiers": ids("u2"), "attributes": {"custom": {"audiences": ["High Value Customers"]}}}),
        (UPSERT, {"identifiers": ids("u3"), "attributes": {"custom": {"audiences": ["High Value Customers"]}}}),
    ]
    assert second == [
        (ATTR_DELETE, {"identifiers": ids("u1"), "custom": {"partial": {"audiences": ["Churn Risk"]}}}),
        (ATTR_DELETE, {"identifiers": ids("u3"), "custom": {"partial": {"audiences": ["High Value Customers"]}}}),
        (UPSERT, {"identifiers": ids("u1"), "attributes": {"custom": {"audiences": ["High Value Customers"]}}}),
    ]
    assert third == []
    # The attribute upsert of u1 (ltv changed) carried not_append: true, yet the
    # audience array survived: it is never in that user object.
    assert any(u.get("not_append") for u in sent(insider_emulator, UPSERT) if u["identifiers"]["uuid"] == "u1")
    profile = insider_emulator.profile
    assert profile(uuid="u1")["attributes"]["custom"]["audiences"] == ["High Value Customers"]  # type: ignore[index]
    assert profile(uuid="u2")["attributes"]["custom"]["audiences"] == ["High Value Customers"]  # type: ignore[index]
    assert profile(uuid="u3")["attributes"]["custom"]["audiences"] == []  # type: ignore[index]


def test_td_user_audiences_append_and_remove(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = audience_project(tmp_path, insider_emulator, audience_delivery="td_user_audiences",
                               audiences=[{**HIGH, "id": 11}, {**CHURN, "id": 22}])
    first, second, third = three_runs(project, insider_emulator)

    def td(i: list[int], n: list[str]) -> dict[str, Any]:
        return {"td_audience_id": i, "td_audience_name": n}

    assert first == [
        (UPSERT, {"identifiers": ids("u1"), "attributes": {"custom": td([22], ["Churn Risk"])}}),
        (UPSERT, {"identifiers": ids("u2"), "attributes": {"custom": td([11], ["High Value Customers"])}}),
        (UPSERT, {"identifiers": ids("u3"), "attributes": {"custom": td([11], ["High Value Customers"])}}),
    ]
    assert second == [
        (ATTR_DELETE, {"identifiers": ids("u1"), "custom": {"partial": td([22], ["Churn Risk"])}}),
        (ATTR_DELETE, {"identifiers": ids("u3"), "custom": {"partial": td([11], ["High Value Customers"])}}),
        (UPSERT, {"identifiers": ids("u1"), "attributes": {"custom": td([11], ["High Value Customers"])}}),
    ]
    assert third == []
    u1 = insider_emulator.profile(uuid="u1")["attributes"]["custom"]  # type: ignore[index]
    assert u1["td_audience_id"] == [11] and u1["td_audience_name"] == ["High Value Customers"]


def test_removed_member_exits_then_is_forgotten(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = audience_project(tmp_path, insider_emulator, on_removed="clear_attributes")
    run(project)
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u3'")
    run(project)
    assert insider_emulator.profile(uuid="u3")["attributes"]["custom"]["high_value_customers"] is False  # type: ignore[index]
    assert not sent(insider_emulator, ATTR_DELETE)  # the exit first; on_removed follows next run
    result = run(project)
    assert [u["identifiers"]["uuid"] for u in sent(insider_emulator, ATTR_DELETE)] == ["u3"]
    assert result.counts["snapshot_rows"] == 2
    assert run(project).counts["to_send"] == 0


@pytest.mark.parametrize(("sync", "message"), [
    ({"audiences": [{"name": "1st buyers", "when": "true"}]}, "snake_case"),
    ({"audiences": [{"name": "VIP", "when": "true", "model": "m"}]}, "exactly one of"),
    ({"audiences": [{"name": "VIP", "when": "true"}], "audience_delivery": "td_user_audiences"}, "numeric `id:`"),
    ({"audiences": [{"name": "Tags", "when": "true"}]}, "also a mapped attribute"),
    ({"audiences": [{"name": "VIP", "when": "true"}], "operation": "delete_attributes"}, "audiences belong"),
])
def test_audience_config_errors(tmp_path: Path, sync: dict[str, Any], message: str) -> None:
    project = make_project(tmp_path / "p", **sync)
    with pytest.raises(ConfigError, match=message):
        reverse_etl.validate(project.root, environ=project.env)


# ------------------------------------------------------- mode: user_audiences
def td_project(tmp_path: Path, emu: Emulator, operation: str, name: str) -> ProjectUnderTest:
    project = make_project(tmp_path / name, emu.url, rows=2)
    project.sql("CREATE TABLE td AS SELECT * FROM (VALUES ('u1', [11, 22], ['VIP', 'Churn'])) t(customer_id, ids, names)")
    project.write_model("td_members", "select * from td")
    with project.config() as config:
        config["syncs"].append({"name": "td", "model": "td_members", "mode": "user_audiences", "operation": operation,
                                "identifiers": {"uuid": "customer_id"},
                                "attributes": {"td_audience_id": "ids", "td_audience_name": "names"}})
    reverse_etl.run(project.root, select=["customers"], environ=project.env)
    return project


def run_td(project: ProjectUnderTest) -> reverse_etl.SyncResult:
    return reverse_etl.run(project.root, select=["td"], environ=project.env).syncs[0]


def test_user_audiences_append_replace_remove(tmp_path: Path, insider_emulator: Emulator) -> None:
    append = td_project(tmp_path, insider_emulator, "append", "a")
    assert run_td(append).counts["acked"] == 1
    custom = insider_emulator.profile(uuid="u1")["attributes"]["custom"]  # type: ignore[index]
    assert custom["td_audience_id"] == [11, 22] and custom["td_audience_name"] == ["VIP", "Churn"]
    assert run_td(append).counts["to_send"] == 0  # sent once
    append.sql("UPDATE td SET ids = [33], names = ['New']")
    run_td(append)
    custom = insider_emulator.profile(uuid="u1")["attributes"]["custom"]  # type: ignore[index]
    assert custom["td_audience_id"] == [11, 22, 33]

    replace = td_project(tmp_path, insider_emulator, "replace", "r")
    replace.sql("UPDATE td SET ids = [44], names = ['Only']")
    run_td(replace)
    custom = insider_emulator.profile(uuid="u1")["attributes"]["custom"]  # type: ignore[index]
    assert custom["td_audience_id"] == [44] and custom["td_audience_name"] == ["Only"]

    remove = td_project(tmp_path, insider_emulator, "remove", "x")
    remove.sql("UPDATE td SET ids = [44], names = ['Only']")
    assert run_td(remove).counts["acked"] == 1
    custom = insider_emulator.profile(uuid="u1")["attributes"]["custom"]  # type: ignore[index]
    assert custom["td_audience_id"] == [] and custom["td_audience_name"] == []
    bodies = sent(insider_emulator, ATTR_DELETE)
    assert bodies[-1] == {"identifiers": {"uuid": "u1"},
                          "custom": {"partial": {"td_audience_id": [44], "td_audience_name": ["Only"]}}}


def test_user_audiences_rejects_unequal_or_non_numeric_arrays(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = td_project(tmp_path, insider_emulator, "append", "bad")
    project.sql("CREATE OR REPLACE TABLE td AS SELECT * FROM (VALUES ('u1', ['1'], ['A', 'B']), "
                "('u2', ['x'], ['X'])) t(customer_id, ids, names)")
    result = run_td(project)
    assert result.counts["invalid"] == 2 and result.counts["acked"] == 0
    _, rows = reverse_etl.rejected_rows(project.root, "td", environ=project.env)
    reasons = {r["key"]: r["reason"] for r in rows}
    assert "equal length" in reasons["u1"] and "must hold numbers" in reasons["u2"]

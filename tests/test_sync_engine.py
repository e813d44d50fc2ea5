"""The core engine end to end: DuckDB model → diff → emulator over HTTP → snapshot.

Each test asserts what a user would observe: what Insider (the emulator) holds,
what the next run sends, what `rejected` and `history` show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from project_factory import ProjectUnderTest, make_project

import reverse_etl
from reverse_etl.insider.emulator import Emulator

UPSERT = "/api/user/v1/upsert"
ATTR_DELETE = "/api/user/v1/attribute/delete"
USER_DELETE = "/api/user/v1/delete"


def sent(emu: Emulator, path: str, status: int = 200) -> list[dict[str, Any]]:
    """Every user object (or body) Insider answered with ``status`` on ``path``."""
    out: list[dict[str, Any]] = []
    for entry in emu.requests():
        if entry["path"].split("?")[0] != path or entry["status"] != status:
            continue
        body = entry["body"]
        out.extend(body.get("users", [body]))
    return out


def run(project: ProjectUnderTest, **kwargs: Any) -> reverse_etl.SyncResult:
    result = reverse_etl.run(project.root, environ=project.env, **kwargs)
    assert len(result.syncs) == 1
    return result.syncs[0]


@pytest.fixture()
def project(tmp_path: Path, insider_emulator: Emulator) -> ProjectUnderTest:
    return make_project(tmp_path / "proj", insider_emulator.url, rows=50)


def test_first_run_sends_all_and_insider_holds_them(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    result = run(project)
    assert result.outcome == "success", result.message
    assert result.counts["added"] == 50 and result.counts["acked"] == 50
    assert result.full_resend_reason == "first run"
    assert len(insider_emulator.profiles()) == 50
    profile = insider_emulator.profile(uuid="u7")
    assert profile is not None
    assert profile["identifiers"]["email"] == "user7@example.com"
    assert profile["attributes"]["name"] == "Name7"
    assert profile["attributes"]["city"] == "City0"
    assert profile["attributes"]["custom"]["ltv"] == 73.5
    assert profile["attributes"]["custom"]["tags"] == ["t1"]


def test_unchanged_second_run_sends_nothing(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    run(project)
    before = len(insider_emulator.requests())
    second = run(project)
    assert second.outcome == "success"
    assert second.counts["unchanged"] == 50
    assert second.counts["to_send"] == 0 and second.requests == 0
    assert len(insider_emulator.requests()) == before


def test_one_changed_row_is_sent_alone_with_only_its_change(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    run(project)
    insider_emulator.reset()
    project.sql("UPDATE raw_customers SET city = 'Paris' WHERE customer_id = 'u3'")
    result = run(project)
    assert result.counts["changed"] == 1 and result.counts["acked"] == 1
    users = sent(insider_emulator, UPSERT)
    assert users == [{"identifiers": {"uuid": "u3", "email": "user3@example.com"},
                      "attributes": {"city": "Paris"}, "not_append": True}]
    assert insider_emulator.profile(uuid="u3")["attributes"]["city"] == "Paris"  # type: ignore[index]


def test_array_change_replaces_not_appends(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    run(project)
    project.sql("UPDATE raw_customers SET tags = ['x', 'y'] WHERE customer_id = 'u4'")
    run(project)
    assert insider_emulator.profile(uuid="u4")["attributes"]["custom"]["tags"] == ["x", "y"]  # type: ignore[index]


def test_value_becoming_null_is_deleted_at_insider(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    run(project)
    project.sql("UPDATE raw_customers SET city = NULL, lifetime_value = NULL WHERE customer_id = 'u5'")
    result = run(project)
    assert result.outcome == "success"
    bodies = sent(insider_emulator, ATTR_DELETE)
    assert bodies == [{"identifiers": {"uuid": "u5", "email": "user5@example.com"},
                       "whole": ["city"], "custom": {"whole": ["ltv"]}}]
    attributes = insider_emulator.profile(uuid="u5")["attributes"]  # type: ignore[index]
    assert "city" not in attributes and "ltv" not in attributes.get("custom", {})
    assert run(project).counts["to_send"] == 0


@pytest.mark.parametrize("on_removed", ["ignore", "clear_attributes", "delete_user"])
def test_removed_rows_follow_on_removed(tmp_path: Path, insider_emulator: Emulator, on_removed: str) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=5, on_removed=on_removed)
    run(project)
    insider_emulator.requests()
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u2'")
    result = run(project)
    assert result.counts["removed"] == 1
    profile = insider_emulator.profile(uuid="u2")
    if on_removed == "ignore":
        assert result.requests == 0
        assert profile is not None and profile["attributes"]["name"] == "Name2"
    elif on_removed == "clear_attributes":
        assert profile is not None
        assert "name" not in profile["attributes"] and not profile["attributes"].get("custom")
    else:
        assert profile is None
    assert len(insider_emulator.profiles()) == (4 if on_removed == "delete_user" else 5)
    # The removal is committed: nothing more is sent, and a returning row is new again.
    assert run(project).counts["to_send"] == 0
    project.sql("INSERT INTO raw_customers VALUES ('u2', 'user2@example.com', 'Back', 'C', 1.0, ['t'])")
    back = run(project)
    assert back.counts["added"] == 1 and insider_emulator.profile(uuid="u2")["attributes"]["name"] == "Back"  # type: ignore[index]


def test_rejected_row_is_kept_retried_and_listed(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    insider_emulator.set_faults(reject=["u9"])
    first = run(project)
    assert first.outcome == "partial"
    assert first.counts["acked"] == 49 and first.counts["rejected"] == 1
    assert insider_emulator.profile(uuid="u9") is None
    total, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    assert total == 1 and rows[0]["key"] == "u9" and rows[0]["kind"] == "insider"
    assert rows[0]["reason"]  # Insider's reason is kept
    # Next run retries it (and only it); once Insider accepts it, it leaves `rejected`.
    insider_emulator.set_faults({})
    insider_emulator.reset()
    second = run(project)
    assert second.outcome == "success" and second.counts["acked"] == 1
    assert [u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT)] == ["u9"]
    assert reverse_etl.rejected_rows(project.root, "customers", environ=project.env)[0] == 0


def test_rejected_row_is_held_back_after_max_attempts(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3, max_attempts=2)
    insider_emulator.set_faults(reject=["u1"])
    assert run(project).counts["rejected"] == 1
    assert run(project).counts["rejected"] == 1
    third = run(project)
    assert third.counts["held_back"] == 1 and third.requests == 0
    total, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    assert total == 1 and rows[0]["attempts"] == 2
    # A change to the row makes it eligible again.
    insider_emulator.set_faults({})
    project.sql("UPDATE raw_customers SET city = 'Rome' WHERE customer_id = 'u1'")
    assert run(project).counts["acked"] == 1
    assert insider_emulator.profile(uuid="u1")["attributes"]["city"] == "Rome"  # type: ignore[index]


def test_invalid_rows_are_rejected_with_reasons_and_not_sent(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    project.sql("UPDATE raw_customers SET email = 'not-an-email' WHERE customer_id = 'u1'")
    project.sql("UPDATE raw_customers SET customer_id = 'u2' WHERE customer_id = 'u3'")
    project.sql("UPDATE raw_customers SET customer_id = NULL WHERE customer_id = 'u4'")
    result = run(project)
    assert result.counts["invalid"] == 4  # bad email, two rows sharing u2, a null key
    assert result.counts["acked"] == 46
    sent_ids = {u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT)}
    assert not sent_ids & {"u1", "u2", "u3"}
    total, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    reasons = {row["key"]: row["reason"] for row in rows}
    assert "not a valid email address: not-an-email" in reasons["u1"]
    assert "duplicate key" in reasons["u2"] and "2 rows" in reasons["u2"]
    assert "null key" in reasons[None]
    assert total == 3


def test_halt_mode_sends_nothing_when_a_row_is_invalid(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=5,
                           options={"skip_invalid_records": False})
    project.sql("UPDATE raw_customers SET email = 'broken' WHERE customer_id = 'u3'")
    result = run(project)
    assert result.outcome == "failed"
    assert "u3" in (result.message or "") and "not a valid email" in (result.message or "")
    assert insider_emulator.requests() == []


def test_mapping_change_means_full_resend_announced_by_plan(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    run(project)
    text = (project.root / "syncs.yml").read_text().replace("city: city", "town: city")
    project.write_config(text)
    planned = reverse_etl.plan(project.root, environ=project.env).syncs[0]
    assert planned.full_resend_reason == "the sync's mapping or model changed since the last run"
    assert planned.counts["to_send"] == 50
    assert planned.samples["upsert (added)"][0].startswith('{"identifiers":')
    insider_emulator.reset()
    assert insider_emulator.requests() == []  # plan sent nothing
    result = run(project)
    assert result.counts["acked"] == 50
    assert insider_emulator.profile(uuid="u1")["attributes"]["custom"]["town"] == "City1"  # type: ignore[index]


def test_full_refresh_and_reset_resend_everything(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    run(project)
    assert run(project, full_refresh=True).counts["acked"] == 50
    assert reverse_etl.reset(project.root, "customers", environ=project.env)
    again = run(project)
    assert (again.full_resend_reason or "").startswith("reset: every row is resent") and again.counts["acked"] == 50


def test_history_records_each_run(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    run(project)
    run(project)
    records = reverse_etl.history(project.root, environ=project.env)
    assert [r.outcome for r in records] == ["success", "success"]
    assert records[0].counts["acked"] == 50 and records[1].counts["unchanged"] == 50
    assert all(r.seconds > 0 for r in records)


def test_secret_never_written_to_state_or_output(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    from click.testing import CliRunner

    from reverse_etl.cli import main

    secret = "test-key"
    insider_emulator.set_faults(reject=["u1"])
    result = CliRunner().invoke(main, ["--project", str(project.root), "run", "--json"], env=project.env)
    assert result.exit_code == 3, result.output
    output = result.output + CliRunner().invoke(
        main, ["--project", str(project.root), "rejected", "customers"], env=project.env).output
    assert secret not in output
    for path in (project.root / ".reverse_etl").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    for entry in insider_emulator.requests():
        assert secret not in str(entry)


def test_change_and_clear_in_one_run_both_land(project: ProjectUnderTest, insider_emulator: Emulator) -> None:
    run(project)
    project.sql("UPDATE raw_customers SET city = NULL, first_name = 'Renamed' WHERE customer_id = 'u6'")
    result = run(project)
    assert result.counts["changed"] == 1 and result.counts["acked"] == 2  # an upsert and a delete
    attributes = insider_emulator.profile(uuid="u6")["attributes"]  # type: ignore[index]
    assert attributes["name"] == "Renamed" and "city" not in attributes
    assert run(project).counts["to_send"] == 0
    project.sql("UPDATE raw_customers SET city = 'Back' WHERE customer_id = 'u6'")
    assert run(project).counts["acked"] == 1
    assert insider_emulator.profile(uuid="u6")["attributes"]["city"] == "Back"  # type: ignore[index]


def test_a_removal_hidden_by_a_duplicated_row_is_still_sent(tmp_path: Path, insider_emulator: Emulator) -> None:
    # u2 leaves and u3 appears twice: the model has as many keyed rows as the snapshot has
    # keys and nothing else changed, so only the duplicate shows that a key is missing.
    project = make_project(tmp_path / "p", insider_emulator.url, rows=5, on_removed="delete_user")
    run(project)
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u2'")
    project.sql("INSERT INTO raw_customers SELECT * FROM raw_customers WHERE customer_id = 'u3'")
    result = run(project)
    assert result.counts["removed"] == 1 and result.counts["invalid"] == 2
    assert insider_emulator.profile(uuid="u2") is None and insider_emulator.profile(uuid="u3") is not None


def test_a_key_replaced_by_a_new_one_in_the_same_run_is_removed(tmp_path: Path, insider_emulator: Emulator) -> None:
    # u2 leaves, n1 arrives and u4 changes: as many model keys as snapshot keys, two of
    # them delta keys, so only checking which delta keys the snapshot knows shows u2 left.
    project = make_project(tmp_path / "p", insider_emulator.url, rows=5, on_removed="delete_user")
    run(project)
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u2'")
    project.sql("INSERT INTO raw_customers VALUES ('n1', 'n1@example.com', 'New', 'Oslo', 1.5, ['t'])")
    project.sql("UPDATE raw_customers SET city = 'Rome' WHERE customer_id = 'u4'")
    result = run(project)
    assert (result.counts["removed"], result.counts["added"], result.counts["changed"]) == (1, 1, 1)
    assert insider_emulator.profile(uuid="u2") is None and insider_emulator.profile(uuid="n1") is not None


def test_an_empty_model_never_deletes_everyone(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3, on_removed="delete_user")
    run(project)
    project.sql("DELETE FROM raw_customers")  # e.g. an upstream job truncated the table
    result = run(project)
    assert result.outcome == "failed" and "returned no rows" in (result.message or "")
    assert len(insider_emulator.profiles()) == 3
    text = (project.root / "syncs.yml").read_text().replace("on_removed: delete_user",
                                                             "on_removed: delete_user\n  options: {allow_empty_model: true}")
    project.write_config(text)
    assert run(project).counts["acked"] == 3 and insider_emulator.profiles() == []


def test_a_model_ending_in_a_semicolon_and_a_comment_still_diffs(project: ProjectUnderTest,
                                                                 insider_emulator: Emulator) -> None:
    # The engine wraps the model to add each row's key and digest as it loads it.
    project.write_model("customers", "select customer_id, email, first_name, city, lifetime_value, tags\n"
                                     "from raw_customers;\n-- the end of the model\n")
    assert run(project).counts["acked"] == 50
    project.sql("UPDATE raw_customers SET city = 'Oslo' WHERE customer_id = 'u5'")
    insider_emulator.reset()
    result = run(project)
    assert result.outcome == "success", result.message
    assert result.counts["changed"] == 1 and result.counts["unchanged"] == 49
    assert [u["attributes"] for u in sent(insider_emulator, UPSERT)] == [{"city": "Oslo"}]


def test_a_model_column_named_like_the_engines_own_is_left_alone(project: ProjectUnderTest,
                                                                insider_emulator: Emulator) -> None:
    # The model has a column called what the engine names its row keys: the engine
    # then keys and digests the rows in a pass of its own.
    project.write_model("customers", "select customer_id, email, first_name, city, lifetime_value, tags, "
                                     "'same' AS __reverse_etl_key, 'same' AS __reverse_etl_digest from raw_customers")
    assert run(project).counts["acked"] == 50
    assert run(project).counts["unchanged"] == 50
    project.sql("UPDATE raw_customers SET first_name = 'Ada' WHERE customer_id = 'u9'")
    insider_emulator.reset()
    result = run(project)
    assert result.counts["changed"] == 1 and result.counts["unchanged"] == 49
    assert [u["attributes"] for u in sent(insider_emulator, UPSERT)] == [{"name": "Ada"}]
    assert insider_emulator.profile(uuid="u9")["attributes"]["name"] == "Ada"  # type: ignore[index]

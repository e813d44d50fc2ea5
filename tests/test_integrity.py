"""What Insider holds must equal the model (issue 12): full resends that still reconcile,
identifier changes through the identity update, identity conflicts, corrupted state."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from project_factory import ProjectUnderTest, make_project
from test_sync_engine import run, sent

import reverse_etl
from reverse_etl.insider.emulator import Emulator

IDENTITY = "/api/user/v1/identity"


def model_edit(project: ProjectUnderTest) -> None:
    project.write_model("customers", "select customer_id, email, first_name, city, lifetime_value, tags "
                                     "from raw_customers  -- edited")


def mapping_change(project: ProjectUnderTest) -> None:
    with project.config() as config:
        config["syncs"][0]["attributes"]["town"] = "city"


def full_refresh(project: ProjectUnderTest) -> dict[str, bool]:
    return {"full_refresh": True}


@pytest.mark.parametrize("resend", ["model_edit", "mapping_change", "full_refresh", "reset", "lost_meta"])
def test_a_full_resend_still_clears_nulls_and_applies_on_removed(tmp_path: Path, insider_emulator: Emulator,
                                                                 resend: str) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=4, on_removed="delete_user")
    assert run(project).outcome == "success"
    project.sql("UPDATE raw_customers SET city = NULL WHERE customer_id = 'u2'")
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u3'")
    kwargs: dict[str, bool] = {}
    if resend == "model_edit":
        model_edit(project)
    elif resend == "mapping_change":
        mapping_change(project)
    elif resend == "full_refresh":
        kwargs = full_refresh(project)
    elif resend == "reset":
        said = reverse_etl.reset(project.root, "customers", environ=project.env)
        assert said is not None and "on_removed" in said
    else:
        (project.root / ".reverse_etl" / "customers" / "meta.json").unlink()
    result = run(project, **kwargs)
    assert result.outcome == "success", result.message
    assert result.full_resend_reason and "cannot be cleared" not in result.full_resend_reason
    assert result.counts["added"] == 3 and result.counts["removed"] == 1
    assert insider_emulator.profile(uuid="u3") is None  # left the model: on_removed ran
    assert "city" not in insider_emulator.profile(uuid="u2")["attributes"]  # type: ignore[index]
    assert insider_emulator.profile(uuid="u1")["attributes"]["city"] == "City1"  # type: ignore[index]
    assert reverse_etl.plan(project.root, environ=project.env).syncs[0].counts["to_send"] == 0


def test_reset_forget_everything_says_nothing_can_be_cleared(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3, on_removed="delete_user")
    run(project)
    said = reverse_etl.reset(project.root, "customers", environ=project.env, forget_everything=True)
    assert said is not None and "cannot be cleared" in said
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u3'")
    result = run(project)
    assert "no earlier snapshot: values that became NULL and users who left cannot be cleared" in (
        result.full_resend_reason or "")
    assert insider_emulator.profile(uuid="u3") is not None  # nothing known: it stays


def test_reset_from_the_cli_says_what_the_next_run_does(tmp_path: Path, insider_emulator: Emulator) -> None:
    from click.testing import CliRunner

    from reverse_etl.cli import main

    project = make_project(tmp_path / "p", insider_emulator.url, rows=2)
    run(project)
    out = CliRunner().invoke(main, ["--project", str(project.root), "reset", "customers", "--yes"], env=project.env)
    assert out.exit_code == 0 and "snapshot kept aside" in out.output
    out = CliRunner().invoke(main, ["--project", str(project.root), "reset", "customers", "--yes",
                                    "--forget-everything"], env=project.env)
    assert out.exit_code == 0 and "everything forgotten" in out.output


def test_a_changed_email_goes_through_the_identity_update(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3)
    run(project)
    project.sql("UPDATE raw_customers SET email = 'new2@example.com' WHERE customer_id = 'u2'")
    result = run(project)
    assert result.outcome == "success", result.message
    assert sent(insider_emulator, IDENTITY) == [{"old_identifier": {"email": "user2@example.com"},
                                                 "new_identifier": {"email": "new2@example.com"}}]
    profile = insider_emulator.profile(uuid="u2")
    assert profile is not None and profile["identifiers"]["email"] == "new2@example.com"
    assert insider_emulator.profile(email="user2@example.com") is None
    assert reverse_etl.plan(project.root, environ=project.env).syncs[0].counts["to_send"] == 0
    # An email that became NULL is deleted from the profile (identity delete), never left behind.
    project.sql("UPDATE raw_customers SET email = NULL WHERE customer_id = 'u2'")
    assert run(project).outcome == "success"
    assert "email" not in insider_emulator.profile(uuid="u2")["identifiers"]  # type: ignore[index]
    assert reverse_etl.plan(project.root, environ=project.env).syncs[0].counts["to_send"] == 0


def test_a_rejected_identity_update_is_retried_next_run(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=2)
    run(project)
    project.sql("UPDATE raw_customers SET email = 'new1@example.com', city = 'Oslo' WHERE customer_id = 'u1'")
    with project.config() as config:
        config["destination"]["max_retries"] = 1
    insider_emulator.set_faults(status_500=1.0, endpoints=["identity_update"])
    first = run(project)
    assert first.outcome == "partial" and first.counts["failed"] == 1
    assert insider_emulator.profile(uuid="u1")["attributes"]["city"] == "Oslo"  # type: ignore[index]
    insider_emulator.set_faults({})
    assert run(project).outcome == "success"
    assert insider_emulator.profile(uuid="u1")["identifiers"]["email"] == "new1@example.com"  # type: ignore[index]


def test_the_emulator_refuses_an_identity_update_to_the_same_value(insider_emulator: Emulator) -> None:
    headers = {"X-PARTNER-NAME": "acme", "X-REQUEST-TOKEN": "test-key", "Content-Type": "application/json"}
    with httpx.Client(base_url=insider_emulator.url, headers=headers) as http:
        http.post("/api/user/v1/upsert", json={"users": [{"identifiers": {"uuid": "a", "email": "a@x.co"},
                                                          "attributes": {"name": "A"}}]})
        same = http.patch(IDENTITY, json={"old_identifier": {"email": "a@x.co"}, "new_identifier": {"email": "a@x.co"}})
        assert same.status_code == 400
        assert same.json() == {"error": "identifier values are the same: bad request"}
        moved = http.patch(IDENTITY, json={"old_identifier": {"email": "a@x.co"}, "new_identifier": {"email": "b@x.co"}})
        assert moved.status_code == 200
    assert insider_emulator.profile(uuid="a")["identifiers"]["email"] == "b@x.co"  # type: ignore[index]


def test_rows_sharing_an_identifier_are_rejected_naming_both_keys(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=4)
    project.sql("UPDATE raw_customers SET email = 'user1@example.com' WHERE customer_id = 'u3'")
    result = run(project)
    assert result.counts["invalid"] == 2 and result.counts["acked"] == 2
    assert insider_emulator.profile(uuid="u1") is None and insider_emulator.profile(uuid="u3") is None
    total, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    assert total == 2
    for row in rows:
        assert "identity conflict" in row["reason"] and "u1, u3" in row["reason"]


def test_a_new_row_taking_an_unchanged_rows_identifier_conflicts_until_one_of_them_moves(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    # Only the rows a run encodes are checked for conflicts, but against every row of the
    # model: u1 did not change, yet the new u99 sharing its email is held back, run after run.
    # (30 rows: one changed row of 31 takes the path that looks only at the changed rows' values.)
    project = make_project(tmp_path / "p", insider_emulator.url, rows=30)
    assert run(project).counts["acked"] == 30
    project.sql("INSERT INTO raw_customers SELECT * REPLACE ('u99' AS customer_id, ' user1@example.com' AS email) "
                "FROM raw_customers WHERE customer_id = 'u3'")
    for _ in range(2):
        result = run(project)
        assert result.counts["invalid"] == 1 and result.counts["acked"] == 0
        _, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
        assert [(row["key"], "identity conflict" in row["reason"] and "u1, u99" in row["reason"])
                for row in rows] == [("u99", True)]
        assert insider_emulator.profile(uuid="u99") is None
    project.sql("UPDATE raw_customers SET email = 'moved@example.com' WHERE customer_id = 'u1'")
    result = run(project)
    assert result.counts["invalid"] == 0 and result.outcome == "success"
    assert insider_emulator.profile(uuid="u99")["identifiers"]["email"] == "user1@example.com"  # type: ignore[index]
    assert insider_emulator.profile(uuid="u1")["identifiers"]["email"] == "moved@example.com"  # type: ignore[index]


def test_identifiers_shared_after_trimming_conflict_but_a_repeated_key_is_a_duplicate(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    # Values are compared as sent (trimmed): ' user1@example.com ' is user1's email too. A key on
    # two rows with one email is a duplicate key, not two users sharing an email.
    project = make_project(tmp_path / "p", insider_emulator.url, rows=5)
    project.sql("UPDATE raw_customers SET email = '  user1@example.com ' WHERE customer_id = 'u3'")
    project.sql("INSERT INTO raw_customers SELECT * FROM raw_customers WHERE customer_id = 'u4'")
    result = run(project)
    assert result.counts["invalid"] == 4 and result.counts["acked"] == 2
    _, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    reasons = {row["key"]: row["reason"] for row in rows}
    assert "identity conflict" in reasons["u1"] and "u1, u3" in reasons["u3"]
    assert reasons["u4"].startswith("duplicate key") and "identity conflict" not in reasons["u4"]
    assert insider_emulator.profile(uuid="u5") is not None and insider_emulator.profile(uuid="u1") is None


def test_a_corrupted_snapshot_is_reported_with_the_recovery_command(tmp_path: Path,
                                                                    insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3)
    run(project)
    state = project.root / ".reverse_etl" / "customers"
    snapshot = next(state.glob("snapshot-*.parquet"))
    snapshot.write_bytes(snapshot.read_bytes()[:-40])  # truncated
    planned = reverse_etl.plan(project.root, environ=project.env).syncs[0]
    assert planned.outcome == "failed"
    message = planned.message or ""
    assert snapshot.name in message and "reverse-etl reset customers --forget-everything" in message
    assert "\n" not in message
    said = reverse_etl.reset(project.root, "customers", environ=project.env)
    assert said is not None and "cannot be cleared" in said  # the corrupted file is not kept
    assert run(project).outcome == "success"


def test_plan_survives_a_run_replacing_the_snapshot(tmp_path: Path, insider_emulator: Emulator) -> None:
    from reverse_etl.state import SyncState

    project = make_project(tmp_path / "p", insider_emulator.url, rows=3)
    run(project)
    state = SyncState(project.root / ".reverse_etl", "customers")
    pinned = tmp_path / "pin"
    pinned.mkdir()
    meta = state.pin(pinned)
    project.sql("UPDATE raw_customers SET city = 'Rome'")
    run(project)  # commits a new snapshot and deletes the one the reader pinned
    assert not (state.dir / str(meta.snapshot)).exists()
    assert state.snapshot_path() is not None and state.snapshot_path().exists()  # type: ignore[union-attr]


def test_appended_arrays_never_get_an_element_twice(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3, options={"append_arrays": True})
    with project.config() as config:
        config["destination"]["max_retries"] = 20
    run(project)
    insider_emulator.set_faults(drop=0.3, latency_ms=20, seed=3, endpoints=["upsert"])
    project.sql("UPDATE raw_customers SET tags = ['t1', 'x'] WHERE customer_id = 'u1'")
    assert run(project).outcome == "success"
    assert run(project, full_refresh=True).outcome == "success"  # a resend appends nothing known
    reverse_etl.reset(project.root, "customers", environ=project.env)
    assert run(project).outcome == "success"
    insider_emulator.set_faults({})
    assert insider_emulator.profile(uuid="u1")["attributes"]["custom"]["tags"] == ["t1", "x"]  # type: ignore[index]
    assert insider_emulator.profile(uuid="u2")["attributes"]["custom"]["tags"] == ["t2"]  # type: ignore[index]
    upserts = [u for u in sent(insider_emulator, "/api/user/v1/upsert") if u["identifiers"]["uuid"] == "u1"]
    assert upserts[1]["attributes"]["custom"]["tags"] == ["x"]  # only the missing element


# --------------------------------------------- item 5: requests whose answer is lost
def _lossy_project(root: Path, url: str, rows: int, **sync: Any) -> ProjectUnderTest:
    project = make_project(root, url, rows=rows, **sync)
    with project.config() as config:
        config["destination"].update(timeout_seconds=0.5, max_batch_users=500, concurrency=4, max_retries=4,
                                     verify_delay_seconds=0.5,
                                     rate_limits={"profile_read_per_minute": 10_000_000})
    return project


def _tags(emu: Emulator) -> Counter[str]:
    """How many times each profile's ``tags`` array holds each of its elements, worst case."""
    return Counter(f"{len(p['attributes']['custom'].get('tags', []))}x"
                   for p in emu.profiles())


def test_an_append_whose_answer_is_lost_is_not_appended_twice(tmp_path: Path) -> None:
    # The case: Insider answers later than the client waits, but applies every request.
    with Emulator(partner="acme", api_key="test-key", profile_quota=10_000_000) as emu:
        project = _lossy_project(tmp_path / "p", emu.url, 2_000, options={"append_arrays": True})
        emu.set_faults(latency_ms=900, endpoints=["upsert"])
        first = run(project)
        assert _tags(emu) == {"1x": 2_000}, "an element was appended more than once (or not at all)"
        assert first.outcome == "success", first.message
        assert first.counts["acked"] == 2_000 and first.counts["failed"] == 0
        assert {e["status"] for e in emu.requests() if e["path"] == "/api/user/v1/upsert"} == {200}
        emu.set_faults({})
        second = run(project)
        assert second.outcome == "success" and second.counts["to_send"] == 0
        assert _tags(emu) == {"1x": 2_000}


def test_events_and_audiences_survive_lost_answers_drops_and_latency(tmp_path: Path) -> None:
    with Emulator(partner="acme", api_key="test-key", profile_quota=10_000_000) as emu:
        project = _lossy_project(tmp_path / "p", emu.url, 200, options={"append_arrays": True},
                                 audience_delivery="array",
                                 audiences=[{"name": "Big Spenders", "when": "lifetime_value > 1000"}])
        with project.config() as config:
            config["destination"].update(timeout_seconds=5, max_batch_users=40, max_retries=8,
                                         verify_delay_seconds=0.05)
            config["syncs"].append({
                "name": "events", "model": "events", "mode": "user_events", "identifiers": {"uuid": "customer_id"},
                "event": {"name_column": "event_name", "timestamp": "occurred_at", "key": "event_id"}})
        project.write_model("events", """
            select 'e' || i as event_id, 'u' || (i % 200 + 1) as customer_id, 'page_viewed' as event_name,
                   (timezone('UTC', now()) - to_minutes(i))::TIMESTAMP as occurred_at
            from range(600) t(i)""")
        emu.set_faults(lost_answer=0.3, drop=0.1, latency_ms=20, seed=5, endpoints=["upsert"])
        for round_ in range(2):
            results = reverse_etl.run(project.root, environ=project.env).syncs
            assert [r.outcome for r in results] == ["success", "success"], [r.message for r in results]
            if round_ == 0:
                assert [r.counts["acked"] for r in results][1] == 600
                project.sql("UPDATE raw_customers SET lifetime_value = 5000 WHERE customer_id <= 'u5'")
        lost = [e for e in emu.requests() if e["fault"] == "lost_answer"]
        assert len(lost) > 5, "the fault never fired"
        emu.set_faults({})
        members = {r[0] for r in project.sql("SELECT customer_id FROM raw_customers WHERE lifetime_value > 1000")}
        events: Counter[tuple[str, str]] = Counter()
        for profile in emu.profiles():
            uuid = profile["identifiers"]["uuid"]
            held = profile["attributes"]["custom"].get("audiences", [])
            assert held == (["Big Spenders"] if uuid in members else []), uuid
            tags = profile["attributes"]["custom"]["tags"]
            assert len(tags) == len(set(tags)), uuid
            events.update((uuid, e["timestamp"]) for e in profile["events"])
        assert len(events) == 600 and set(events.values()) == {1}, "an event is missing or held twice"
        planned = reverse_etl.plan(project.root, environ=project.env).syncs
        assert [p.counts["to_send"] for p in planned] == [0, 0]


@pytest.mark.parametrize("on_removed", ["delete_user", "clear_attributes"])
def test_a_changed_key_never_deletes_the_profile_the_new_key_wrote(tmp_path: Path, insider_emulator: Emulator,
                                                                  on_removed: str) -> None:
    # uuid u2 becomes u2b with the same email: a removal plus an addition that Insider unifies by email.
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3, on_removed=on_removed)
    assert run(project).outcome == "success"
    project.sql("UPDATE raw_customers SET customer_id = 'u2b', city = 'Lyon' WHERE customer_id = 'u2'")
    first = run(project)
    assert first.outcome == "partial" and first.counts["removed"] == 1 and first.counts["invalid"] == 1
    _, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    assert [r["key"] for r in rows] == ["u2b"]
    assert "identifiers.email=user2@example.com belonged to removed key u2" in rows[0]["reason"]
    second = run(project)
    assert second.outcome == "success", second.message
    profile = insider_emulator.profile(email="user2@example.com")
    assert profile is not None
    assert profile["attributes"]["city"] == "Lyon" and profile["attributes"]["name"] == "Name2"
    if on_removed == "delete_user":
        assert profile["identifiers"]["uuid"] == "u2b" and insider_emulator.profile(uuid="u2") is None
        assert {p["identifiers"]["uuid"] for p in insider_emulator.profiles()} == {"u1", "u2b", "u3"}
    else:  # the cleared profile stays; Insider unifies u2b into it (an upsert never changes a uuid)
        assert profile["identifiers"]["uuid"] == "u2"
    assert reverse_etl.plan(project.root, environ=project.env).syncs[0].counts["to_send"] == 0


def test_unicode_spaces_around_keys_and_emails_are_trimmed_on_a_later_run(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    # A second run reads the changed rows again and checks identities against every row:
    # keys and emails padded with Unicode spaces (U+00A0, U+3000) are the trimmed values.
    project = make_project(tmp_path / "p", insider_emulator.url, rows=5)
    assert run(project).outcome == "success"
    project.sql("UPDATE raw_customers SET email = '\u3000user1@example.com\u00a0' WHERE customer_id = 'u3'")
    project.sql("INSERT INTO raw_customers SELECT * REPLACE ('\u00a0u4' AS customer_id, 'x4@example.com' AS email) "
                "FROM raw_customers WHERE customer_id = 'u4'")
    result = run(project)
    _, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    reasons = {row["key"]: row["reason"] for row in rows}
    # u1's row did not change: Insider holds it already, so only the newcomer u3 is held.
    assert "u1, u3" in reasons["u3"] and set(reasons) == {"u3", "u4"}
    assert reasons["u4"].startswith("duplicate key: identifiers.uuid=u4 appears in 2 rows")
    assert result.counts["invalid"] == 3 and result.counts["to_send"] == 0
    project.sql("UPDATE raw_customers SET email = '\u3000user3@example.com ' WHERE customer_id = 'u3'")
    project.sql("DELETE FROM raw_customers WHERE customer_id = '\u00a0u4'")
    result = run(project)
    assert result.outcome == "success" and result.counts["invalid"] == 0
    assert insider_emulator.profile(uuid="u3")["identifiers"]["email"] == "user3@example.com"  # type: ignore[index]

"""Snapshot overlays (issue 18): a run that changes few rows of a big snapshot writes only
those rows; the snapshot it leaves must be the one a full rewrite would have left.

Here every snapshot gets overlays (``state.overlay_min_rows: 0``), and a twin project
that always rewrites its snapshot whole takes the same edits: after each round both
snapshots hold the same rows, Insider holds the model, and the next plan sends nothing."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
from project_factory import ProjectUnderTest, make_project
from test_snapshot_edge_cases import crash_after
from test_sync_engine import run

import reverse_etl
from reverse_etl.insider.emulator import Emulator
from reverse_etl.project.config import StateConfig
from reverse_etl.state.store import Meta
from reverse_etl.state.stores import open_sync_state


def with_overlays(project: ProjectUnderTest, min_rows: int = 0) -> ProjectUnderTest:
    with project.config() as config:
        config["state"] = {"overlay_min_rows": min_rows}
    return project


def meta(project: ProjectUnderTest) -> Meta:
    return open_sync_state(project.root / ".reverse_etl", StateConfig(), "customers").meta()


def snapshot(project: ProjectUnderTest) -> list[tuple[Any, ...]]:
    """Every row of the sync's snapshot, as the next run reads it."""
    state = open_sync_state(project.root / ".reverse_etl", StateConfig(), "customers")
    sql = state.snapshot_sql()
    assert sql is not None
    return duckdb.sql(f"SELECT * FROM {sql} s ORDER BY key").fetchall()


def insider_misses(emu: Emulator, project: ProjectUnderTest) -> list[str]:
    """Differences between the model and Insider (name, city; users that left are deleted)."""
    model = {r[0]: (r[1], r[2]) for r in project.sql("SELECT customer_id, first_name, city FROM raw_customers")}
    held = {p["identifiers"].get("uuid"): p for p in emu.profiles()}
    problems = [f"{k}: at Insider, not in the model" for k in sorted(set(held) - set(model))]
    for key, (name, city) in sorted(model.items()):
        attrs = held[key]["attributes"] if key in held else None
        if attrs is None:
            problems.append(f"{key}: missing at Insider")
        elif (attrs.get("name"), attrs.get("city")) != (name, city):
            problems.append(f"{key}: model {(name, city)}, Insider {(attrs.get('name'), attrs.get('city'))}")
    return problems


def edit(project: ProjectUnderTest, rng: random.Random, serial: int, gone: list[str]) -> None:
    keys = [r[0] for r in project.sql("SELECT customer_id FROM raw_customers ORDER BY 1")]
    action = rng.choice(["edit", "edit", "null", "remove", "add", "back"])
    key = rng.choice(keys)
    if action == "edit":
        project.sql(f"UPDATE raw_customers SET city = 'C{serial}' WHERE customer_id = '{key}'")
    elif action == "null":
        project.sql(f"UPDATE raw_customers SET first_name = NULL WHERE customer_id = '{key}'")
    elif action == "remove":
        project.sql(f"DELETE FROM raw_customers WHERE customer_id = '{key}'")
        gone.append(key)
    elif action == "back" and gone:  # a removed key returns: its tombstone must give way
        back = gone.pop(rng.randrange(len(gone)))
        project.sql(f"INSERT INTO raw_customers VALUES ('{back}', '{back}@example.com', 'Back{serial}', "
                    f"'C{serial}', {serial}.5, ['t'])")
    else:
        project.sql(f"INSERT INTO raw_customers VALUES ('n{serial}', 'n{serial}@example.com', 'N{serial}', "
                    f"'C{serial}', {serial}.5, ['t'])")


def test_overlay_snapshots_equal_full_rewrites_through_random_edits(tmp_path: Path,
                                                                   insider_emulator: Emulator) -> None:
    lean = with_overlays(make_project(tmp_path / "lean", insider_emulator.url, rows=60, on_removed="delete_user"))
    whole = make_project(tmp_path / "whole", insider_emulator.url, rows=60, on_removed="delete_user")
    rng = random.Random(7)
    gone: dict[str, list[str]] = {"lean": [], "whole": []}
    bases, overlays = set(), 0
    for round_ in range(14):
        if round_:
            state = rng.getstate()
            for name, project in (("lean", lean), ("whole", whole)):
                rng.setstate(state)  # both projects take the same edits
                for i in range(rng.randint(1, 3)):
                    edit(project, rng, round_ * 10 + i, gone[name])
        rejected = f"u{rng.randint(1, 60)}" if round_ % 4 == 3 else None
        insider_emulator.set_faults(reject=[rejected] if rejected else [])
        first = run(lean)
        assert first.outcome in ("success", "partial"), first.message
        if not rejected:
            assert insider_misses(insider_emulator, lean) == []
        run(whole)
        insider_emulator.set_faults({})
        assert snapshot(lean) == snapshot(whole), f"round {round_}"
        current = meta(lean)
        assert current.rows == len(snapshot(lean))
        bases.add(current.snapshot)
        overlays += current.overlay is not None
        if not rejected:
            assert reverse_etl.plan(lean.root, environ=lean.env).syncs[0].counts["to_send"] == 0
    assert meta(whole).overlay is None
    # Both ways were taken: overlays over one base, and compactions into new bases.
    assert overlays >= 5 and len(bases) >= 3


def test_a_key_removed_then_back_but_rejected_stays_out_of_the_snapshot(tmp_path: Path,
                                                                        insider_emulator: Emulator) -> None:
    project = with_overlays(make_project(tmp_path / "p", insider_emulator.url, rows=40, on_removed="delete_user"))
    run(project)
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u3'")
    assert run(project).counts["removed"] == 1
    assert meta(project).overlay is not None  # u3's tombstone hides its base row
    project.sql("INSERT INTO raw_customers VALUES ('u3', 'u3@example.com', 'Again', 'Rome', 1.5, ['t'])")
    insider_emulator.set_faults(reject=["u3"])
    assert run(project).counts["rejected"] == 1
    assert meta(project).overlay is not None
    assert "u3" not in [row[0] for row in snapshot(project)]
    found = reverse_etl.lookup(project.root, "customers", "u3", environ=project.env)
    assert not found.in_snapshot
    insider_emulator.set_faults({})
    assert run(project).counts["added"] == 1  # sent again, now accepted
    assert insider_emulator.profile(uuid="u3")["attributes"]["name"] == "Again"  # type: ignore[index]
    assert reverse_etl.lookup(project.root, "customers", "u3", environ=project.env).snapshot["attributes.name"] \
        == "Again"


def test_a_crash_over_an_overlay_is_folded_without_resending(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = with_overlays(make_project(tmp_path / "p", insider_emulator.url, rows=60))
    with project.config() as config:
        config["destination"].update(concurrency=1, max_batch_users=1)
    run(project)
    project.sql("UPDATE raw_customers SET city = 'First' WHERE customer_id IN ('u1', 'u2')")
    run(project)
    before = meta(project)
    assert before.overlay is not None
    project.sql("UPDATE raw_customers SET city = 'Second' WHERE customer_id IN ('u4', 'u5', 'u6')")
    crash_after(project, 2)  # kill -9 after two of three requests were acknowledged
    after = run(project)
    assert after.outcome == "success", after.message
    assert after.counts["recovered"] == 2 and after.counts["to_send"] == 1
    assert insider_misses(insider_emulator, project) == []
    assert meta(project).snapshot == before.snapshot  # folded into the same base, as an overlay
    cities = {row[0]: row for row in snapshot(project)}
    assert len(cities) == 60
    assert reverse_etl.plan(project.root, environ=project.env).syncs[0].counts["to_send"] == 0


def test_reset_keeps_the_overlays_rows_as_knowledge(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = with_overlays(make_project(tmp_path / "p", insider_emulator.url, rows=40, on_removed="delete_user"))
    run(project)
    project.sql("INSERT INTO raw_customers VALUES ('late', 'late@example.com', 'Late', 'Oslo', 1.5, ['t'])")
    run(project)
    assert meta(project).overlay is not None  # 'late' is only in the overlay
    reverse_etl.reset(project.root, "customers", environ=project.env)
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'late'")
    result = run(project)
    assert result.outcome == "success", result.message
    assert result.counts["removed"] == 1  # known from the overlay kept by reset
    assert insider_emulator.profile(uuid="late") is None


def test_small_snapshots_are_rewritten_whole_by_default(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = with_overlays(make_project(tmp_path / "p", insider_emulator.url, rows=40), min_rows=41)
    run(project)
    first = meta(project).snapshot
    project.sql("UPDATE raw_customers SET city = 'X' WHERE customer_id = 'u1'")
    run(project)
    assert meta(project).overlay is None and meta(project).snapshot != first

"""Runs after the first: the engine keeps only keys, digests and identifiers of every row,
and reads the rows that matter again from the DuckDB warehouse it holds read-only.

What a user observes: every kind of row that matters (changed, new, duplicate, keyless,
conflicting) is sent or refused exactly as before, and the warehouse is free for a
writer (``dbt run``) by the time the run delivers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from project_factory import ProjectUnderTest, make_project

import reverse_etl
from reverse_etl.insider.emulator import Emulator
from reverse_etl.run.events import RunEvent, StageFinished

UPSERT = "/api/user/v1/upsert"


def upserted(emu: Emulator) -> dict[str, dict[str, Any]]:
    """uuid → attributes of every user Insider accepted an upsert for."""
    out: dict[str, dict[str, Any]] = {}
    for entry in emu.requests():
        if entry["path"].split("?")[0] == UPSERT and entry["status"] == 200:
            for user in entry["body"]["users"]:
                out[user["identifiers"]["uuid"]] = user.get("attributes", {})
    return out


def run(project: ProjectUnderTest, **kwargs: Any) -> reverse_etl.SyncResult:
    result = reverse_etl.run(project.root, environ=project.env, **kwargs)
    return result.syncs[0]


def test_every_kind_of_row_that_matters_is_read_again_and_judged(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=20)
    assert run(project).counts["acked"] == 20
    insider_emulator.reset()
    project.sql("UPDATE raw_customers SET city = 'Oslo', tags = ['vip'] WHERE customer_id = 'u5'")  # changed
    project.sql("INSERT INTO raw_customers VALUES ('u21', 'user21@example.com', 'New', 'Rome', 1.5, ['t1'])")  # new
    project.sql("INSERT INTO raw_customers SELECT * FROM raw_customers WHERE customer_id = 'u7'")  # duplicated
    project.sql("INSERT INTO raw_customers VALUES (NULL, 'nobody@example.com', 'No', 'Key', 0, [])")  # keyless
    # A new key holding the email of an unchanged row: only every row's identifiers show it.
    project.sql("INSERT INTO raw_customers VALUES ('u22', 'user3@example.com', 'Twin', 'Bern', 2, [])")
    result = run(project)
    assert result.outcome == "partial", result.message
    assert result.counts["changed"] == 1 and result.counts["added"] == 1
    assert result.counts["invalid"] == 4  # u7 twice, the keyless row, u22
    got = upserted(insider_emulator)
    assert got == {"u5": {"city": "Oslo", "custom": {"tags": ["vip"]}},
                   "u21": {"name": "New", "city": "Rome", "custom": {"ltv": 1.5, "tags": ["t1"]}}}
    assert insider_emulator.profile(uuid="u5")["attributes"]["city"] == "Oslo"  # type: ignore[index]
    _, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
    reasons = {row["key"]: row["reason"] for row in rows}
    assert "duplicate key" in reasons["u7"] and "null key" in reasons[None]
    assert "identity conflict" in reasons["u22"] and "u3" in reasons["u22"]
    # What was acknowledged is what the next run compares with: nothing more to send.
    insider_emulator.reset()
    project.sql("DELETE FROM raw_customers WHERE customer_id IN ('u7', 'u22') OR customer_id IS NULL")
    project.sql("INSERT INTO raw_customers VALUES ('u7', 'user7@example.com', 'Name7', 'City0', 73.5, ['t1'])")
    again = run(project)
    assert again.outcome == "success", again.message
    assert again.counts["to_send"] == 0 and upserted(insider_emulator) == {}


def test_the_warehouse_is_free_for_a_writer_while_the_run_delivers(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=10)
    run(project)
    project.sql("UPDATE raw_customers SET city = 'Lima' WHERE customer_id = 'u2'")
    writes: list[subprocess.CompletedProcess[str]] = []

    def write_the_warehouse(event: RunEvent) -> None:
        # Another process, as `dbt run` is: DuckDB's file lock is per process.
        if isinstance(event, StageFinished) and event.stage == "diff":
            writes.append(subprocess.run(
                [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).execute("
                 "\"UPDATE raw_customers SET first_name = 'Later' WHERE customer_id = 'u3'\")",
                 str(project.warehouse)], capture_output=True, text=True, timeout=60))

    result = run(project, hooks=[write_the_warehouse])
    assert result.outcome == "success", result.message
    assert len(writes) == 1 and writes[0].returncode == 0, writes[0].stderr
    assert upserted(insider_emulator)["u2"] == {"city": "Lima"}
    # The write landed in the warehouse; the next run sends it.
    insider_emulator.reset()
    assert run(project).counts["changed"] == 1
    assert upserted(insider_emulator) == {"u3": {"name": "Later"}}

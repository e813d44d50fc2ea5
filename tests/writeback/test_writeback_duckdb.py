"""Write-back into the project's DuckDB warehouse: every run, rejected row and change; idempotent."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from project_factory import ProjectUnderTest, make_project
from writeback_scenario import ATTRIBUTES, MODEL_SQL, check_tables, three_runs

import reverse_etl
from reverse_etl.insider.emulator import Emulator
from reverse_etl.writeback import flush_spool
from reverse_etl.writeback.flush import ready_runs


def rows(project: ProjectUnderTest, sql: str) -> list[dict[str, Any]]:
    with duckdb.connect(str(project.warehouse), read_only=True) as con:
        cursor = con.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def project_with_writeback(tmp_path: Path, emulator: Emulator, **writeback: Any) -> ProjectUnderTest:
    project = make_project(tmp_path / "p", emulator.url, rows=12, attributes=ATTRIBUTES)
    project.write_model("customers", MODEL_SQL)
    with project.config() as config:
        config["writeback"] = writeback
    return project


def test_duckdb_tables_hold_every_run_rejected_row_and_change(tmp_path: Path,
                                                             insider_emulator: Emulator) -> None:
    project = project_with_writeback(tmp_path, insider_emulator)
    results = three_runs(project, insider_emulator, lambda sql: project.sql(sql) and None)
    check_tables(results, rows(project, "SELECT * FROM reverse_etl.sync_runs"),
                 rows(project, "SELECT * FROM reverse_etl.sync_rejected_rows"),
                 rows(project, "SELECT * FROM reverse_etl.sync_changes"), insider_emulator)
    assert ready_runs(project.root / ".reverse_etl") == []  # all written, nothing left spooled
    payloads = rows(project, "SELECT payload FROM reverse_etl.sync_changes")
    assert {p["payload"] for p in payloads} == {None}  # payloads only when asked for


def test_names_and_payloads_are_configurable(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = project_with_writeback(tmp_path, insider_emulator, schema="ops", runs_table="runs",
                                     rejected_table="refused", changes_table="changes",
                                     include_payload=True)
    result = reverse_etl.run(project.root, environ=project.env).syncs[0]
    (run,) = rows(project, "SELECT run_id, acked FROM ops.runs")
    assert run == {"run_id": result.run_id, "acked": 12}
    changes = rows(project, "SELECT row_key, payload FROM ops.changes ORDER BY row_key")
    assert len(changes) == 12 and '"uuid":"u1"' in changes[0]["payload"].replace(" ", "")
    assert rows(project, "SELECT count(*) AS n FROM ops.refused") == [{"n": 0}]


def test_a_failed_write_back_keeps_the_run_and_is_retried_without_duplicates(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    project = project_with_writeback(tmp_path, insider_emulator)
    # A table of that name that cannot take the rows: the write-back fails, the run does not.
    project.sql("CREATE SCHEMA reverse_etl; CREATE TABLE reverse_etl.sync_changes (run_id VARCHAR, x INT)")
    first = reverse_etl.run(project.root, environ=project.env).syncs[0]
    assert first.outcome == "success" and first.counts["acked"] == 12
    (note,) = [n for n in first.notes if "write-back" in n]
    assert first.run_id in note and "retried next run" in note
    assert rows(project, "SELECT count(*) AS n FROM reverse_etl.sync_runs") == [{"n": 0}]  # rolled back
    (spooled,) = ready_runs(project.root / ".reverse_etl")
    kept = tmp_path / "kept"
    shutil.copytree(spooled, kept)
    # The run's state was committed all the same: nothing is resent.
    project.sql("DROP TABLE reverse_etl.sync_changes")
    project.sql("UPDATE raw_customers SET city = 'Oslo' WHERE customer_id = 'u1'")
    second = reverse_etl.run(project.root, environ=project.env).syncs[0]
    assert second.counts["to_send"] == 1 and not [n for n in second.notes if "write-back" in n]
    counts = "SELECT run_id, count(*) AS n FROM reverse_etl.sync_changes GROUP BY run_id"
    expected = {first.run_id: 12, second.run_id: 1}
    assert {r["run_id"]: r["n"] for r in rows(project, counts)} == expected
    # Writing the first run again replaces it: still one run row and 12 changes.
    shutil.copytree(kept, spooled)
    loaded = reverse_etl.load_project(project.root, project.env)
    assert flush_spool(loaded) == {}
    assert {r["run_id"]: r["n"] for r in rows(project, counts)} == expected
    assert rows(project, "SELECT count(*) AS n FROM reverse_etl.sync_runs") == [{"n": 2}]


@pytest.mark.parametrize(("writeback", "expected"), [
    ({"schema": "ops-1"}, "writeback.schema: 'ops-1' is not a plain SQL name"),
    ({"runs_table": "t", "changes_table": "t"}, "writeback.changes_table: 't' is already used"),
    ({"tables": {}}, "writeback.tables"),
    ({"include_payload": "yes please"}, "writeback.include_payload"),
])
def test_bad_writeback_config_names_file_line_and_field(tmp_path: Path, writeback: dict[str, Any],
                                                         expected: str) -> None:
    project = make_project(tmp_path / "p")
    with project.config() as config:
        config["writeback"] = writeback
    with pytest.raises(reverse_etl.ConfigError) as info:
        reverse_etl.load_project(project.root, project.env)
    assert expected in str(info.value) and str(info.value).startswith("syncs.yml:"), str(info.value)


def test_change_log_matches_what_insider_holds_under_faults(tmp_path: Path,
                                                           insider_emulator: Emulator) -> None:
    """Retries, drops and lost answers: the log still says acked exactly for what Insider holds."""
    project = project_with_writeback(tmp_path, insider_emulator)
    project.sql("CREATE OR REPLACE TABLE raw_customers AS SELECT 'u' || i AS customer_id, "
                "'user' || i || '@example.com' AS email, 'N' || i AS first_name, 'C' AS city, "
                "1.0::DOUBLE AS lifetime_value FROM range(1, 301) t(i)")
    with project.config() as config:
        config["destination"].update(max_batch_users=25, max_retries=2)
    insider_emulator.set_faults(status_500=0.2, status_503=0.1, drop=0.1, retry_after=0, seed=5,
                                reject=["u7", "u8"])
    result = reverse_etl.run(project.root, environ=project.env).syncs[0]
    assert result.outcome in ("partial", "failed"), result.counts
    log = rows(project, "SELECT row_key, outcome, reason FROM reverse_etl.sync_changes")
    acked = {r["row_key"] for r in log if r["outcome"] == "acked"}
    held = {p["identifiers"]["uuid"] for p in insider_emulator.profiles()}  # type: ignore[index]
    assert len(log) == 300 and acked == held and len(acked) == result.counts["acked"]
    refused = {r["row_key"]: r for r in log if r["outcome"] in ("rejected", "failed")}
    assert {"u7", "u8"} <= set(refused) and all(r["reason"] for r in refused.values())
    assert len(refused) == result.counts["rejected"] + result.counts["failed"]

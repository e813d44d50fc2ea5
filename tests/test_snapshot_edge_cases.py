"""Snapshot edge cases: held-back rows, crashes during a full resend or after a mapping
change, once-per-row actions after recovery, time zones, event TTL, plan writing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from project_factory import ProjectUnderTest, make_project
from test_sync_engine import UPSERT, run, sent

import reverse_etl
from reverse_etl.insider.emulator import Emulator

CRASHING_RUN = """
import os, sys
import reverse_etl
from reverse_etl.insider.http import InsiderClient

project_dir, after, full_refresh = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
seen = 0

class Crashing:  # acknowledges `after` requests into the journal, then dies like kill -9
    def __init__(self, project):
        self.inner = InsiderClient(project.config.destination)

    def deliver(self, endpoint, chunks, *, on_result, **kw):
        def journal_then_maybe_die(batch):
            global seen
            on_result(batch)
            seen += 1
            if seen >= after:
                os._exit(9)
        return self.inner.deliver(endpoint, chunks, on_result=journal_then_maybe_die, **kw)

reverse_etl.run(project_dir, environ={"INSIDER_API_KEY": "test-key"}, client_factory=Crashing,
                full_refresh=full_refresh)
"""


def crash_after(project: ProjectUnderTest, requests: int, *, full_refresh: bool = False) -> None:
    script = project.root / "crashing_run.py"
    script.write_text(CRASHING_RUN)
    done = subprocess.run([sys.executable, str(script), str(project.root), str(requests), str(int(full_refresh))],
                          capture_output=True, text=True)
    assert done.returncode == 9, done.stderr


def one_request_per_two_rows(config: dict[str, Any]) -> None:
    config["destination"].update(concurrency=1, max_batch_users=2)


def test_held_back_row_stays_listed_and_unsent(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3, max_attempts=2)
    insider_emulator.set_faults(reject=["u1"])
    run(project)
    run(project)
    for _ in range(2):  # held back, run after run, never counted as unchanged
        held = run(project)
        assert held.counts["held_back"] == 1 and held.counts["unchanged"] == 2 and held.requests == 0
        total, rows = reverse_etl.rejected_rows(project.root, "customers", environ=project.env)
        assert total == 1 and rows[0]["key"] == "u1"
    assert insider_emulator.profile(uuid="u1") is None
    # Fixed at the source, it is tried with fresh attempts and delivered once Insider accepts it.
    insider_emulator.set_faults({})
    project.sql("UPDATE raw_customers SET city = 'Rome' WHERE customer_id = 'u1'")
    assert run(project).counts["acked"] == 1
    assert insider_emulator.profile(uuid="u1")["attributes"]["city"] == "Rome"  # type: ignore[index]


def test_a_changed_payload_gets_fresh_attempts(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3, max_attempts=2)
    insider_emulator.set_faults(reject=["u1"])
    run(project)
    run(project)
    assert run(project).counts["held_back"] == 1
    project.sql("UPDATE raw_customers SET city = 'Rome' WHERE customer_id = 'u1'")
    assert run(project).counts["rejected"] == 1  # the new payload: attempt 1
    assert run(project).counts["rejected"] == 1  # attempt 2, not held back after one try


def test_actions_are_not_repeated_after_a_crash(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=6, operation="delete_users",
                           identifiers={"uuid": "customer_id"}, attributes={})
    with project.config() as config:
        config["destination"].update(concurrency=1)
    crash_after(project, 2)
    result = run(project)
    assert result.counts["recovered"] == 2 and result.counts["acked"] == 4
    deletes = Counter(str(e["body"]) for e in insider_emulator.requests())
    assert len(deletes) == 6 and set(deletes.values()) == {1}


def test_a_crash_right_after_a_mapping_change_recovers(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=6)
    with project.config() as config:
        one_request_per_two_rows(config)
        config["syncs"][0]["attributes"].pop("ltv")
    assert run(project).outcome == "success"
    with project.config() as config:
        config["syncs"][0]["attributes"].update(ltv="lifetime_value")
    crash_after(project, 1)
    result = run(project)
    assert result.outcome == "success" and result.counts["acked"] == 4
    assert all("ltv" in p["attributes"]["custom"] for p in insider_emulator.profiles())


def test_a_crashed_full_refresh_is_finished_by_the_next_run(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=6)
    with project.config() as config:
        one_request_per_two_rows(config)
    assert run(project).outcome == "success"
    insider_emulator.reset()
    crash_after(project, 1, full_refresh=True)
    assert len(sent(insider_emulator, UPSERT)) == 2
    result = run(project)
    assert result.counts["acked"] == 4  # the four rows the crashed refresh never sent
    assert Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT)) == \
        Counter(f"u{i}" for i in range(1, 7))


def run_in_timezone(project: ProjectUnderTest, tz: str) -> None:
    code = f"import reverse_etl; reverse_etl.run({str(project.root)!r}, environ={{'INSIDER_API_KEY': 'test-key'}})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "TZ": tz})
    assert done.returncode == 0, done.stderr


def test_results_do_not_depend_on_the_machine_time_zone(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=1, mode="user_events", attributes={},
                           identifiers={"uuid": "customer_id"}, event={"name": "login", "timestamp": "ts"})
    project.sql("CREATE TABLE raw_events AS SELECT 'u' || i AS customer_id, "
                "TIMESTAMPTZ '2026-11-20 10:00:00+00' - INTERVAL (i) HOUR AS ts FROM range(1, 4) t(i)")
    project.write_model("customers", "select customer_id, ts from raw_events")
    run_in_timezone(project, "UTC")
    run_in_timezone(project, "Asia/Istanbul")  # the same events: digest keys must not move
    assert Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT)) == {"u1": 1, "u2": 1, "u3": 1}
    text_dates = make_project(tmp_path / "b", insider_emulator.url, rows=1,
                              attributes={"birthday": "bday"}, identifiers={"uuid": "customer_id"})
    text_dates.sql("CREATE TABLE raw_b AS SELECT 'b1' AS customer_id, '1990-05-01' AS bday")
    text_dates.write_model("customers", "select customer_id, bday from raw_b")
    run_in_timezone(text_dates, "Asia/Istanbul")
    assert insider_emulator.profile(uuid="b1")["attributes"]["birthday"] == "1990-05-01T00:00:00Z"  # type: ignore[index]


def test_sent_events_past_the_ttl_do_not_come_back(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=1, mode="user_events", attributes={},
                           identifiers={"uuid": "customer_id"}, options={"skip_invalid_records": False},
                           event={"name": "login", "timestamp": "ts", "ttl_days": 3})
    project.sql("CREATE TABLE raw_events AS SELECT 'u' || i AS customer_id, "
                "(now() - INTERVAL 2 DAY)::TIMESTAMPTZ AS ts FROM range(1, 4) t(i)")
    project.write_model("customers", "select customer_id, ts from raw_events")
    assert run(project).counts["acked"] == 3
    with project.config() as config:  # time passes
        config["syncs"][0]["event"].update(ttl_days=1)
    project.sql("INSERT INTO raw_events VALUES ('u9', now()::TIMESTAMPTZ)")
    assert run(project).counts["acked"] == 1
    project.sql("INSERT INTO raw_events VALUES ('u10', now()::TIMESTAMPTZ)")
    last = run(project)  # the old events, still in the model, are neither resent nor invalid
    assert last.outcome == "success" and last.counts["invalid"] == 0 and last.counts["acked"] == 1


def test_plan_writes_no_state(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=2)
    reverse_etl.plan(project.root, environ=project.env)
    assert not (project.root / ".reverse_etl").exists()

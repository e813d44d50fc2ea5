"""Crash safety and the one-run-per-sync lock, with a real process killed by SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from kill_run import kill_mid_delivery
from project_factory import make_project
from test_sync_engine import UPSERT, sent

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.insider.emulator import Emulator
from reverse_etl.state import SyncState, read_journal


def test_sigkill_mid_delivery_then_rerun_loses_nothing_and_resends_no_acknowledged_row(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    rows = 3_000
    project = make_project(tmp_path / "p", insider_emulator.url, rows=rows)
    with project.config() as config:
        config["destination"].update(concurrency=2, max_batch_users=100)
    insider_emulator.set_faults(latency_ms=150)
    kill_mid_delivery(project, insider_emulator)

    # What the killed run left: a pending change set and a journal of acknowledged batches.
    state = SyncState(project.root / ".reverse_etl", "customers")
    pending = state.pending()
    assert pending is not None
    pending_path, journal_path = state.pending_paths(pending.run_id)
    journal = read_journal(journal_path)
    journaled_ids = [i for s, e in journal.acked_ranges for i in range(s, e + 1)]
    assert journaled_ids, "the killed run journaled nothing"
    with duckdb.connect() as con:
        keys = dict(con.execute(f"SELECT row_id, key FROM read_parquet('{pending_path}')").fetchall())
    journaled_keys = {keys[i] for i in journaled_ids}
    before_kill = Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT))
    assert journaled_keys <= set(before_kill)  # journal only holds what Insider acknowledged

    insider_emulator.set_faults({})
    result = reverse_etl.run(project.root, environ=project.env).syncs[0]
    assert result.outcome == "success", result.message
    assert result.counts["recovered"] == len(journaled_ids)

    after = Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT))
    resent = {uuid for uuid, n in after.items() if n > 1}
    assert not resent & journaled_keys, "an acknowledged, journaled row was sent again"
    # Only requests in flight at the kill (at most concurrency x batch) can be sent twice.
    assert len(resent) <= 2 * 100
    assert len(insider_emulator.profiles()) == rows  # nothing lost
    assert set(after) == {f"u{i}" for i in range(1, rows + 1)}
    assert state.pending() is None
    assert reverse_etl.run(project.root, environ=project.env).syncs[0].counts["to_send"] == 0


def test_second_concurrent_run_is_refused_with_the_holder(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=3)
    lock = SyncState(project.root / ".reverse_etl", "customers").lock()
    lock.acquire()
    try:
        result = CliRunner().invoke(main, ["--project", str(project.root), "run"], env=project.env)
    finally:
        lock.release()
    assert result.exit_code == 4
    assert "sync 'customers' is already running (pid " in result.stderr
    assert "Traceback" not in result.stderr
    assert insider_emulator.requests() == []
    # Once released, a run proceeds.
    assert reverse_etl.run(project.root, environ=project.env).syncs[0].counts["acked"] == 3


@pytest.mark.parametrize("signal_kind", [signal.SIGKILL])
def test_lock_dies_with_its_process(tmp_path: Path, insider_emulator: Emulator, signal_kind: int) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=2)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from reverse_etl.state import SyncState; "
        f"SyncState(Path({str(project.root / '.reverse_etl')!r}), 'customers').lock().acquire(); "
        "print('locked', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(reverse_etl.LockedError):
        SyncState(project.root / ".reverse_etl", "customers").lock().acquire()
    holder.send_signal(signal_kind)
    holder.wait()
    assert reverse_etl.run(project.root, environ=project.env).syncs[0].outcome == "success"

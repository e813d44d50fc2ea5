"""A sync through an unreliable Insider: 30% of requests fail, nothing is lost or doubled."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from project_factory import ProjectUnderTest, make_project
from test_sync_engine import UPSERT, run, sent

from reverse_etl.insider.emulator import Emulator


def deliver_under_faults(project: ProjectUnderTest, emulator: Emulator, *, rows: int,
                         batch_users: int) -> None:
    """Sync ``project`` through 30% faults (429/500/503/drops); assert every one of its
    ``rows`` users reached Insider in exactly one accepted request. Faults are off after."""
    with project.config() as config:
        config["destination"].update(max_batch_users=batch_users, max_retries=12)
    emulator.set_faults(status_429=0.1, status_500=0.05, status_503=0.05, drop=0.1,
                        retry_after=0, seed=11)
    result = run(project)
    assert result.outcome == "success", result.message
    assert result.counts["acked"] == rows
    faulted = [e for e in emulator.requests() if e["path"] == UPSERT and e["status"] != 200]
    assert faulted, "no fault was injected"
    # Every user reached Insider in exactly one accepted request, none lost.
    delivered = Counter(u["identifiers"]["uuid"] for u in sent(emulator, UPSERT))
    assert len(delivered) == rows and set(delivered.values()) == {1}
    assert len(emulator.profiles()) == rows
    emulator.set_faults({})


def test_sync_under_30_percent_faults_delivers_every_row_exactly_once(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    rows = 20_000
    project = make_project(tmp_path / "p", insider_emulator.url, rows=rows)
    deliver_under_faults(project, insider_emulator, rows=rows, batch_users=500)
    assert run(project).counts["to_send"] == 0

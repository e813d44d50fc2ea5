"""A sync through an unreliable Insider: 30% of requests fail, nothing is lost or doubled."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from project_factory import make_project
from test_sync_engine import UPSERT, run, sent

from reverse_etl.insider.emulator import Emulator


def test_sync_under_30_percent_faults_delivers_every_row_exactly_once(
        tmp_path: Path, insider_emulator: Emulator) -> None:
    rows = 20_000
    project = make_project(tmp_path / "p", insider_emulator.url, rows=rows)
    with project.config() as config:
        config["destination"].update(max_batch_users=500, max_retries=12)
    insider_emulator.set_faults(status_429=0.1, status_500=0.05, status_503=0.05, drop=0.1,
                                retry_after=0, seed=11)
    result = run(project)
    assert result.outcome == "success", result.message
    assert result.counts["acked"] == rows
    faulted = [e for e in insider_emulator.requests() if e["path"] == UPSERT and e["status"] != 200]
    assert faulted, "no fault was injected"
    # Every user reached Insider in exactly one accepted request, none lost.
    delivered = Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT))
    assert len(delivered) == rows and set(delivered.values()) == {1}
    assert len(insider_emulator.profiles()) == rows
    insider_emulator.set_faults({})
    assert run(project).counts["to_send"] == 0

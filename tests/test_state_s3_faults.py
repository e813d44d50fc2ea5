"""The fault and kill -9 scenarios of the local store, with state on S3 (moto's server on 127.0.0.1).

Each rerun happens from a fresh checkout directory (another "host"), so only the
bucket carries state between runs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_delivery_faults import deliver_under_faults
from test_segments import segment_project, uploads
from test_state_s3 import _fresh_copy, _kill_run_after, _s3_project, s3_endpoint, s3_env
from test_sync_engine import UPSERT, run, sent

from reverse_etl.insider.emulator import Emulator

__all__ = ["s3_endpoint", "s3_env"]  # fixtures, used by name


def test_faults_with_s3_state_deliver_every_row_exactly_once(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str]) -> None:
    rows = 5_000
    project = _s3_project(tmp_path / "p", insider_emulator.url, s3_env, rows=rows)
    deliver_under_faults(project, insider_emulator, rows=rows, batch_users=250)
    assert run(_fresh_copy(project, tmp_path / "fresh")).counts["to_send"] == 0


def test_sigkill_under_faults_then_rerun_elsewhere_loses_and_doubles_nothing(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str]) -> None:
    rows = 2_000
    project = _s3_project(tmp_path / "p", insider_emulator.url, s3_env, rows=rows, lease_seconds=2)
    with project.config() as config:
        config["destination"].update(concurrency=2, max_batch_users=100, max_retries=12)
    insider_emulator.set_faults(latency_ms=100, status_500=0.2, retry_after=0, seed=3)
    _kill_run_after(project, insider_emulator, upserts=6)  # also clears the faults
    before = Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT))
    fresh = _fresh_copy(project, tmp_path / "other-host")
    time.sleep(2.5)  # the killed run's lease expires unrenewed
    result = run(fresh)
    assert result.outcome == "success", result.message
    assert result.counts["recovered"] > 0
    after = Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT))
    assert len(after) == rows and len(insider_emulator.profiles()) == rows  # nothing lost
    resent = {u for u, n in after.items() if n > 1}
    assert len(resent) <= 2 * 100  # only what was in flight at the kill
    assert set(before) - resent  # what was journaled went out once
    assert run(_fresh_copy(fresh, tmp_path / "third")).counts["to_send"] == 0


def test_lease_dies_with_its_process_once_it_expires(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str]) -> None:
    project = _s3_project(tmp_path / "p", insider_emulator.url, s3_env, rows=2, lease_seconds=2)
    code = ("import sys, time; from pathlib import Path; import reverse_etl; "
            "from reverse_etl.state.stores import open_sync_state; "
            f"p = reverse_etl.load_project(Path({str(project.root)!r}), {project.env!r}); "
            "open_sync_state(p.state_dir, p.config.state, 'customers').lock().acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    fresh = _fresh_copy(project, tmp_path / "other")
    refused = run(fresh)
    assert refused.outcome == "failed" and "lease" in (refused.message or "")
    holder.kill()
    holder.wait()
    time.sleep(2.5)  # the lease is not renewed any more: it expires
    assert run(fresh).outcome == "success"
    assert len(insider_emulator.profiles()) == 2


def test_segment_sync_with_s3_state_uploads_once_across_hosts(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str]) -> None:
    # A segment's upload record (members digest, version) lives in the bucket with the
    # rest of the state: another host neither re-uploads nor reuses a version's name.
    project = segment_project(tmp_path, insider_emulator)
    with project.config() as config:
        config["state"] = {"path": f"s3://{s3_env['S3_BUCKET']}/segments"}
    first = run(project)
    assert first.outcome == "partial", first.message  # one invalid email, listed by `rejected`
    assert [b["segmentName"] for b in uploads(insider_emulator)] == ["vip_customers"]

    fresh = _fresh_copy(project, tmp_path / "fresh")
    second = run(fresh)
    assert second.counts.get("segment_uploads", 0) == 0, second.message
    assert len(uploads(insider_emulator)) == 1

    fresh.sql("INSERT INTO vip_source VALUES ('user3@example.com')")
    third = run(_fresh_copy(fresh, tmp_path / "third"))
    assert third.counts["segment_uploads"] == 1, third.message
    assert [b["segmentName"] for b in uploads(insider_emulator)] == ["vip_customers", "vip_customers_v2"]


pytestmark = pytest.mark.timeout(120)

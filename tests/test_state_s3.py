"""State on S3 (moto's server on 127.0.0.1): fresh working directories, kill -9, the lease, copy."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from project_factory import ProjectUnderTest, make_project
from test_sync_engine import UPSERT, sent

import reverse_etl
from reverse_etl.cli import main
from reverse_etl.errors import LockedError
from reverse_etl.insider.emulator import Emulator
from reverse_etl.state import objectstore
from reverse_etl.state.lease import Lease
from reverse_etl.state.objectstore import Conflict, ObjectStore

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 emulator on 127.0.0.1, for the whole session."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a runner would have (endpoint override, throwaway keys), and a bucket."""
    env = {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "S3_BUCKET": f"state-{uuid4().hex[:12]}"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    objectstore._STORES.clear()
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=env["S3_BUCKET"])
    yield env
    objectstore._STORES.clear()


def _s3_project(root: Path, api_url: str, env: dict[str, str], rows: int, **state: Any) -> ProjectUnderTest:
    project = make_project(root, api_url, rows=rows)
    with project.config() as config:
        config["state"] = {"path": f"s3://{env['S3_BUCKET']}/reverse-etl", **state}
    return project


def _fresh_copy(project: ProjectUnderTest, target: Path) -> ProjectUnderTest:
    """The project directory as a new CI runner checks it out: no local .reverse_etl."""
    shutil.copytree(project.root, target, ignore=shutil.ignore_patterns(".reverse_etl"))
    return ProjectUnderTest(root=target, env=project.env)


def _upserts(emu: Emulator) -> int:
    return sum(1 for e in emu.requests() if e["path"] == UPSERT and e["status"] == 200)


def _kill_run_after(project: ProjectUnderTest, emulator: Emulator, *, upserts: int) -> None:
    """Start `reverse-etl run` in a process and SIGKILL it once ``upserts`` requests were answered."""
    proc = subprocess.Popen([sys.executable, "-m", "reverse_etl", "--project", str(project.root), "run"],
                            env={**os.environ, **project.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _upserts(emulator) < upserts:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "delivery never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    emulator.set_faults({})


def test_conditional_writes_are_supported(s3_env: dict[str, str]) -> None:
    store = ObjectStore(f"s3://{s3_env['S3_BUCKET']}/probe")
    etag = store.put("a.json", b"1", create=True)
    with pytest.raises(Conflict):
        store.put("a.json", b"2", create=True)  # If-None-Match: *
    new = store.put("a.json", b"3", if_etag=etag)
    with pytest.raises(Conflict):
        store.put("a.json", b"4", if_etag=etag)  # If-Match on a stale e-tag
    blob = store.get("a.json")
    assert blob is not None and blob.data == b"3" and blob.etag == new


def test_second_run_from_a_fresh_checkout_sends_nothing(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str]) -> None:
    project = _s3_project(tmp_path / "first", insider_emulator.url, s3_env, rows=25)
    first = reverse_etl.run(project.root, environ=project.env).syncs[0]
    assert first.outcome == "success", first.message
    assert first.counts["acked"] == 25 and len(insider_emulator.profiles()) == 25
    assert _upserts(insider_emulator) > 0

    before = _upserts(insider_emulator)
    fresh = _fresh_copy(project, tmp_path / "second")
    second = reverse_etl.run(fresh.root, environ=fresh.env).syncs[0]
    assert second.outcome == "success", second.message
    assert second.full_resend_reason is None
    assert second.counts["to_send"] == 0
    assert _upserts(insider_emulator) == before  # 0 upserts
    # plan reads the bucket without the lease and writes nothing there.
    planned = reverse_etl.plan(_fresh_copy(project, tmp_path / "plan").root, environ=project.env).syncs[0]
    assert planned.outcome == "planned" and planned.counts["to_send"] == 0

    # A change made meanwhile goes out from a third checkout, and only it.
    fresh.sql("UPDATE raw_customers SET city = 'Ankara' WHERE customer_id = 'u3'")
    third = _fresh_copy(fresh, tmp_path / "third")
    changed = reverse_etl.run(third.root, environ=third.env).syncs[0]
    assert changed.counts["changed"] == 1 and changed.counts["acked"] == 1
    # The ledger lives in the bucket too.
    assert [r.outcome for r in reverse_etl.history(third.root, environ=third.env)] == ["success"] * 3


def test_sigkill_mid_delivery_then_rerun_in_a_fresh_directory(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str]) -> None:
    rows = 3_000
    project = _s3_project(tmp_path / "p", insider_emulator.url, s3_env, rows=rows, lease_seconds=2)
    with project.config() as config:
        config["destination"].update(concurrency=2, max_batch_users=100)
    insider_emulator.set_faults(latency_ms=150)
    _kill_run_after(project, insider_emulator, upserts=8)
    store = ObjectStore(f"s3://{s3_env['S3_BUCKET']}/reverse-etl")
    journal_objects = [p for p in store.list("customers/") if "/journal-" in p]
    assert journal_objects, "the killed run journaled nothing in the bucket"
    pending = [p for p in store.list("customers/") if p.endswith(".parquet") and "/pending-" in p]
    assert len(pending) == 1
    store.download(pending[0], tmp_path / "pending.parquet")
    keys = dict(zip(*pq.read_table(tmp_path / "pending.parquet", columns=["row_id", "key"]).to_pydict().values(),
                    strict=True))
    journaled_keys = set()
    for name in journal_objects:
        blob = store.get(name)
        assert blob is not None
        for first, last in orjson.loads(blob.data)["a"]:
            journaled_keys |= {keys[i] for i in range(first, last + 1)}

    fresh = _fresh_copy(project, tmp_path / "fresh")
    # The dead run's lease still holds until it expires; then the rerun takes it over.
    refused = reverse_etl.run(fresh.root, environ=fresh.env).syncs[0]
    assert refused.failure == "lock" and "already running (run " in (refused.message or "")
    time.sleep(2.5)
    before_rerun = Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT))
    result = reverse_etl.run(fresh.root, environ=fresh.env).syncs[0]
    assert result.outcome == "success", result.message
    assert result.counts["recovered"] > 0
    after = Counter(u["identifiers"]["uuid"] for u in sent(insider_emulator, UPSERT))
    resent = {uuid for uuid, n in after.items() if n > 1}
    assert not resent & journaled_keys, "an acknowledged, journaled row was sent again"
    assert len(resent) <= 2 * 100  # only requests in flight at the kill
    assert result.counts["recovered"] == len(journaled_keys)
    assert sum(after.values()) - sum(before_rerun.values()) == result.counts["to_send"]
    assert len(insider_emulator.profiles()) == rows and set(after) == {f"u{i}" for i in range(1, rows + 1)}
    assert not [p for p in store.list("customers/") if "/journal-" in p or "pending" in p]
    again = _fresh_copy(project, tmp_path / "again")
    assert reverse_etl.run(again.root, environ=again.env).syncs[0].counts["to_send"] == 0


def test_concurrent_run_elsewhere_is_refused_by_the_lease(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str]) -> None:
    project = _s3_project(tmp_path / "p", insider_emulator.url, s3_env, rows=3)
    other = _fresh_copy(project, tmp_path / "other")
    store = ObjectStore(f"s3://{s3_env['S3_BUCKET']}/reverse-etl")
    lease = Lease(store, "customers", run_id="run-elsewhere", seconds=30)
    lease.acquire()
    try:
        result = CliRunner().invoke(main, ["--project", str(other.root), "run"], env=other.env)
        with pytest.raises(LockedError, match="run-elsewhere"):
            Lease(store, "customers", seconds=30).acquire()
    finally:
        lease.release()
    assert result.exit_code == 4, result.output
    assert "sync 'customers' is already running (run run-elsewhere, pid " in result.stderr
    assert "Traceback" not in result.stderr
    assert insider_emulator.requests() == []
    assert reverse_etl.history(other.root, environ=other.env)[-1].failure == "lock"
    assert reverse_etl.run(project.root, environ=project.env).syncs[0].counts["acked"] == 3


def test_unreachable_state_store_fails_before_sending(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    project = _s3_project(tmp_path / "p", insider_emulator.url, s3_env, rows=3)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    objectstore._STORES.clear()
    result = CliRunner().invoke(main, ["--project", str(project.root), "run"], env=project.env)
    assert result.exit_code == 4
    line = result.stderr.strip().splitlines()[-1]
    assert f"state store s3://{s3_env['S3_BUCKET']}/reverse-etl cannot be reached" in line
    assert "testing" not in result.stderr  # no secret
    assert insider_emulator.requests() == []


def test_credentials_in_syncs_yml_are_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    with project.config() as config:
        config["state"] = {"path": "s3://bucket/x", "aws_secret_access_key": "abc"}
    with pytest.raises(reverse_etl.ConfigError, match="credentials never go in syncs"):
        reverse_etl.load_project(project.root, environ=project.env)
    with project.config() as config:
        config["state"] = {"path": "s3://AKIA:secret@bucket/x"}
    with pytest.raises(reverse_etl.ConfigError, match="credentials never go in syncs"):
        reverse_etl.load_project(project.root, environ=project.env)


def test_state_copy_to_s3_and_back_keeps_a_crashed_runs_journal(
        tmp_path: Path, insider_emulator: Emulator, s3_env: dict[str, str]) -> None:
    rows = 2_000
    project = make_project(tmp_path / "p", insider_emulator.url, rows=rows)
    with project.config() as config:
        config["destination"].update(concurrency=2, max_batch_users=100)
    insider_emulator.set_faults(latency_ms=150)
    _kill_run_after(project, insider_emulator, upserts=6)

    url = f"s3://{s3_env['S3_BUCKET']}/moved"
    copied = CliRunner().invoke(main, ["--project", str(project.root), "state", "copy", "--to", url],
                                env=project.env)
    assert copied.exit_code == 0, copied.output
    assert "copied the state of 1 sync(s) (customers)" in copied.output
    # ... and back again, into a local directory of a second checkout (the journal survives both ways)
    moved = _fresh_copy(project, tmp_path / "moved")
    with moved.config() as config:
        config["state"] = {"path": url}
    back = CliRunner().invoke(main, ["--project", str(moved.root), "state", "copy", "--to", "local-state"],
                              env=moved.env)
    assert back.exit_code == 0, back.output
    assert list((moved.root / "local-state" / "customers").glob("journal-*.jsonl"))

    result = reverse_etl.run(moved.root, environ=moved.env).syncs[0]  # from S3
    assert result.outcome == "success", result.message
    assert result.counts["recovered"] > 0
    assert len(insider_emulator.profiles()) == rows


def test_lease_is_renewed_while_held_and_taken_over_only_after_it_expires(s3_env: dict[str, str]) -> None:
    store = ObjectStore(f"s3://{s3_env['S3_BUCKET']}/leases")
    holder = Lease(store, "orders", run_id="r1", seconds=2)
    holder.acquire()
    try:
        time.sleep(3)  # longer than its term: the renewal thread keeps it alive
        with pytest.raises(LockedError, match=r"run r1, pid \d+ on .* since "):
            Lease(store, "orders", run_id="r2", seconds=2).acquire()
    finally:
        holder.release()
    assert store.get("orders/lease.json") is None  # released: deleted

    crashed = Lease(store, "orders", run_id="r3", seconds=2)
    crashed.acquire()
    crashed._stop.set()  # as if its process died: no more renewals
    time.sleep(2.5)
    successor = Lease(store, "orders", run_id="r4", seconds=30)
    successor.acquire()  # expired: taken over by a conditional write
    try:
        with pytest.raises(Conflict):  # the old holder's renewal (its e-tag) now fails
            store.put("orders/lease.json", b"{}", if_etag=crashed._etag)
    finally:
        successor.release()

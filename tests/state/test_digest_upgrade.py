"""State written by earlier versions (hex-text digests) keeps working after an upgrade, resending nothing.

Each test makes a project's state look as an older version left it: every digest of its
snapshot, overlay or pending change set rewritten as the md5's hex text, with the old
text sentinels, and meta.json's checksums updated as that version would have written
them. What a user observes: the next run sends nothing, a changed row sends only that
row, Insider ends up holding the model, and the snapshot ends up in today's form.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from project_factory import ProjectUnderTest, make_project
from test_snapshot_edge_cases import crash_after
from test_snapshot_overlay import insider_misses, meta, with_overlays
from test_sync_engine import run

import reverse_etl
from reverse_etl.insider.emulator import Emulator
from reverse_etl.state.digests import RESEND_DIGEST, to_hex_sql
from reverse_etl.state.store import file_sha256


def state_dir(project: ProjectUnderTest) -> Path:
    return project.root / ".reverse_etl" / "customers"


def make_hex(path: Path) -> None:
    """Rewrite ``path``'s digests as hex text, the form earlier versions wrote."""
    old = f"CASE WHEN digest = {RESEND_DIGEST} THEN 'full-resend' ELSE {to_hex_sql('digest')} END"
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE t AS SELECT * REPLACE ({old} AS digest) FROM read_parquet('{path}')")
        con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    assert digest_is_text(path)


def digest_is_text(path: Path) -> bool:
    return str(pq.read_schema(path).field("digest").type) == "string"


def digest_is_todays(path: Path) -> bool:
    """16 fixed bytes per digest (a UUID column), the form this version writes."""
    return str(pq.read_schema(path).field("digest").type.storage_type) == "fixed_size_binary[16]"


def downgrade_snapshot(project: ProjectUnderTest) -> list[Path]:
    """The current snapshot's files in the old form, meta.json's checksums to match."""
    meta_path = state_dir(project) / "meta.json"
    content = json.loads(meta_path.read_text())
    files = [state_dir(project) / content[k] for k in ("snapshot", "overlay") if content.get(k)]
    for path in files:
        make_hex(path)
        content["checksums"][path.name] = file_sha256(path)
    meta_path.write_text(json.dumps(content))
    return files


def test_an_old_snapshot_sends_nothing_then_only_what_changed(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=40)
    assert run(project).counts["acked"] == 40
    (base,) = downgrade_snapshot(project)

    unchanged = run(project)
    assert unchanged.outcome == "success" and unchanged.counts["to_send"] == 0 and unchanged.requests == 0
    project.sql("UPDATE raw_customers SET city = 'Ghent' WHERE customer_id = 'u7'")
    changed = run(project)
    assert changed.counts["to_send"] == 1 and changed.counts["acked"] == 1
    assert insider_emulator.profile(uuid="u7")["attributes"]["city"] == "Ghent"  # type: ignore[index]
    assert insider_misses(insider_emulator, project) == []
    # The first run that changed anything wrote the snapshot in today's form.
    current = state_dir(project) / meta(project).snapshot  # type: ignore[operator]
    assert current != base and digest_is_todays(current)
    assert run(project).counts["to_send"] == 0


def test_an_old_base_and_overlay_read_as_one_snapshot(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = with_overlays(make_project(tmp_path / "p", insider_emulator.url, rows=40, on_removed="delete_user"))
    run(project)
    project.sql("UPDATE raw_customers SET city = 'Oslo' WHERE customer_id = 'u3'")
    project.sql("DELETE FROM raw_customers WHERE customer_id = 'u4'")
    run(project)
    assert meta(project).overlay is not None  # a base and an overlay (with a tombstone)
    assert len(downgrade_snapshot(project)) == 2

    assert run(project).counts["to_send"] == 0
    project.sql("UPDATE raw_customers SET city = 'Bergen' WHERE customer_id = 'u3'")
    changed = run(project)
    assert changed.counts["to_send"] == 1 and changed.counts["removed"] == 0
    assert insider_misses(insider_emulator, project) == []
    assert digest_is_todays(state_dir(project) / meta(project).snapshot)  # type: ignore[operator]
    assert run(project).counts["to_send"] == 0


def test_a_change_set_left_by_an_old_crash_is_recovered(tmp_path: Path, insider_emulator: Emulator) -> None:
    project = make_project(tmp_path / "p", insider_emulator.url, rows=30)
    with project.config() as config:  # one user per request: the crash leaves most unsent
        config["destination"].update(concurrency=1, max_batch_users=1)
    run(project)
    project.sql("UPDATE raw_customers SET city = 'Lyon'")
    crash_after(project, 5)
    (pending,) = state_dir(project).glob("pending-*.parquet")
    make_hex(pending)
    downgrade_snapshot(project)

    recovered = run(project)
    assert recovered.outcome == "success" and recovered.counts["recovered"] == 5
    assert recovered.counts["acked"] == 25  # the five acknowledged before the crash are not sent again
    assert insider_misses(insider_emulator, project) == []
    assert reverse_etl.plan(project.root, environ=project.env).syncs[0].counts["to_send"] == 0

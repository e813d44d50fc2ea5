"""``engine: warehouse`` on Snowflake: the real connector against a fakesnow server, into the emulator."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kill_run import kill_mid_delivery
from project_factory import ProjectUnderTest, base_config
from test_postgres_engine import sent_since
from test_sync_engine import UPSERT, USER_DELETE

import reverse_etl
from reverse_etl.insider.emulator import Emulator
from reverse_etl.state import SyncState, read_journal

SEED = """
CREATE OR REPLACE TABLE raw_customers AS
SELECT 'u' || seq4() + 1 AS customer_id, 'user' || (seq4() + 1) || '@example.com' AS email,
       'Name' || (seq4() + 1) AS first_name, 'City' || ((seq4() + 1) % 7) AS city,
       ((seq4() + 1) * 10.5)::FLOAT AS lifetime_value
FROM TABLE(GENERATOR(ROWCOUNT => {n}))
"""


class SnowProject(ProjectUnderTest):
    """A project reading a fakesnow database, with ``engine: warehouse``."""

    server: Any
    database: str

    def snow(self, *statements: str) -> list[tuple[Any, ...]]:
        with self.server.connect(self.database) as conn, conn.cursor() as cur:
            rows: list[tuple[Any, ...]] = []
            for statement in statements:
                cur.execute(statement)
                rows = list(cur.fetchall()) if cur.description else []
            return rows


def make_snow_project(root: Path, server: Any, api_url: str, rows: int, **sync: Any) -> SnowProject:
    root.mkdir(parents=True, exist_ok=True)
    project = SnowProject(root=root, env={"INSIDER_API_KEY": "test-key", "SNOWFLAKE_PASSWORD": "pw-snow-1"})
    project.server, project.database = server, f"DB_{uuid.uuid4().hex[:10].upper()}"
    server.execute(project.database, SEED.format(n=rows))
    project.write_model("customers", "select customer_id, email, first_name, city, lifetime_value from raw_customers")
    config = base_config(api_url, attributes={"name": "first_name", "city": "city", "ltv": "lifetime_value"}, **sync)
    config["source"] = {**server.config(project.database, password='{{ env_var("SNOWFLAKE_PASSWORD") }}'),
                        "engine": "warehouse"}
    project.write_config(config)
    return project


def run(project: SnowProject) -> reverse_etl.SyncResult:
    return reverse_etl.run(project.root, environ=project.env).syncs[0]


def assert_insider_equals_model(project: SnowProject, emu: Emulator) -> None:
    rows = project.snow("SELECT customer_id, email, first_name, city, lifetime_value FROM raw_customers")
    profiles = {p["identifiers"]["uuid"]: p for p in emu.profiles()}
    assert set(profiles) == {r[0] for r in rows}
    for uuid_, email, name, city, ltv in rows:
        attrs = profiles[uuid_]["attributes"]
        assert profiles[uuid_]["identifiers"]["email"] == email
        assert (attrs.get("name"), attrs.get("city"), attrs["custom"].get("ltv")) == (name, city, ltv)


@pytest.fixture()
def project(tmp_path: Path, fakesnow_server: Any, insider_emulator: Emulator) -> SnowProject:
    return make_snow_project(tmp_path / "p", fakesnow_server, insider_emulator.url, 300, on_removed="delete_user")


def test_snowflake_first_no_change_one_percent_and_removals(project: SnowProject, insider_emulator: Emulator) -> None:
    first = run(project)
    assert first.outcome == "success", first.message
    assert (first.counts["scanned"], first.counts["transferred"], first.counts["acked"]) == (300, 300, 300)
    assert_insider_equals_model(project, insider_emulator)
    assert project.snow("SELECT count(*) FROM REVERSE_ETL.SNAPSHOT_CUSTOMERS") == [(300,)]

    second = run(project)
    assert (second.counts["scanned"], second.counts["transferred"], second.requests) == (300, 0, 0)
    # fakesnow has no ALTER SESSION SET QUERY_TAG: the note falls back to the connect-time tag and ids.
    note = next(n for n in second.notes if n.startswith("warehouse engine (snowflake)"))
    assert "QUERY_TAG" in note and "query ids: " in note and "query ids: none" not in note, note

    mark = len(insider_emulator.requests())
    project.snow("UPDATE raw_customers SET city = 'Paris' WHERE customer_id IN ('u1', 'u2', 'u3')")
    third = run(project)
    assert third.outcome == "success", third.message
    assert (third.counts["transferred"], third.counts["changed"]) == (3, 3)
    assert sorted(u["identifiers"]["uuid"] for u in sent_since(insider_emulator, mark, UPSERT)) == ["u1", "u2", "u3"]
    assert_insider_equals_model(project, insider_emulator)

    mark = len(insider_emulator.requests())
    project.snow("DELETE FROM raw_customers WHERE customer_id IN ('u10', 'u11')")
    fourth = run(project)
    assert (fourth.counts["removed"], fourth.counts["transferred"]) == (2, 2)
    assert len(sent_since(insider_emulator, mark, USER_DELETE)) == 2
    assert_insider_equals_model(project, insider_emulator)
    assert run(project).counts["transferred"] == 0


def test_snowflake_mapping_change_resends_in_full_then_nothing(project: SnowProject, insider_emulator: Emulator) -> None:
    run(project)
    with project.config() as config:
        config["syncs"][0]["attributes"]["town"] = config["syncs"][0]["attributes"].pop("city")
    mark = len(insider_emulator.requests())
    changed = run(project)
    assert changed.outcome == "success", changed.message
    assert changed.full_resend_reason is not None and "mapping" in changed.full_resend_reason
    assert changed.counts["transferred"] == 300 and len(sent_since(insider_emulator, mark, UPSERT)) == 300
    assert insider_emulator.profile(uuid="u5")["attributes"]["custom"]["town"] == "City5"  # type: ignore[index]
    assert run(project).counts["transferred"] == 0


def test_snowflake_kill_mid_delivery_loses_nothing_and_resends_nothing_acknowledged(
        tmp_path: Path, fakesnow_server: Any, insider_emulator: Emulator) -> None:
    rows = 2_000
    project = make_snow_project(tmp_path / "k", fakesnow_server, insider_emulator.url, rows)
    with project.config() as config:
        config["destination"].update(concurrency=2, max_batch_users=100)
    insider_emulator.set_faults(latency_ms=150)
    kill_mid_delivery(project, insider_emulator, after_acked=6, timeout=90)
    state = SyncState(project.root / ".reverse_etl", "customers")
    pending = state.pending()
    assert pending is not None
    journaled = sum(e - s + 1 for s, e in read_journal(state.pending_paths(pending.run_id)[1]).acked_ranges)
    insider_emulator.set_faults({})
    result = run(project)
    assert result.outcome == "success", result.message
    assert result.counts["recovered"] == journaled > 0
    after = Counter(u["identifiers"]["uuid"] for u in sent_since(insider_emulator, 0, UPSERT))
    assert sum(1 for n in after.values() if n > 1) <= 2 * 100  # only what was in flight at the kill
    assert_insider_equals_model(project, insider_emulator)
    assert project.snow("SELECT count(*) FROM REVERSE_ETL.SNAPSHOT_CUSTOMERS") == [(rows,)]
    assert run(project).counts["transferred"] == 0


@pytest.mark.slow
def test_snowflake_at_scale_no_change_moves_nothing_and_one_percent_moves_one_percent(
        tmp_path: Path, fakesnow_server: Any, insider_emulator: Emulator) -> None:
    """The issue's "Done when" on fakesnow at 1M rows, counted by the tool (``REVERSE_ETL_WH_TEST_ROWS``
    sets another size): a no-change run transfers 0 rows, a 1% run exactly 1%."""
    rows = int(os.environ.get("REVERSE_ETL_WH_TEST_ROWS", "1000000"))
    project = make_snow_project(tmp_path / "big", fakesnow_server, insider_emulator.url, rows)
    with project.config() as config:
        config["destination"].update(concurrency=8, max_batch_users=1000)
    first = run(project)
    assert first.outcome == "success", first.message
    assert first.counts["transferred"] == rows and len(insider_emulator.profiles()) == rows
    quiet = run(project)
    assert (quiet.counts["scanned"], quiet.counts["transferred"], quiet.requests) == (rows, 0, 0)
    project.snow("UPDATE raw_customers SET city = 'Changed' WHERE substr(customer_id, 2)::INT % 100 = 0")
    mark = len(insider_emulator.requests())
    one_pct = run(project)
    assert one_pct.outcome == "success", one_pct.message
    assert one_pct.counts["transferred"] == one_pct.counts["changed"] == rows // 100
    assert len(sent_since(insider_emulator, mark, UPSERT)) == rows // 100

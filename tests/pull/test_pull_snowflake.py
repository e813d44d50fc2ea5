"""``pull`` into Snowflake: the real connector's ``write_pandas`` (PUT + COPY INTO) on fakesnow."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from project_factory import base_config, make_project
from pull_helpers import export_def, seed

import reverse_etl
from reverse_etl.insider.emulator import Emulator

pytest.importorskip("snowflake.connector")
pytest.importorskip("fakesnow")

from sources.fakesnow_helpers import FakeSnowflake, serve_fakesnow


@pytest.fixture(scope="module")
def fakesnow() -> Iterator[FakeSnowflake]:
    with serve_fakesnow() as server:
        yield server


def test_pull_into_snowflake(tmp_path: Path, insider_emulator: Emulator,
                             fakesnow: FakeSnowflake) -> None:
    seed(insider_emulator)
    database = f"DB_{uuid.uuid4().hex[:10].upper()}"
    fakesnow.execute(database, f"CREATE DATABASE IF NOT EXISTS {database}",
                     f"CREATE SCHEMA IF NOT EXISTS {database}.PUBLIC")
    project = make_project(tmp_path / "p", insider_emulator.url, rows=1)
    config: dict[str, Any] = base_config(insider_emulator.url)
    config["source"] = fakesnow.config(database, password='{{ env_var("SF_PASSWORD") }}')
    config["exports"] = [export_def(fmt="json")]
    project.write_config(config)
    env = {**project.env, "SF_PASSWORD": "s3cret-Pa55word-abc"}

    result = reverse_etl.pull(project.root, "activity", environ=env)

    assert (result.warehouse, result.rows) == ("snowflake", 6)
    with fakesnow.connect(database) as conn, conn.cursor() as cur:
        # Insider's v1 columns (a_c_tier, e_c_coupon, ...) arrive under clean names.
        cur.execute("SELECT EVENT_NAME, UUID, NAME, TIER, C_PRODUCT_ID, PRODUCT_ID, COUPON "
                    "FROM INSIDER_ACTIVITY ORDER BY EVENT_NAME NULLS FIRST, UUID, PRODUCT_ID")
        rows = cur.fetchall()
    assert rows[:3] == [(None, "u1", "Ada", "gold", "P-fav", None, None),
                        (None, "u2", "Bob", "silver", None, None, None),
                        (None, "u3", None, None, None, None, None)]
    assert [(r[1], r[5], r[6]) for r in rows[3:]] == [
        ("u1", "P1", "SPRING"), ("u1", "P2", None), ("u2", "P1", None)]

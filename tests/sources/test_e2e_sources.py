"""The example project end to end on Snowflake (fakesnow) and SQLite, against the DuckDB run.

The repo's own ``syncs.yml`` and ``models/*.sql`` run twice (seed, then
``warehouse/changes.sql``) with the DuckDB source; the same data, mirrored into
a fakesnow Snowflake or a SQLite file, must leave the emulator holding exactly
the same profiles, with the same counts at every run.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fakesnow_helpers import FakeSnowflake

import reverse_etl
from reverse_etl.insider.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]
COLUMNS = (
    "customer_id, email, phone, first_name, last_name, country, city, birthday, email_optin, "
    "lifetime_value, favorite_categories, signed_up_at"
)
# Unquoted names: Snowflake stores and returns them upper case.
SNOWFLAKE_TABLE = (
    "CREATE OR REPLACE TABLE raw_customers (customer_id VARCHAR, email VARCHAR, phone VARCHAR, "
    "first_name VARCHAR, last_name VARCHAR, country VARCHAR, city VARCHAR, birthday DATE, "
    "email_optin BOOLEAN, lifetime_value NUMBER(10, 2), favorite_categories ARRAY, "
    "signed_up_at TIMESTAMP_NTZ)"
)
SQLITE_TABLE = (
    "CREATE TABLE raw_customers (customer_id TEXT, email TEXT, phone TEXT, first_name TEXT, "
    "last_name TEXT, country TEXT, city TEXT, birthday DATE, email_optin BOOLEAN, "
    "lifetime_value NUMERIC(10, 2), favorite_categories JSON, signed_up_at TIMESTAMP)"
)
COUNTS = ("added", "changed", "removed", "unchanged", "invalid", "to_send", "acked", "rejected")

Mirror = Callable[[list[tuple[Any, ...]]], None]
"""Copies raw_customers rows into the warehouse under test."""


def _example_project(root: Path, source: dict[str, Any]) -> Path:
    """The repo's example project in ``root``, its ``source:`` replaced."""
    root.mkdir(parents=True)
    text = (REPO / "syncs.yml").read_text()
    # JSON is YAML: the source becomes one flow mapping, templates left untouched.
    text, replaced = re.subn(
        r"(?m)^source:.*\n(?:[ \t]+.*\n)*", lambda _: f"source: {json.dumps(source)}\n", text
    )
    assert replaced == 1
    (root / "syncs.yml").write_text(text)
    shutil.copytree(REPO / "models", root / "models")
    return root


def _duckdb_rows(root: Path, script: str) -> list[tuple[Any, ...]]:
    """Run a warehouse/*.sql script on the project's DuckDB; return raw_customers."""
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        con.execute((REPO / "warehouse" / script).read_text())
        return con.execute(f"SELECT {COLUMNS} FROM raw_customers ORDER BY customer_id").fetchall()


def _run_example(root: Path, emu: Emulator, env: dict[str, str], mirror: Mirror) -> dict[str, Any]:
    """Seed, run, change, run: counts of both runs and the emulator's final profiles."""
    observed: dict[str, Any] = {}
    for step, script in (("first", "seed.sql"), ("second", "changes.sql")):
        mirror(_duckdb_rows(root, script))
        result = reverse_etl.run(root, environ=env)
        assert result.exit_code == 0, [(s.sync, s.outcome, s.message) for s in result.syncs]
        observed[step] = {s.sync: {k: s.counts.get(k, 0) for k in COUNTS} for s in result.syncs}
    observed["profiles"] = _profiles(emu)
    return observed


def _profiles(emu: Emulator) -> dict[str, dict[str, Any]]:
    # insider_id is the emulator's own numbering, which follows arrival order.
    return {
        p["identifiers"]["uuid"]: {k: v for k, v in p.items() if k != "insider_id"}
        for p in emu.profiles()
    }


@pytest.fixture
def env(insider_emulator: Emulator) -> dict[str, str]:
    return {
        "INSIDER_PARTNER": "acme",
        "INSIDER_API_KEY": "test-key",
        "INSIDER_API_URL": insider_emulator.url,
        "INSIDER_FPS_URL": insider_emulator.url,
    }


@pytest.fixture
def duckdb_run(tmp_path: Path, insider_emulator: Emulator, env: dict[str, str]) -> dict[str, Any]:
    """What the example project does on its own DuckDB warehouse; the emulator is reset after."""
    root = _example_project(tmp_path / "duckdb", {"type": "duckdb", "path": "warehouse.duckdb"})
    observed = _run_example(root, insider_emulator, env, lambda rows: None)
    # 1,000 seeded + 3 added; the 2 removed stay (customer_profiles: on_removed: ignore).
    assert len(observed["profiles"]) == 1_003
    second = observed["second"]["customer_profiles"]
    assert (second["added"], second["changed"], second["removed"]) == (3, 5, 2)
    insider_emulator.reset()
    return observed


def _snowflake_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    if isinstance(value, list):
        value = json.dumps(value)
    elif isinstance(value, dt.datetime):
        value = value.isoformat(sep=" ")
    elif isinstance(value, dt.date):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


def test_example_project_on_snowflake_matches_duckdb(
    tmp_path: Path, fakesnow_server: FakeSnowflake, database: str, insider_emulator: Emulator,
    env: dict[str, str], duckdb_run: dict[str, Any],
) -> None:
    root = _example_project(tmp_path / "snowflake", fakesnow_server.config(
        database, password="{{ env_var('SNOWFLAKE_PASSWORD') }}", query_tag="reverse_etl:e2e",
    ))

    def mirror(rows: list[tuple[Any, ...]]) -> None:
        values = ", ".join("(" + ", ".join(map(_snowflake_literal, row)) + ")" for row in rows)
        fakesnow_server.execute(
            database,
            SNOWFLAKE_TABLE,
            # VALUES holds literals only in Snowflake: convert in the SELECT.
            "INSERT INTO raw_customers SELECT column1, column2, column3, column4, column5, column6, "
            "column7, column8::DATE, column9, column10, PARSE_JSON(column11), "
            f"column12::TIMESTAMP_NTZ FROM VALUES {values}",
        )

    observed = _run_example(
        root, insider_emulator, {**env, "SNOWFLAKE_PASSWORD": "e2e-password"}, mirror
    )
    assert observed["first"] == duckdb_run["first"]
    assert observed["second"] == duckdb_run["second"]
    assert observed["profiles"] == duckdb_run["profiles"]
    tags = {login["SESSION_PARAMETERS"].get("QUERY_TAG") for login in fakesnow_server.gate.logins}
    assert "reverse_etl:e2e" in tags


def test_example_project_on_sqlite_matches_duckdb(
    tmp_path: Path, insider_emulator: Emulator, env: dict[str, str], duckdb_run: dict[str, Any],
) -> None:
    pytest.importorskip("sqlalchemy")
    warehouse = tmp_path / "warehouse.sqlite"
    root = _example_project(
        tmp_path / "sqlite", {"type": "sqlalchemy", "url": "{{ env_var('DATABASE_URL') }}"}
    )

    def sqlite_value(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            return float(value)
        if isinstance(value, list):
            return json.dumps(value)
        if isinstance(value, dt.date):  # datetime too
            return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
        return value

    def mirror(rows: list[tuple[Any, ...]]) -> None:
        with sqlite3.connect(warehouse) as con:
            con.execute("DROP TABLE IF EXISTS raw_customers")
            con.execute(SQLITE_TABLE)
            con.executemany(
                f"INSERT INTO raw_customers VALUES ({', '.join('?' * 12)})",
                [tuple(map(sqlite_value, row)) for row in rows],
            )
        con.close()

    observed = _run_example(
        root, insider_emulator, {**env, "DATABASE_URL": f"sqlite:///{warehouse}"}, mirror
    )
    assert observed["first"] == duckdb_run["first"]
    assert observed["second"] == duckdb_run["second"]
    assert observed["profiles"] == duckdb_run["profiles"]

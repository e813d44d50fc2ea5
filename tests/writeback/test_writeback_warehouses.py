"""Write-back into PostgreSQL (a throwaway cluster, via SQLAlchemy) and Snowflake (fakesnow).

The same three runs as the DuckDB test, with the model read from and the
write-back tables written to the warehouse under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from project_factory import ProjectUnderTest, make_project
from writeback_scenario import (
    ATTRIBUTES,
    MODEL_SQL,
    check_tables,
    lower_keys,
    seed_rows,
    three_runs,
    values_sql,
)

from reverse_etl.insider.emulator import Emulator

CREATE = ("CREATE TABLE raw_customers (customer_id VARCHAR, email VARCHAR, first_name VARCHAR, "
          "city VARCHAR, lifetime_value DOUBLE PRECISION)")


def project_on(tmp_path: Path, emulator: Emulator, source: dict[str, Any]) -> ProjectUnderTest:
    project = make_project(tmp_path / "p", emulator.url, rows=1, attributes=ATTRIBUTES)
    project.write_model("customers", MODEL_SQL)
    with project.config() as config:
        config["source"] = source
        config["writeback"] = {}
    return project


def test_postgres_tables_hold_every_run_rejected_row_and_change(
        tmp_path: Path, insider_emulator: Emulator, postgres_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)

    def execute(sql: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))

    def read(table: str) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM reverse_etl.{table}"))]

    try:
        execute(CREATE)
        execute(f"INSERT INTO raw_customers VALUES {values_sql(seed_rows())}")
        project = project_on(tmp_path, insider_emulator, {"type": "sqlalchemy", "url": postgres_url})
        results = three_runs(project, insider_emulator, execute)
        check_tables(results, read("sync_runs"), read("sync_rejected_rows"), read("sync_changes"),
                     insider_emulator)
        with engine.connect() as conn:  # real column types, for analysts' SQL
            types = dict(conn.execute(sa.text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'reverse_etl' AND table_name = 'sync_runs'")).all())
        assert types["started_at"].startswith("timestamp") and types["acked"] == "bigint"
    finally:
        engine.dispose()


def test_snowflake_tables_hold_every_run_rejected_row_and_change(
        tmp_path: Path, insider_emulator: Emulator, fakesnow_server: Any) -> None:
    import uuid

    database = f"DB_{uuid.uuid4().hex[:10].upper()}"

    def execute(sql: str) -> None:
        fakesnow_server.execute(database, sql)

    def read(table: str) -> list[dict[str, Any]]:
        with fakesnow_server.connect(database) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM reverse_etl.{table}")
            names = [d[0] for d in cur.description]
            return lower_keys([dict(zip(names, row, strict=True)) for row in cur.fetchall()])

    execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    execute(CREATE.replace("DOUBLE PRECISION", "FLOAT"))
    execute(f"INSERT INTO raw_customers VALUES {values_sql(seed_rows())}")
    source = fakesnow_server.config(database, password='{{ env_var("SNOWFLAKE_PASSWORD") }}')
    project = project_on(tmp_path, insider_emulator, source)
    project.env["SNOWFLAKE_PASSWORD"] = "s3cret-Pa55word-abc"
    results = three_runs(project, insider_emulator, execute)
    check_tables(results, read("sync_runs"), read("sync_rejected_rows"), read("sync_changes"),
                 insider_emulator)

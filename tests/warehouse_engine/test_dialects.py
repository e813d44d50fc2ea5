"""The warehouse engine's statements come out in each documented dialect's own spelling.

Postgres and Snowflake run them for real in the other tests; here every statement is
generated for Redshift and BigQuery too and must parse back in that dialect.
"""

from __future__ import annotations

import pytest
import sqlglot

from reverse_etl.warehouses.pushdown import sql


def statements(dialect: str) -> list[str]:
    o = sql.Objects(dialect, "reverse_etl", "Customers-EU")
    key = "nullif(trim(CAST(m.\"customer_id\" AS VARCHAR)), '')"
    digest = sql.digest_sql([sql.warehouse_text('m."city"', False), sql.warehouse_text('m."tags"', True)])
    return [sql.create_pass1("p1", key, digest), sql.changed_rows("p1", o, every_row=False),
            sql.removed_keys("p1", o), sql.schema_exists(o), sql.create_schema(o), *sql.create_tables(o),
            sql.read_marker(o), sql.create_staging(o), sql.merge(o), *sql.rebuild(o),
            *sql.write_marker(o, "run-1", "fp")]


@pytest.mark.parametrize("dialect", ["postgres", "snowflake", "redshift", "bigquery"])
def test_every_statement_transpiles_and_parses_back(dialect: str) -> None:
    for statement in statements(dialect):
        written = sql.transpile(statement, dialect)
        assert sqlglot.parse_one(written, read=dialect) is not None, written


def test_each_dialect_gets_its_own_spelling() -> None:
    digest = sql.digest_sql(["CAST(m.\"city\" AS VARCHAR)"])
    assert "CAST(m.\"city\" AS TEXT)" in sql.transpile(f"SELECT {digest}", "postgres")
    assert "TO_HEX(MD5(" in sql.transpile(f"SELECT {digest}", "bigquery")  # BigQuery's MD5 is bytes
    assert "`reverse_etl`.`snapshot_customers_eu`" in sql.transpile(
        sql.merge(sql.Objects("bigquery", "reverse_etl", "Customers-EU")), "bigquery")
    # Snowflake: the engine's own names are upper case, as an unquoted CREATE SCHEMA makes them.
    assert '"REVERSE_ETL"."SNAPSHOT_CUSTOMERS_EU"' in sql.transpile(
        sql.merge(sql.Objects("snowflake", "reverse_etl", "Customers-EU")), "snowflake")


def test_the_model_is_put_in_untouched() -> None:
    model = "select \"Odd\"::text as x from t where y like 'a%';"
    out = sql.with_model(sql.transpile(sql.create_pass1("p1", "m.x", "md5('')"), "postgres"), model)
    assert "select \"Odd\"::text as x from t where y like 'a%'\n)" in out

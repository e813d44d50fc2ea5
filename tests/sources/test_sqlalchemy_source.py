"""The generic SQLAlchemy source, against real SQLite files (sqlite3 is in the stdlib)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from reverse_etl.errors import SourceError
from reverse_etl.project.config import SQLAlchemySourceConfig
from reverse_etl.warehouses import open_source
from reverse_etl.warehouses.sqlalchemy_source import SQLAlchemySource

pytest.importorskip("sqlalchemy")

ROWS = 25_000


def _config(url: str) -> SQLAlchemySourceConfig:
    return SQLAlchemySourceConfig.model_validate({"type": "sqlalchemy", "url": url})


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """customers: ints, reals, text, and a column that is NULL in the first 12,000 rows."""
    path = tmp_path / "warehouse.sqlite"
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE customers (customer_id INTEGER, email TEXT, ltv REAL, "
            "late_score INTEGER, mixed)"
        )
        con.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
            (
                (i, f"u{i}@example.com", i * 1.5, i if i > 12_000 else None, i if i % 2 else f"s{i}")
                for i in range(ROWS)
            ),
        )
    return path


def test_fetch_streams_typed_arrow_batches(warehouse: Path) -> None:
    source = open_source(_config(f"sqlite:///{warehouse}"), root=".")
    try:
        assert source.dialect == "sqlite"
        reader = source.fetch(
            "SELECT customer_id, email, ltv, late_score, mixed FROM customers ORDER BY customer_id",
            batch_size=4_000,
        )
        batches = list(reader)
    finally:
        source.close()

    assert [b.num_rows for b in batches] == [4_000] * 6 + [1_000]
    table = pa.Table.from_batches(batches, schema=reader.schema)
    assert table.schema.names == ["customer_id", "email", "ltv", "late_score", "mixed"]
    assert table.schema.field("customer_id").type == pa.int64()
    assert table.schema.field("email").type == pa.string()
    assert table.schema.field("ltv").type == pa.float64()
    # NULL in the first three batches: the reader looks ahead until it has a type.
    assert table.schema.field("late_score").type == pa.int64()
    # SQLite lets a column hold ints and strings: it arrives as text.
    assert table.schema.field("mixed").type == pa.string()
    rows = table.slice(12_001, 2).to_pylist()
    assert rows == [
        {"customer_id": 12_001, "email": "u12001@example.com", "ltv": 18_001.5,
         "late_score": 12_001, "mixed": "12001"},
        {"customer_id": 12_002, "email": "u12002@example.com", "ltv": 18_003.0,
         "late_score": 12_002, "mixed": "s12002"},
    ]


def test_sql_with_colons_and_percent_signs_reaches_the_driver_untouched(warehouse: Path) -> None:
    source = open_source(_config(f"sqlite:///{warehouse}"), root=".")
    try:
        table = source.fetch("SELECT 'a:b' AS t, '100%' AS p, count(*) AS n FROM customers").read_all()
    finally:
        source.close()
    assert table.to_pylist() == [{"t": "a:b", "p": "100%", "n": ROWS}]


def test_empty_result_and_relative_sqlite_path(warehouse: Path) -> None:
    source = SQLAlchemySource(_config("sqlite:///warehouse.sqlite"), root=warehouse.parent)
    try:
        table = source.fetch("SELECT customer_id, email FROM customers WHERE 1 = 0").read_all()
    finally:
        source.close()
    assert table.num_rows == 0
    assert table.schema.names == ["customer_id", "email"]


def test_broken_sql_is_a_one_line_source_error(warehouse: Path) -> None:
    source = open_source(_config(f"sqlite:///{warehouse}"), root=".")
    try:
        with pytest.raises(SourceError) as info:
            source.fetch("SELECT nope FROM customers")
        # The connection stays usable after a failed query.
        assert source.fetch("SELECT 1 AS one").read_all().to_pylist() == [{"one": 1}]
    finally:
        source.close()
    message = str(info.value)
    assert "\n" not in message and "no such column: nope" in message
    assert "sqlalche.me" not in message


def test_duplicate_column_names_are_refused(warehouse: Path) -> None:
    source = open_source(_config(f"sqlite:///{warehouse}"), root=".")
    try:
        with pytest.raises(SourceError, match="two columns named 'email'"):
            source.fetch("SELECT email, email FROM customers")
    finally:
        source.close()


def test_unreachable_database_is_a_one_line_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as info:
        open_source(_config(f"sqlite:///{tmp_path}/missing-dir/db.sqlite"), root=".")
    assert "\n" not in str(info.value)
    assert "unable to open database file" in str(info.value)


def test_unknown_dialect_names_what_to_install() -> None:
    with pytest.raises(SourceError) as info:
        open_source(_config("nosuchdb://user:pw-secret-1@127.0.0.1/db"), root=".")
    message = str(info.value)
    assert "\n" not in message and "pw-secret-1" not in message
    assert "unknown SQLAlchemy dialect 'nosuchdb'" in message

    with pytest.raises(SourceError, match=r"pip install sqlalchemy-bigquery"):
        open_source(_config("bigquery://my-project/dataset"), root=".")


def test_missing_driver_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whether or not a Postgres driver is installed here, make its import fail.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(SourceError) as info:
        open_source(_config("postgresql+psycopg2://loader:pw-secret-2@127.0.0.1:1/dw"), root=".")
    message = str(info.value)
    assert message == (
        "the driver for 'postgresql+psycopg2' is not installed (no module 'psycopg2'): "
        "pip install psycopg2-binary"
    )


def test_missing_sqlalchemy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(SourceError, match=r"pip install 'reverse_etl\[sqlalchemy\]'"):
        open_source(_config("sqlite://"), root=".")


def test_not_a_url_does_not_echo_it() -> None:
    with pytest.raises(SourceError) as info:
        open_source(_config("this is :: not a url with pw-secret-3"), root=".")
    assert "pw-secret-3" not in str(info.value)


def test_sqlite_declared_types_are_honoured(tmp_path: Path) -> None:
    path = tmp_path / "typed.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (id INTEGER, optin BOOLEAN, born DATE, seen TIMESTAMP, "
                    "tags JSON, props JSON)")
        con.execute("INSERT INTO t VALUES (1, 1, '1990-05-01', '2026-01-01 09:30:00', "
                    "'[\"a\", \"b\"]', '{\"k\": 1}')")
        con.execute("INSERT INTO t VALUES (2, 0, NULL, NULL, NULL, NULL)")
    con.close()
    source = open_source(_config(f"sqlite:///{path}"), root=".")
    try:
        # Declared types survive subqueries and aliases; an expression has none.
        table = source.fetch(
            "SELECT id, optin AS email_optin, born, seen, tags, props, optin + 0 AS n "
            "FROM (SELECT * FROM t) ORDER BY id"
        ).read_all()
        leftovers = source.fetch("SELECT count(*) AS n FROM sqlite_temp_master").read_all()
    finally:
        source.close()
    assert leftovers.to_pylist() == [{"n": 0}]  # the type probe leaves nothing behind
    types = {f.name: f.type for f in table.schema}
    assert types == {
        "id": pa.int64(), "email_optin": pa.bool_(), "born": pa.date32(),
        "seen": pa.timestamp("us"), "tags": pa.list_(pa.string()), "props": pa.string(),
        "n": pa.int64(),
    }
    first, second = table.to_pylist()
    assert first["email_optin"] is True and second["email_optin"] is False
    assert first["tags"] == ["a", "b"] and first["props"] == '{"k": 1}'
    assert str(first["born"]) == "1990-05-01" and str(first["seen"]) == "2026-01-01 09:30:00"

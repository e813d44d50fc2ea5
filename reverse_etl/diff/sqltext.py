"""Small helpers for writing SQL text safely."""

from __future__ import annotations

from typing import Any

import duckdb


def ident(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """Quote a string literal for DuckDB."""
    return "'" + text.replace("'", "''") + "'"


def json_key(name: str) -> str:
    """SQL literal of a JSON object key with its colon, e.g. ``'"name":'``."""
    return literal('"' + name + '":')


def trimmed_text_sql(expr: str, *, portable: bool = False) -> str:
    """SQL of ``expr`` as text with no spaces around it, NULL when nothing is left.

    The same value as ``nullif(trim(CAST(expr AS VARCHAR)), '')`` for every string
    (checked against every Unicode code point in every position), spelled so that
    ``trim``, which copies each string it is given, runs only on text it could change:
    text that starts below ``'!'`` (a space, a control character, or nothing), ends
    in a space, or holds a non-ASCII character (``strlen`` counts bytes, ``length``
    characters; ``trim`` also removes Unicode spaces such as U+00A0). Keys and
    identifiers are computed this way on every model row: at 1M rows 0.05 s -> 0.017 s
    a column, and a semi join on such a key 0.09 s -> 0.016 s.

    ``portable``: the plain ``nullif(trim(...))``, for SQL another warehouse runs
    (transpiled by sqlglot), where byte lengths and text order differ per engine.
    """
    text = f"CAST({expr} AS VARCHAR)"
    if portable:
        return f"nullif(trim({text}), '')"
    could_change = f"{text} < '!' OR {text} LIKE '% ' OR strlen({text}) <> length({text})"
    return f"(CASE WHEN {could_change} THEN nullif(trim({text}), '') ELSE {text} END)"


def first_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...] | None:
    """The first row of a query, with the result fully consumed.

    DuckDB 2.0 keeps a result open after ``fetchone()`` and refuses other work on
    the connection until it is finished, so small queries are fetched whole.
    """
    rows = con.execute(sql).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """An integer query result (a count)."""
    row = first_row(con, sql)
    return int(row[0]) if row and row[0] is not None else 0


def column_types(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """The columns of a table, view or ``SELECT`` as name → DuckDB type, in order."""
    return {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {relation}").fetchall()}


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """True when a table or view ``name`` exists in the connection's main schema."""
    return bool(scalar(con, "SELECT count(*) FROM information_schema.tables "
                            f"WHERE table_schema = 'main' AND table_name = {literal(name)}"))

"""The comparison: the model's encoded values against what Insider holds, in DuckDB.

Tables in the runner's engine connection (after :meth:`SyncRunner.encode_all`):

``audit_population``  the users the audit looks at: valid model rows
                      (``expected = 'present'``) and, when ``on_removed`` is
                      ``delete_user`` or ``clear_attributes``, snapshot keys the model
                      removed (``expected = 'removed'``); ``kv`` is the key identifier's
                      value as Insider holds it; one column per compared field (JSON text)
``insider_side``      what Insider answered: ``kv``, ``found`` and the same field
                      columns (JSON text), from profile reads or the raw export
``audit_drift``       one row per difference: ``key``, ``kind`` (``missing``,
                      ``removed_present``, ``identifier``, ``attribute``), ``field``,
                      ``model_value``, ``insider_value``

Values are compared canonically (:data:`MACROS`), so that what Insider echoes
differently but means the same is not drift: numbers by value (``1`` = ``1.0``),
date/timestamp strings by instant (zone, precision and format aside), arrays as
sets (order and duplicates aside: Insider appends), JSON ``null``, an empty array
and an absent attribute alike, and ``false`` = absent for boolean audiences (an
exit writes ``false``; a user who never entered has nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from reverse_etl.diff.sqltext import ident, literal
from reverse_etl.insider.fields import Field

DRIFT_KINDS = ("missing", "removed_present", "identifier", "attribute", "event")
"""``event``: an events sync's event Insider no longer holds (see :mod:`.events`); counted per event."""

MACROS = r"""
CREATE OR REPLACE MACRO audit_scalar(j) AS CASE
  WHEN j IS NULL OR json_type(j) = 'NULL' THEN NULL
  WHEN json_type(j) IN ('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE')
    THEN 'n:' || CAST(CAST(j AS DOUBLE) AS VARCHAR)
  WHEN json_type(j) = 'BOOLEAN' THEN 'b:' || CAST(j AS VARCHAR)
  WHEN json_type(j) = 'VARCHAR' THEN coalesce(
    't:' || strftime(timezone('UTC', try_cast(j ->> '$' AS TIMESTAMPTZ)), '%Y-%m-%dT%H:%M:%S.%f'),
    's:' || (j ->> '$'))
  ELSE 'j:' || CAST(json(j) AS VARCHAR)
END;
CREATE OR REPLACE MACRO audit_canon(j) AS CASE
  WHEN j IS NOT NULL AND json_type(j) = 'ARRAY' THEN nullif('a:' || array_to_string(
    list_sort(list_distinct(list_transform(CAST(json(j) AS JSON[]), lambda e: audit_scalar(e)))), chr(31)), 'a:')
  ELSE audit_scalar(j)
END;
"""
"""``audit_canon(json text)``: one text per meaning (see the module docstring)."""


@dataclass(frozen=True)
class Compared:
    """One field the audit compares: the engine's column and how Insider names it."""

    field: Field
    read_name: str | None
    """Its name in a profile read (``c_<name>`` for custom attributes); None: not readable."""
    export_column: str
    """Its column in the raw export (v1: ``a_<name>``, ``a_c_<name>``)."""
    audience: bool = False
    """A boolean audience flag: ``false`` at Insider means not a member (NULL in the model)."""

    @property
    def kind(self) -> str:
        """``identifier`` or ``attribute`` (the drift kind a difference is)."""
        return "identifier" if self.field.group == "identifiers" else "attribute"


def compared_fields(ids: Sequence[Field], attrs: Sequence[Field], audiences: Sequence[Field]) -> list[Compared]:
    """The fields of a user_attributes sync as the audit reads them back."""
    out = []
    for f in ids:
        # A profile read answers identifiers by name (uuid, email, phone_number); custom
        # identifiers are not attributes there, so only the export shows them.
        out.append(Compared(f, None if f.custom else f.insider_name,
                            ("a_c_" if f.custom else "a_") + f.insider_name))
    audience_names = {a.name for a in audiences}
    for f in [*attrs, *audiences]:
        out.append(Compared(f, ("c_" if f.custom else "") + f.insider_name,
                            ("a_c_" if f.custom else "a_") + f.insider_name, f.name in audience_names))
    return out


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    """The canonicalising macros, and UTC for timestamp strings without a zone."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(MACROS)


def _key_value(f: Field, table: str) -> str:
    return f"CAST({table}.{ident(f.name)} AS JSON) ->> '$'"


def create_population(con: duckdb.DuckDBPyConnection, key: Field, fields: Sequence[Compared],
                      removed_expected: bool, sample: int | None) -> None:
    """``audit_population`` from ``cur`` (valid rows) and, if wanted, the removed keys of ``snap``.

    ``sample``: that many users at random (None: all).
    """
    cols = ", ".join(ident(c.field.name) for c in fields)
    removed = ""
    if removed_expected:
        removed = f"""UNION ALL
          SELECT s.key, {_key_value(key, 's')} AS kv, 'removed' AS expected, {", ".join(
              f"s.{ident(c.field.name)}" for c in fields)}
          FROM snap s ANTI JOIN present p ON s.key = p.key"""
    limit = f"ORDER BY random() LIMIT {int(sample)}" if sample is not None else ""
    con.execute(f"""
        CREATE OR REPLACE TABLE audit_population AS
        SELECT * FROM (
          SELECT c.key, {_key_value(key, 'c')} AS kv, 'present' AS expected, {cols}
          FROM cur c WHERE c.reason IS NULL
          {removed}
        ) WHERE kv IS NOT NULL {limit}
    """)


def create_drift(con: duckdb.DuckDBPyConnection, key: Field, fields: Sequence[Compared],
                 on_removed: str) -> None:
    """``audit_drift``: every difference between ``audit_population`` and ``insider_side``."""
    def canon(c: Compared, table: str) -> str:
        value = f"audit_canon({table}.{ident(c.field.name)})"
        return f"nullif({value}, 'b:false')" if c.audience else value

    compared = [c for c in fields if c.field.name != key.name]
    parts = ["""SELECT p.key, 'missing' AS kind, NULL::VARCHAR AS field, NULL::VARCHAR AS model_value,
                        NULL::VARCHAR AS insider_value
                 FROM audit_population p LEFT JOIN insider_side i ON i.kv = p.kv
                 WHERE p.expected = 'present' AND i.found IS NOT TRUE"""]
    for c in compared:
        name = ident(c.field.name)
        parts.append(f"""SELECT p.key, {literal(c.kind)}, {literal(c.field.label)}, p.{name}, i.{name}
                 FROM audit_population p JOIN insider_side i ON i.kv = p.kv
                 WHERE p.expected = 'present' AND i.found
                   AND {canon(c, 'p')} IS DISTINCT FROM {canon(c, 'i')}""")
    if on_removed == "delete_user":
        parts.append("""SELECT p.key, 'removed_present', NULL, NULL, NULL
                 FROM audit_population p JOIN insider_side i ON i.kv = p.kv
                 WHERE p.expected = 'removed' AND i.found""")
    elif on_removed == "clear_attributes":
        for c in compared:
            if c.kind == "attribute":
                name = ident(c.field.name)
                parts.append(f"""SELECT p.key, 'removed_present', {literal(c.field.label)}, NULL, i.{name}
                 FROM audit_population p JOIN insider_side i ON i.kv = p.kv
                 WHERE p.expected = 'removed' AND i.found AND {canon(c, 'i')} IS NOT NULL""")
    con.execute("CREATE OR REPLACE TABLE audit_drift AS " + " UNION ALL ".join(parts))


def drift_counts(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, int], dict[str, int], int]:
    """(users per drift kind, differences per field, drifted users)."""
    kinds = {kind: 0 for kind in DRIFT_KINDS}
    kinds.update({k: int(n) for k, n in con.execute(
        "SELECT kind, count(DISTINCT key) FROM audit_drift GROUP BY kind").fetchall()})
    per_field = {str(f): int(n) for f, n in con.execute(
        "SELECT field, count(*) FROM audit_drift WHERE field IS NOT NULL GROUP BY field ORDER BY field").fetchall()}
    users = con.execute("SELECT count(DISTINCT key) FROM audit_drift").fetchall()[0][0]
    return kinds, per_field, int(users)


def drift_examples(con: duckdb.DuckDBPyConnection, limit: int) -> dict[str, list[dict[str, str | None]]]:
    """Up to ``limit`` differences per kind, by key."""
    rows = con.execute(f"""
        SELECT kind, key, field, model_value, insider_value FROM audit_drift
        QUALIFY row_number() OVER (PARTITION BY kind ORDER BY key, field) <= {int(limit)}
        ORDER BY kind, key, field""").fetchall()
    out: dict[str, list[dict[str, str | None]]] = {}
    for kind, key, field, model_value, insider_value in rows:
        out.setdefault(kind, []).append({"key": key, "field": field, "model": model_value,
                                         "insider": insider_value})
    return out

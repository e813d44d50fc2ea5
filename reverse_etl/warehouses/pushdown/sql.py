"""The warehouse engine's SQL: written once in DuckDB's dialect, transpiled per warehouse by sqlglot.

Nothing here runs SQL. Every statement the engine sends to a warehouse is built
by a function below and passed through :func:`transpile`, so Postgres, Snowflake,
Redshift or BigQuery get their own spelling of the same statement (``CAST(x AS
TEXT)`` for Postgres, ``TO_HEX(MD5(...))`` for BigQuery, ...) without templates
per warehouse.

The model's own SQL is already in the warehouse's dialect: it is never parsed,
only put in place of :data:`MODEL_PLACEHOLDER` after transpiling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reverse_etl.errors import ConfigError

MODEL_PLACEHOLDER = "__reverse_etl_model__"
"""Stands for ``(<model SQL>)`` in a statement until :func:`with_model` replaces it."""

KEY_COLUMN = "__ret_key"
"""Pass 1's key column (computed in the warehouse) in the rows it returns."""

DIGEST_COLUMN = "__ret_digest"
"""Pass 1's row digest column in the rows it returns."""

ENGINE_COLUMNS = (KEY_COLUMN, DIGEST_COLUMN)

def transpile(sql: str, dialect: str) -> str:
    """``sql`` (DuckDB dialect) in ``dialect`` (a sqlglot dialect name)."""
    import sqlglot

    try:
        return str(sqlglot.transpile(sql, read="duckdb", write=dialect)[0])
    except (sqlglot.errors.ParseError, sqlglot.errors.UnsupportedError, ValueError) as exc:
        raise ConfigError(f"engine: warehouse cannot write this sync's SQL for {dialect!r}: "
                          f"{str(exc).splitlines()[0]}; use engine: local for it") from None


def with_model(sql: str, model_sql: str) -> str:
    """Put the model's SQL (as a subquery) where :data:`MODEL_PLACEHOLDER` stands."""
    model = model_sql.strip().rstrip(";").strip()
    return sql.replace(MODEL_PLACEHOLDER, f"(\n{model}\n)")


def quote(name: str) -> str:
    """A double-quoted identifier (DuckDB dialect; sqlglot re-quotes it per warehouse)."""
    return '"' + name.replace('"', '""') + '"'


def text(value: str) -> str:
    """A string literal."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Objects:
    """The warehouse objects of one sync: its snapshot table and the engine's marker table."""

    dialect: str
    schema: str
    sync: str

    def own(self, name: str) -> str:
        """One of the engine's own identifiers, quoted.

        Snowflake folds unquoted names to upper case, so there they are upper case:
        a user's ``CREATE SCHEMA reverse_etl`` and the engine mean the same schema.
        """
        return quote(name.upper() if self.dialect == "snowflake" else name)

    @property
    def schema_sql(self) -> str:
        """The schema, quoted."""
        return self.own(self.schema)

    @property
    def snapshot(self) -> str:
        """The sync's snapshot table: one row per key Insider acknowledged, with its digest."""
        slug = re.sub(r"[^a-z0-9_]", "_", self.sync.lower())
        return f"{self.schema_sql}.{self.own('snapshot_' + slug)}"

    @property
    def staging(self) -> str:
        """Where a commit uploads the keys it MERGEs (dropped after; in the same database as the
        snapshot table, so the MERGE's transaction touches one database)."""
        slug = re.sub(r"[^a-z0-9_]", "_", self.sync.lower())
        return f"{self.schema_sql}.{self.own('staging_' + slug)}"

    def upload_stage(self, token: str) -> str:
        """Snowflake: a temporary internal stage a commit PUTs its keys to before COPY INTO
        (``token``: a fresh one per upload; a temporary stage lives until the session ends)."""
        slug = re.sub(r"[^a-z0-9_]", "_", f"{self.sync}_{token}".lower())
        return f"{self.schema_sql}.{self.own('upload_' + slug)}"

    @property
    def marker(self) -> str:
        """Which local run each sync's snapshot table was last committed by."""
        return f"{self.schema_sql}.{self.own('syncs')}"

    def col(self, name: str) -> str:
        """A column of the engine's own tables (``key``, ``digest``, ...)."""
        return self.own(name)


def model_column(raw_name: str) -> str:
    """A model column as the warehouse names it, quoted exactly."""
    return quote(raw_name)


def warehouse_text(column_sql: str, semistructured: bool) -> str:
    """A raw value as text inside the warehouse, for its digest (JSON for semi-structured)."""
    return f"CAST(to_json({column_sql}) AS VARCHAR)" if semistructured else f"CAST({column_sql} AS VARCHAR)"


def digest_sql(texts: Sequence[str]) -> str:
    """md5 (128-bit, hex) of length-prefixed texts, computed by the warehouse.

    The same construction as the local engine's (``diff.compare.text_digest_sql``),
    but over the warehouse's own text of each value, which differs per engine for
    floats and timestamps: a snapshot made by one engine is never compared with
    digests of another (the fingerprint names the engine).
    """
    if not texts:
        return "md5('')"
    parts = ", ".join(f"coalesce(CAST(length({t}) AS VARCHAR) || ':' || {t}, 'N')" for t in texts)
    return f"md5(concat({parts}))"


# ------------------------------------------------------------------ pass 1
def drop_temp(table: str) -> str:
    """Drop one of the engine's session tables."""
    return f"DROP TABLE IF EXISTS {quote(table)}"


def create_pass1(table: str, key_sql: str, digests: str) -> str:
    """Every model row's key and digest (and its columns), kept in a session table."""
    return (f"CREATE TEMPORARY TABLE {quote(table)} AS SELECT {key_sql} AS {quote(KEY_COLUMN)}, "
            f"{digests} AS {quote(DIGEST_COLUMN)}, m.* FROM {MODEL_PLACEHOLDER} AS m")


def count_rows(table: str) -> str:
    """How many rows the model returned."""
    return f"SELECT count(*) FROM {quote(table)}"


def changed_rows(table: str, objects: Objects, *, every_row: bool) -> str:
    """The rows that travel: new keys, changed digests, and null or duplicate keys (all of their rows).

    ``every_row``: a full resend (or a snapshot table the local state does not
    vouch for): every row travels.
    """
    if every_row:
        return f"SELECT * FROM {quote(table)}"
    k, d, key, digest = quote(KEY_COLUMN), quote(DIGEST_COLUMN), objects.col("key"), objects.col("digest")
    return (f"SELECT p.* FROM {quote(table)} AS p LEFT JOIN {objects.snapshot} AS s ON s.{key} = p.{k} "
            f"WHERE p.{k} IS NULL OR s.{key} IS NULL OR s.{digest} IS NULL OR s.{digest} <> p.{d} "
            f"OR p.{k} IN (SELECT {k} FROM {quote(table)} WHERE {k} IS NOT NULL "
            f"GROUP BY {k} HAVING count(*) > 1)")


def removed_keys(table: str, objects: Objects) -> str:
    """Keys of the snapshot table the model no longer returns."""
    key, k = objects.col("key"), quote(KEY_COLUMN)
    return (f"SELECT s.{key} AS {quote('key')} FROM {objects.snapshot} AS s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {quote(table)} AS p WHERE p.{k} = s.{key})")


# ------------------------------------------------------------------ state
def schema_exists(objects: Objects) -> str:
    """One row when the schema exists (information_schema is standard across these warehouses)."""
    name = objects.schema.upper() if objects.dialect == "snowflake" else objects.schema
    return f"SELECT 1 FROM information_schema.schemata WHERE schema_name = {text(name)}"


def create_schema(objects: Objects) -> str:
    """The engine's schema."""
    return f"CREATE SCHEMA IF NOT EXISTS {objects.schema_sql}"


def create_tables(objects: Objects) -> list[str]:
    """The sync's snapshot table and the marker table (if missing)."""
    c = objects.col
    return [f"CREATE TABLE IF NOT EXISTS {objects.snapshot} ({c('key')} VARCHAR PRIMARY KEY, "
            f"{c('digest')} VARCHAR)",
            f"CREATE TABLE IF NOT EXISTS {objects.marker} ({c('sync')} VARCHAR PRIMARY KEY, "
            f"{c('folded_run')} VARCHAR, {c('fingerprint')} VARCHAR)"]


def read_marker(objects: Objects) -> str:
    """The run that last committed the sync's snapshot table, and its fingerprint."""
    c = objects.col
    return (f"SELECT {c('folded_run')}, {c('fingerprint')} FROM {objects.marker} "
            f"WHERE {c('sync')} = {text(objects.sync)}")


def drop_staging(objects: Objects) -> str:
    """Drop the commit's staging table (left behind only by a crash)."""
    return f"DROP TABLE IF EXISTS {objects.staging}"


def create_staging(objects: Objects) -> str:
    """Where a commit uploads its rows before the one MERGE: key, digest, keep (False: delete)."""
    c = objects.col
    return f"CREATE TABLE {objects.staging} ({c('key')} VARCHAR, {c('digest')} VARCHAR, {c('keep')} BOOLEAN)"


def merge(objects: Objects) -> str:
    """Apply the staged rows to the snapshot table: upsert kept keys, delete the others."""
    c = objects.col
    return (f"MERGE INTO {objects.snapshot} AS s USING {objects.staging} AS u ON s.{c('key')} = u.{c('key')} "
            f"WHEN MATCHED AND NOT u.{c('keep')} THEN DELETE "
            f"WHEN MATCHED THEN UPDATE SET {c('digest')} = u.{c('digest')} "
            f"WHEN NOT MATCHED AND u.{c('keep')} THEN INSERT ({c('key')}, {c('digest')}) "
            f"VALUES (u.{c('key')}, u.{c('digest')})")


def rebuild(objects: Objects) -> list[str]:
    """Replace the snapshot table's rows with the staged ones (after a full resend)."""
    c = objects.col
    return [f"DELETE FROM {objects.snapshot}",
            f"INSERT INTO {objects.snapshot} ({c('key')}, {c('digest')}) "
            f"SELECT {c('key')}, {c('digest')} FROM {objects.staging} WHERE {c('keep')}"]


def write_marker(objects: Objects, run_id: str, fingerprint: str) -> list[str]:
    """Record which local run the snapshot table now matches (same transaction as the MERGE)."""
    c = objects.col
    return [f"DELETE FROM {objects.marker} WHERE {c('sync')} = {text(objects.sync)}",
            f"INSERT INTO {objects.marker} ({c('sync')}, {c('folded_run')}, {c('fingerprint')}) "
            f"VALUES ({text(objects.sync)}, {text(run_id)}, {text(fingerprint)})"]

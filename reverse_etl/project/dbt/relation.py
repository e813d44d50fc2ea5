"""Where a dbt model lives in the warehouse, and how to name it in SQL.

A :class:`DbtRelation` is the small, immutable record that
:class:`reverse_etl.project.dbt.manifest.DbtManifest` hands out for one model (or seed or
snapshot): its database, schema and identifier, plus the ``relation_name`` dbt
itself renders for ``ref()``. :meth:`DbtRelation.sql_name` turns it into a name
that can follow ``SELECT * FROM`` in the source's dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Dialect spellings that mean the same engine for quoting purposes.
_DIALECT_ALIASES = {
    "postgresql": "postgres",
    "pg": "postgres",
    "sqlserver": "tsql",
    "mssql": "tsql",
    "fabric": "tsql",
    "synapse": "tsql",
    "spark2": "spark",
    "hive": "spark",
}
_BACKTICK_DIALECTS = frozenset({"bigquery", "databricks", "spark", "mysql", "clickhouse"})
_BRACKET_DIALECTS = frozenset({"tsql"})
# How an engine folds an *unquoted* identifier. Quoting a part that dbt left
# unquoted must fold it first, or Snowflake would look for "customers" where dbt
# created CUSTOMERS.
_UPPER_FOLDING = frozenset({"snowflake", "oracle"})
_LOWER_FOLDING = frozenset({"postgres", "redshift", "materialize"})


def normalise_dialect(dialect: str | None) -> str | None:
    """Lower-case ``dialect`` and map aliases (``postgresql`` → ``postgres``)."""
    if dialect is None:
        return None
    name = dialect.strip().lower()
    return _DIALECT_ALIASES.get(name, name)


def quote_identifier(part: str, dialect: str | None) -> str:
    """Quote one identifier part for ``dialect``, escaping embedded quote characters."""
    family = normalise_dialect(dialect)
    if family in _BACKTICK_DIALECTS:
        return "`" + part.replace("`", "``") + "`"
    if family in _BRACKET_DIALECTS:
        return "[" + part.replace("]", "]]") + "]"
    return '"' + part.replace('"', '""') + '"'


def fold_unquoted(part: str, dialect: str | None) -> str:
    """The spelling the engine stores for ``part`` written without quotes."""
    family = normalise_dialect(dialect)
    if family in _UPPER_FOLDING:
        return part.upper()
    if family in _LOWER_FOLDING:
        return part.lower()
    return part


_SIMPLE_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class Quoting:
    """dbt's quoting policy for a relation (project ``quoting:`` merged with the model's)."""

    database: bool = True
    schema: bool = True
    identifier: bool = True


@dataclass(frozen=True)
class DbtRelation:
    """One dbt node that materialises as a table or view (model, seed or snapshot)."""

    unique_id: str
    """dbt's unique id, e.g. ``model.my_project.customers``."""
    name: str
    """The node name as written in ``ref()`` (without the version suffix)."""
    package_name: str
    resource_type: str
    """``model``, ``seed`` or ``snapshot``."""
    database: str | None
    schema: str
    identifier: str
    """The alias dbt created the table or view under (``alias`` or else ``name``)."""
    relation_name: str | None = None
    """The quoted name dbt renders for ``ref()``, as the producing adapter writes it."""
    materialized: str | None = None
    tags: tuple[str, ...] = ()
    version: str | None = None
    adapter_type: str | None = None
    """The dbt adapter that wrote the manifest (``duckdb``, ``snowflake``, ...)."""
    quoting: Quoting = field(default_factory=Quoting)

    @property
    def alias(self) -> str:
        """Same as :attr:`identifier` (dbt's word for it)."""
        return self.identifier

    @property
    def display_name(self) -> str:
        """``package.name`` (plus ``.vN`` for versioned models) for messages."""
        base = f"{self.package_name}.{self.name}"
        return f"{base}.v{self.version}" if self.version is not None else base

    def sql_name(self, dialect: str | None = None, *, include_database: bool = True) -> str:
        """A fully qualified, quoted name usable in ``SELECT * FROM <name>``.

        With ``dialect`` left out or equal to the manifest's adapter, dbt's own
        ``relation_name`` is returned verbatim: it is exactly what ``ref()``
        compiles to, so it honours every quoting and casing rule of that adapter.
        Otherwise (a different dialect, ``include_database=False`` or an old
        manifest without ``relation_name``) the name is built from database,
        schema and identifier. Every part is then quoted for ``dialect``; a part
        dbt would have left unquoted is first folded the way the engine folds
        unquoted names (upper case on Snowflake), so the quoted form names the
        same object while staying safe for reserved words.

        ``include_database=False`` drops the database part: useful on DuckDB when
        the source opens the dbt database file under another catalog name.
        """
        family = normalise_dialect(dialect)
        same_engine = family is None or family == normalise_dialect(self.adapter_type)
        if self.relation_name and same_engine and include_database:
            return self.relation_name
        target = family or normalise_dialect(self.adapter_type)
        parts: list[tuple[str, bool]] = []
        if include_database and self.database:
            parts.append((self.database, self.quoting.database))
        parts.append((self.schema, self.quoting.schema))
        parts.append((self.identifier, self.quoting.identifier))
        rendered = []
        for value, quoted in parts:
            if not quoted and _SIMPLE_IDENTIFIER.match(value):
                value = fold_unquoted(value, target)
            rendered.append(quote_identifier(value, target))
        return ".".join(rendered)

    def __str__(self) -> str:
        return self.relation_name or self.sql_name()

"""The source interface: a warehouse runs SQL and streams Arrow record batches."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Source(Protocol):
    """A warehouse connection able to run one model's SQL.

    Implementations fetch results as Arrow record batches, never row by row, and
    raise :class:`reverse_etl.errors.SourceError` with a one-line message for
    broken SQL, bad credentials or an unreachable warehouse. Column names are
    returned as the warehouse gives them; the engine normalises case.

    Optional capability: ``materialize(engine_connection, table, sql, extra=None) -> bool``
    runs the model straight into the engine's DuckDB (the DuckDB source does it
    with a read-only ATTACH), adding the columns ``extra(types)`` returns; a source
    without it, or returning False, is read through :meth:`fetch`.
    """

    dialect: str
    """sqlglot-style dialect name of the SQL the source runs (duckdb, snowflake, ...): the
    warehouse diff engine generates its SQL in it."""

    def fetch(self, sql: str, batch_size: int = 100_000) -> pa.RecordBatchReader:
        """Run ``sql`` and stream its result."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

"""The source interface: a warehouse runs SQL and streams Arrow record batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa


@runtime_checkable
class Source(Protocol):
    """A warehouse connection able to run one model's SQL.

    Implementations fetch results as Arrow record batches, never row by row, and
    raise :class:`reverse_etl.errors.SourceError` with a one-line message for
    broken SQL, bad credentials or an unreachable warehouse. Column names are
    returned as the warehouse gives them; the engine normalises case.

    Optional capability: ``materialize(engine_connection, table, sql, select=None, *, hold=False)
    -> bool`` runs the model straight into the engine's DuckDB (the DuckDB source does it
    with a read-only ATTACH), selecting what ``select(types)`` returns; a source
    without it, or returning False, is read through :meth:`fetch`. A source that
    is also a :class:`HoldingSource` keeps the model's rows unchanged (``hold``) so the
    engine may read some of them again.
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


@runtime_checkable
class HoldingSource(Protocol):
    """A source whose ``materialize(..., hold=True)`` keeps the model's rows unchanged
    until :meth:`release`, so the engine can read some of them again."""

    def reread(self, engine: Any, table: str, select: Sequence[str], where: str) -> None:
        """Run the held model again into the engine's ``table``: ``select`` over the rows matching ``where``."""
        ...

    def release(self, engine: Any) -> None:
        """Stop holding the model (a no-op when nothing is held)."""
        ...

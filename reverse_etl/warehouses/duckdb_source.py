"""DuckDB source: runs a model in-process and streams Arrow record batches.

It also offers the engine a faster path (a capability, as SQLMesh's engine
adapters have): the engine can ATTACH the warehouse file read-only and run the
model straight into its own tables, with no Arrow hop at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from reverse_etl.errors import SourceError
from reverse_etl.project.config import DuckDBSourceConfig

_MODEL_VIEW = "reverse_etl_model"
"""The temporary view over the model's SQL while the engine materialises it."""
_WAREHOUSE = "warehouse"
"""The catalog name of the attached warehouse file in the engine's connection."""


class DuckDBSource:
    """A DuckDB database file (or ``:memory:``) used as the warehouse."""

    dialect = "duckdb"

    def __init__(self, config: DuckDBSourceConfig, root: str | Path) -> None:
        self.path = config.path if config.path == ":memory:" else str(Path(root) / config.path)
        self.read_only = config.read_only
        # Opened on first fetch: the engine's ATTACH path must not find the file
        # already open in this process with another configuration.
        self._conn: duckdb.DuckDBPyConnection | None = None

    def fetch(self, sql: str, batch_size: int = 100_000) -> pa.RecordBatchReader:
        """Run ``sql`` and return its result as a stream of record batches."""
        try:
            return arrow_reader(self._connection(), sql, batch_size)
        except duckdb.Error as exc:
            raise SourceError(first_line(exc)) from None

    def materialize(self, engine: duckdb.DuckDBPyConnection, table: str, sql: str,
                    select: Callable[[dict[str, str]], Sequence[str]] | None = None, *,
                    hold: bool = False) -> bool:
        """Run ``sql`` on the warehouse into ``engine``'s ``table``; False if not possible.

        Only a file not yet opened by this source qualifies (``:memory:`` cannot be
        attached from another connection). ``select``, given the model's columns (name
        → DuckDB type), returns the SELECT list over the model's rows (empty: every
        column), computed in the same pass (the engine adds its row keys and digests).

        ``hold``: the warehouse stays attached (read-only, so no writer can change it)
        and the model's view stays defined, for :meth:`reread`, until :meth:`release`.
        """
        if self.path == ":memory:" or self._conn is not None:
            return False
        if not Path(self.path).exists():
            raise SourceError(f"DuckDB database {self.path} does not exist; check source.path")
        escaped = self.path.replace("'", "''")
        try:
            engine.execute(f"ATTACH '{escaped}' AS {_WAREHOUSE} (READ_ONLY)")
        except duckdb.Error as exc:
            raise SourceError(f"cannot open DuckDB database {self.path}: {first_line(exc)}") from None
        held = False
        try:
            # Resolve the model's names exactly as in the warehouse itself.
            engine.execute(f"USE {_WAREHOUSE}")
            if select is None:
                engine.execute(f"CREATE OR REPLACE TABLE memory.main.{table} AS {sql}")
            else:
                # A view first: the model's column types decide the SELECT list. (A view,
                # not a subquery: model SQL may end in a comment or a semicolon.)
                engine.execute(f"CREATE OR REPLACE TEMP VIEW {_MODEL_VIEW} AS {sql}")
                types = {name: dtype for name, dtype, *_ in engine.execute(f"DESCRIBE {_MODEL_VIEW}").fetchall()}
                chosen = ", ".join(select(types)) or "*"
                engine.execute(f"CREATE OR REPLACE TABLE memory.main.{table} AS SELECT {chosen} FROM {_MODEL_VIEW}")
                held = hold
        except duckdb.OutOfMemoryException:
            raise  # the engine's memory budget, not the model: the runner says which setting
        except duckdb.Error as exc:
            raise SourceError(first_line(exc)) from None
        finally:
            if held:
                engine.execute("USE memory")
            else:
                self.release(engine)
        return True

    def reread(self, engine: duckdb.DuckDBPyConnection, table: str, select: Sequence[str], where: str) -> None:
        """Run the held model again into ``engine``'s ``table``: ``select`` over the rows matching ``where``.

        Only between :meth:`materialize` with ``hold`` and :meth:`release`, so the rows are
        the ones materialised. ``select`` and ``where`` read the model's columns; engine
        tables are named ``memory.main.<name>`` there.
        """
        try:
            engine.execute(f"USE {_WAREHOUSE}")
            engine.execute(f"CREATE OR REPLACE TABLE memory.main.{table} AS "
                           f"SELECT {', '.join(select)} FROM {_MODEL_VIEW} WHERE {where}")
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as exc:
            raise SourceError(first_line(exc)) from None
        finally:
            engine.execute("USE memory")

    def release(self, engine: duckdb.DuckDBPyConnection) -> None:
        """Detach the warehouse :meth:`materialize` attached (a no-op once released)."""
        engine.execute(f"DROP VIEW IF EXISTS {_MODEL_VIEW}")
        engine.execute("USE memory")
        engine.execute(f"DETACH DATABASE IF EXISTS {_WAREHOUSE}")

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            try:
                self._conn = duckdb.connect(self.path, read_only=self.read_only)
            except duckdb.Error as exc:
                raise SourceError(f"cannot open DuckDB database {self.path}: {first_line(exc)}") from None
        return self._conn


def arrow_reader(conn: duckdb.DuckDBPyConnection, sql: str, batch_size: int) -> pa.RecordBatchReader:
    """Stream a query's result as Arrow batches without an extra copy.

    DuckDB 2.0 names it ``to_arrow_reader``; older releases ``record_batch``.
    """
    relation: Any = conn.sql(sql)
    method = getattr(relation, "to_arrow_reader", None) or relation.record_batch
    reader: pa.RecordBatchReader = method(batch_size)
    return reader


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (DuckDB errors can span many)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

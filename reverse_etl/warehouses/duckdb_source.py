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
                    extra: Callable[[dict[str, str]], Sequence[str]] | None = None) -> bool:
        """Run ``sql`` on the warehouse into ``engine``'s ``table``; False if not possible.

        Only a file not yet opened by this source qualifies (``:memory:`` cannot be
        attached from another connection). ``extra``, given the model's columns (name
        → DuckDB type), returns more SELECT expressions computed in the same pass
        (the engine's row keys and digests).
        """
        if self.path == ":memory:" or self._conn is not None:
            return False
        if not Path(self.path).exists():
            raise SourceError(f"DuckDB database {self.path} does not exist; check source.path")
        escaped = self.path.replace("'", "''")
        try:
            engine.execute(f"ATTACH '{escaped}' AS warehouse (READ_ONLY)")
        except duckdb.Error as exc:
            raise SourceError(f"cannot open DuckDB database {self.path}: {first_line(exc)}") from None
        try:
            # Resolve the model's names exactly as in the warehouse itself.
            engine.execute("USE warehouse")
            if extra is None:
                engine.execute(f"CREATE OR REPLACE TABLE memory.main.{table} AS {sql}")
            else:
                # A view first: the model's column types decide the extra expressions. (A view,
                # not a subquery: model SQL may end in a comment or a semicolon.)
                engine.execute(f"CREATE OR REPLACE TEMP VIEW {_MODEL_VIEW} AS {sql}")
                types = {name: dtype for name, dtype, *_ in engine.execute(f"DESCRIBE {_MODEL_VIEW}").fetchall()}
                more = "".join(", " + e for e in extra(types))
                engine.execute(f"CREATE OR REPLACE TABLE memory.main.{table} AS SELECT *{more} FROM {_MODEL_VIEW}")
        except duckdb.OutOfMemoryException:
            raise  # the engine's memory budget, not the model: the runner says which setting
        except duckdb.Error as exc:
            raise SourceError(first_line(exc)) from None
        finally:
            engine.execute(f"DROP VIEW IF EXISTS {_MODEL_VIEW}")
            engine.execute("USE memory")
            engine.execute("DETACH warehouse")
        return True

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

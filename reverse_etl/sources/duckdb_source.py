"""DuckDB source: runs a model in-process and streams Arrow record batches."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from reverse_etl.config.schema import DuckDBSourceConfig
from reverse_etl.errors import SourceError


class DuckDBSource:
    """A DuckDB database file (or ``:memory:``) used as the warehouse."""

    dialect = "duckdb"

    def __init__(self, config: DuckDBSourceConfig, root: str | Path) -> None:
        self.path = config.path if config.path == ":memory:" else str(Path(root) / config.path)
        try:
            self._conn = duckdb.connect(self.path, read_only=config.read_only)
        except duckdb.Error as exc:
            raise SourceError(f"cannot open DuckDB database {self.path}: {_first_line(exc)}") from None

    def fetch(self, sql: str, batch_size: int = 100_000) -> pa.RecordBatchReader:
        """Run ``sql`` and return its result as a stream of record batches."""
        try:
            return arrow_reader(self._conn, sql, batch_size)
        except duckdb.Error as exc:
            raise SourceError(_first_line(exc)) from None

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def arrow_reader(conn: duckdb.DuckDBPyConnection, sql: str, batch_size: int) -> pa.RecordBatchReader:
    """Stream a query's result as Arrow batches without an extra copy.

    DuckDB 2.0 names it ``to_arrow_reader``; older releases ``record_batch``.
    """
    relation = conn.sql(sql)
    method = getattr(relation, "to_arrow_reader", None) or relation.record_batch
    return method(batch_size)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

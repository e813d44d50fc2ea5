"""The engine's own DuckDB connection, and loading a model's rows into it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb

from reverse_etl.diff.compare import RAW_PREFIX
from reverse_etl.diff.sqltext import column_types, first_row, ident
from reverse_etl.diff.tables import CHANGED_ROWS, MODEL_ROWS
from reverse_etl.errors import SourceError
from reverse_etl.project.model_sql import ResolvedModel
from reverse_etl.warehouses.base import HoldingSource, Source

MODEL_TABLE = MODEL_ROWS


def engine_connection(tmp_dir: Path, memory_limit: str = "640MB",
                      threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB bounded to ``memory_limit``, spilling to the sync's tmp dir."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {"temp_directory": str(tmp_dir), "memory_limit": memory_limit}
    if threads:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    # Timestamps become text (digests, keys, RFC 3339) the same way on every machine.
    con.execute("SET TimeZone = 'UTC'")
    # Model SQL must never pick up a Python variable of ours by name.
    con.execute("SET python_enable_replacements = false")
    # Row order never matters to the engine; dropping it lets DuckDB stream and spill.
    con.execute("SET preserve_insertion_order = false")
    return con


_STREAM_FAILURE = re.compile(r"reading the stream registered as '\w+' failed: (?:Unknown error: )?(.*?)(?:\. Detail: Python exception:.*)?$")


def _stream_error(exc: BaseException) -> str:
    """One line from a DuckDB error, unwrapping a source error raised mid-stream."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    match = _STREAM_FAILURE.search(first)
    return match.group(1) if match else first


def load_model(con: duckdb.DuckDBPyConnection, source: Source, model: ResolvedModel,
               sync_name: str, select: Callable[[dict[str, str]], Sequence[str]] | None = None,
               *, hold: bool = False) -> dict[str, str]:
    """Run the model on the source and materialise it as ``model_rows``.

    Returns the table's columns as name → DuckDB type. The rows arrive as Arrow
    record batches and DuckDB consumes the stream directly, unless the source
    materialises them itself; only then is ``select`` (see ``Source.materialize``)
    called and ``hold`` honoured, so a caller checks for that.
    """
    try:
        materialize = getattr(source, "materialize", None)
        if materialize is None or not materialize(con, MODEL_TABLE, model.sql, select, hold=hold):
            reader = source.fetch(model.sql)
            con.register("model_stream", reader)
            con.execute(f"CREATE OR REPLACE TABLE {MODEL_TABLE} AS SELECT * FROM model_stream")
    except SourceError as exc:
        raise SourceError(f"sync {sync_name!r}: model {model.name!r} ({model.origin}) failed: {exc}") from None
    except duckdb.OutOfMemoryException:
        raise  # the engine's memory budget, not the model: the runner says which setting
    except duckdb.Error as exc:
        raise SourceError(f"sync {sync_name!r}: model {model.name!r} ({model.origin}) failed: "
                          f"{_stream_error(exc)}") from None
    finally:
        with contextlib.suppress(duckdb.Error):
            con.unregister("model_stream")
    return column_types(con, MODEL_TABLE)


def reread_rows(con: duckdb.DuckDBPyConnection, source: HoldingSource, key_sql: str, digest_sql: str,
                raw_columns: Sequence[str], *, every_row: bool = False) -> str | None:
    """The rows pass 2 encodes, read again from the model ``source`` holds, into ``CHANGED_ROWS``.

    Those are the rows with a null key, a new or changed digest (``delta_keys``) or a
    duplicate key (``dups``), or ``every_row``; held as ``cur_raw`` holds copied rows:
    ``key``, ``digest`` and the ``raw_columns`` as ``col:<name>``. ``key_sql`` and
    ``digest_sql`` are pass 1's, over the model's columns. Returns the table, or None
    when no row matters (then nothing is read).
    """
    if every_row:
        where = "TRUE"
    else:
        # Each kind of row only if there is one: an IN alone is a semi join, which an OR
        # with it makes a mark join over every row (1M rows, 1% changed: 0.10 s -> 0.07 s).
        # Engine tables by catalog: the model's names resolve in the warehouse.
        has_delta, has_dups, has_null = first_row(con, """
            SELECT EXISTS (SELECT 1 FROM delta_keys), EXISTS (SELECT 1 FROM dups),
                   EXISTS (SELECT 1 FROM cur_raw WHERE key IS NULL)""") or (False, False, False)
        keys = " UNION ALL ".join(f"SELECT key FROM memory.main.{table}"
                                  for table, wanted in (("delta_keys", has_delta), ("dups", has_dups)) if wanted)
        # The key computed again in the filter, not the select's: rows are filtered
        # before their digests and values are computed.
        conditions = [f"({key_sql}) IN ({keys})"] if keys else []
        if has_null:
            conditions.append(f"({key_sql}) IS NULL")
        if not conditions:
            return None
        where = " OR ".join(conditions)
    select = [f"{key_sql} AS key", f"{digest_sql} AS digest",
              *(f"{ident(c)} AS {ident(RAW_PREFIX + c)}" for c in raw_columns)]
    source.reread(con, CHANGED_ROWS, select, where)
    return CHANGED_ROWS

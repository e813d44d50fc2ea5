"""A snapshot on disk: a base file and, optionally, an overlay of the rows changed since.

Rewriting every row of a big snapshot because 1% of them changed costs more than
the rest of such a run (about 1 s per million rows of ten fields). So a run that
changes few rows writes only those into an *overlay*: one Parquet file with the
snapshot's columns plus ``dropped`` (a tombstone for a key the run removed).
The snapshot is the base with every key in the overlay replaced by its overlay
row (or removed, for a tombstone). Each overlay replaces the previous one (it
carries the earlier overlay's rows on), so there are never more than two files;
once the overlay would hold more than :data:`OVERLAY_SHARE` of the rows, the run
writes a new base instead (compaction). Snapshots below ``state.overlay_min_rows``
(project config) are always rewritten whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from reverse_etl.state.digests import read_parquet_sql

OVERLAY_SHARE = 0.10
"""Compact once the overlay would hold more than this share of the snapshot's rows:
every read of the snapshot joins its keys against the overlay's."""


def _text(value: str | Path) -> str:
    # (The state layer sits below the diff's SQL helpers, so it quotes its own few values.)
    return "'" + str(value).replace("'", "''") + "'"


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def parquet(path: str | Path) -> str:
    """``read_parquet('<path>')`` (hex digests of a file an earlier version wrote are converted)."""
    return read_parquet_sql(path, _text(path))


def relation(base: str | Path, overlay: str | Path | None, columns: Sequence[str] | None = None) -> str:
    """SQL for the snapshot's rows (``key``, the field columns, ``digest``) as a subquery.

    ``columns``: the columns to read (None: every column of the base file).
    """
    cols = "*" if columns is None else ", ".join(_column(c) for c in columns)
    if overlay is None:
        return f"(SELECT {cols} FROM {parquet(base)})"
    overlay_cols = "* EXCLUDE (dropped)" if columns is None else cols
    # A key in the overlay shadows its base row: an anti join (the overlay is small).
    return (f"(SELECT {cols} FROM {parquet(base)} b ANTI JOIN (SELECT key FROM {parquet(overlay)}) o "
            f"ON b.key = o.key UNION ALL BY NAME "
            f"SELECT {overlay_cols} FROM {parquet(overlay)} WHERE NOT dropped)")


def compact(base: Path, overlay: Path, target: Path) -> int:
    """Write the snapshot ``base`` + ``overlay`` as one file ``target``; returns its rows."""
    with duckdb.connect() as con:
        written = con.execute(f"COPY {relation(base, overlay)} TO {_text(target)} "
                              "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)").fetchone()
    return int(written[0]) if written else 0

"""Warehouse write-back: each run's record, rejected rows and change log, as tables in the source.

:mod:`.capture` copies them out of the run (vectorised, from the run's DuckDB
workspace) into a spool beside the state; :mod:`.flush` writes every spooled run
to the warehouse through a :mod:`.sinks` sink (DuckDB, Snowflake, SQLAlchemy),
replacing that run id's rows so a rerun never duplicates. A write-back that
fails is logged, noted on the run's result and retried by the next run: it never
touches the run's state commit or exit code.
"""

from __future__ import annotations

from reverse_etl.writeback.capture import writeback_hook
from reverse_etl.writeback.flush import flush_spool

__all__ = ["flush_spool", "writeback_hook"]

"""The delivery stage of a run: stream ``changes`` to the sender, journal each answer.

Every request the destination answers for good is appended to the journal
before the next result is handled, so a crash at any point loses nothing
acknowledged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from reverse_etl.diff.sqltext import literal
from reverse_etl.errors import ConfigError, DeliveryError
from reverse_etl.run.destination import BatchOutcome, Lane, Sender
from reverse_etl.run.outcome import failure_kind
from reverse_etl.state import Journal
from reverse_etl.warehouses.duckdb_source import arrow_reader


@dataclass
class DeliveryOutcome:
    """What the destination answered, by row id of ``changes``."""

    acked: list[tuple[int, int]] = field(default_factory=list)
    """Inclusive row-id ranges the destination acknowledged."""
    rejected: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)
    """Notes on acknowledged rows, with how many rows carry each."""
    requests: int = 0
    retries: int = 0
    rate_limit_wait_seconds: float = 0.0
    request_seconds: list[float] = field(default_factory=list)
    """Latency of each HTTP attempt, when the sender measures it."""
    error: str | None = None
    """Why delivery stopped early (credentials refused, halted), if it did."""
    error_kind: str = "delivery"
    """The failure kind of ``error`` (``auth`` for refused credentials)."""

    @property
    def acked_count(self) -> int:
        """Rows acknowledged."""
        return sum(last - first + 1 for first, last in self.acked)


def deliver_changes(con: duckdb.DuckDBPyConnection, sync_name: str,
                    lanes: Sequence[tuple[tuple[str, ...], Lane]],
                    sender_factory: Callable[[], Sender] | None, journal: Path | Callable[[], Journal],
                    progress: Callable[[int, int], None] | None = None) -> DeliveryOutcome:
    """Send every operation of ``changes`` that has a payload, lane by lane in order.

    ``journal``: the journal file, or a factory of its writer (opened only if
    something is sent; an object-store state mirrors each entry).
    """
    outcome = DeliveryOutcome()
    per_op = dict(con.execute("SELECT op, count(*) FROM changes WHERE payload IS NOT NULL GROUP BY op").fetchall())
    total = sum(per_op.values())
    if total == 0:
        return outcome
    if sender_factory is None:
        raise ConfigError("no delivery client configured")
    sender = sender_factory()
    writer = Journal(journal) if isinstance(journal, Path) else journal()
    done = 0

    def on_result(batch: BatchOutcome) -> None:
        outcome.acked.extend(writer.append(list(batch.acked), dict(batch.rejected), dict(batch.failed)))
        outcome.rejected.update(batch.rejected)
        outcome.failed.update(batch.failed)
        outcome.notes.update(batch.notes.values())

    def on_progress(rows: int) -> None:
        nonlocal done
        done += rows
        if progress:
            progress(done, total)

    try:
        for ops, lane in lanes:
            if not any(per_op.get(op) for op in ops):
                continue  # no rows for this endpoint: no clients, no event loop
            op_group = ", ".join(literal(op) for op in ops)
            stats = sender.deliver(lane, _chunks(con, f"op IN ({op_group}) AND payload IS NOT NULL"),
                                   on_result=on_result, progress=on_progress)
            outcome.requests += stats.requests
            # Optional on a sender (not every destination measures them).
            outcome.retries += int(getattr(stats, "retries", 0))
            outcome.rate_limit_wait_seconds += float(getattr(stats, "rate_limit_wait_seconds", 0.0))
            outcome.request_seconds.extend(getattr(stats, "request_seconds", ()))
            if stats.halted:
                outcome.error = (f"sync {sync_name!r} halted at the first row the destination rejected: "
                                 f"{stats.halt_reason or 'see reverse-etl rejected'}")
                break
    except DeliveryError as exc:
        outcome.error, outcome.error_kind = str(exc), failure_kind(exc)
    finally:
        writer.close()
    return outcome


def _chunks(con: duckdb.DuckDBPyConnection, where: str,
            size: int = 20_000) -> Iterator[tuple[pa.Array, pa.Array]]:
    """(row ids, payloads) as Arrow arrays, in row-id order, read lazily as the sender asks;
    never turned into Python objects here (the sender packs them in bulk).

    Row ids are contiguous per operation, so a lane's rows nearly fill the span of its
    ids: reading it ``size`` ids at a time sorts one chunk, never the whole change set
    (whose payloads spill to disk at millions of rows), and the row groups outside each
    range are skipped by their zone maps.
    """
    cursor = con.cursor()
    try:
        ((low_id, high_id),) = cursor.execute(f"SELECT min(row_id), max(row_id) FROM changes WHERE {where}").fetchall()
        if low_id is None:
            return
        low, high = int(low_id), int(high_id)
        for start in range(low, high + 1, size):
            reader = arrow_reader(cursor, f"SELECT row_id, payload FROM changes WHERE {where} "
                                          f"AND row_id BETWEEN {start} AND {start + size - 1} ORDER BY row_id", size)
            for batch in reader:
                yield batch.column(0), batch.column(1)
    finally:
        cursor.close()

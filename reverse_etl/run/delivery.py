"""The delivery stage of a run: stream ``changes`` to the client, journal each answer.

Every request Insider answers for good is appended to the journal before the
next result is handled, so a crash at any point loses nothing acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb

from reverse_etl.diff.sqltext import literal, scalar
from reverse_etl.errors import ConfigError, DeliveryError
from reverse_etl.insider.config import SyncConfig
from reverse_etl.state import Journal
from reverse_etl.state.journal import to_ranges
from reverse_etl.warehouses.duckdb_source import arrow_reader

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage description, rows done, rows total)"""


class Client(Protocol):
    """What a run needs from the delivery client (see :mod:`reverse_etl.insider.http`)."""

    def deliver(self, endpoint: Any, chunks: Any, *, on_result: Callable[[Any], None],
                skip_hook: bool = False, halt_on_reject: bool = False,
                progress: Callable[[int], None] | None = None) -> Any: ...


@dataclass
class DeliveryOutcome:
    """What Insider answered, by row id of ``changes``."""

    acked: list[tuple[int, int]] = field(default_factory=list)
    """Inclusive row-id ranges Insider acknowledged."""
    rejected: dict[int, str] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    requests: int = 0
    error: str | None = None
    """Why delivery stopped early (credentials refused, halted), if it did."""

    @property
    def acked_count(self) -> int:
        """Rows acknowledged."""
        return sum(last - first + 1 for first, last in self.acked)


def deliver_changes(con: duckdb.DuckDBPyConnection, sync: SyncConfig,
                    deliveries: Sequence[tuple[tuple[str, ...], str]],
                    client_factory: Callable[[], Client] | None, journal_path: Path,
                    progress: ProgressCallback | None = None) -> DeliveryOutcome:
    """Send every operation of ``changes`` that has a payload, in the mode's order."""
    from reverse_etl.insider.http import Endpoint

    outcome = DeliveryOutcome()
    total = scalar(con, "SELECT count(*) FROM changes WHERE payload IS NOT NULL")
    if total == 0:
        return outcome
    if client_factory is None:
        raise ConfigError("no delivery client configured")
    client = client_factory()
    journal = Journal(journal_path)
    done = 0

    def on_result(batch: Any) -> None:
        journal.append(batch.acked, batch.rejected, batch.failed)
        outcome.acked.extend(to_ranges(batch.acked))
        outcome.rejected.update(batch.rejected)
        outcome.failed.update(batch.failed)

    def on_progress(rows: int) -> None:
        nonlocal done
        done += rows
        if progress:
            progress(f"{sync.name}: sending", done, total)

    try:
        for ops, endpoint_name in deliveries:
            op_group = ", ".join(literal(op) for op in ops)
            stats = client.deliver(
                Endpoint[endpoint_name], _chunks(con, f"op IN ({op_group}) AND payload IS NOT NULL"),
                on_result=on_result, skip_hook=not sync.options.trigger_data_stream,
                halt_on_reject=not sync.options.skip_invalid_records, progress=on_progress)
            outcome.requests += int(getattr(stats, "requests", 0))
            if getattr(stats, "halted", False):
                outcome.error = (f"sync {sync.name!r} halted at the first row Insider rejected: "
                                 f"{getattr(stats, 'halt_reason', None) or 'see reverse-etl rejected'}")
                break
    except DeliveryError as exc:
        outcome.error = str(exc)
    finally:
        journal.close()
    return outcome


def _chunks(con: duckdb.DuckDBPyConnection, where: str,
            size: int = 20_000) -> Iterator[tuple[list[int], list[str]]]:
    """(row ids, payloads) in Arrow-sized chunks, read lazily as the client asks."""
    cursor = con.cursor()
    reader = arrow_reader(cursor, f"SELECT row_id, payload FROM changes WHERE {where} ORDER BY row_id", size)
    for batch in reader:
        yield batch.column(0).to_pylist(), batch.column(1).to_pylist()
    cursor.close()

"""The seam between a run and the destination it writes to.

The runner knows a destination only through these protocols: a
:class:`Destination` gives, per sync, a :class:`SyncMode` (which fields it
encodes, how rows become operations in ``changes``) and a :class:`Sender` (what
sends those operations). Insider's implementation lives in
``reverse_etl.insider.destination``; nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

from reverse_etl.diff.fields import EncodedField, Field
from reverse_etl.project.model_sql import ResolvedModel
from reverse_etl.run.results import SyncResult

Chunks = Iterable[tuple[Sequence[int], Sequence[str]]]
"""``(row ids, payloads)`` of ``changes``, read lazily."""
ModelResolver = Callable[[str], ResolvedModel]
"""Model name → its SQL (for modes that join other models, e.g. audience members)."""


@dataclass(frozen=True)
class RunGuards:
    """When a run refuses to send, or ends ``partial`` instead of ``success``."""

    fail_on: str = "rejected"
    """``rejected``: any invalid, rejected, failed or held-back row makes the run partial
    (exit 3); ``never``: such rows are listed but the run counts as a success."""
    max_invalid_ratio: float | None = None
    """Refuse to send when more than this share of the model's rows is invalid."""
    max_rejected_ratio: float | None = None
    """Fail the run when more than this share of the sent rows is rejected or failed."""
    max_removed_ratio: float = 0.2
    """Refuse a run that would clear or delete more than this share of the snapshot's users."""


class SyncSpec(Protocol):
    """What the runner reads of a sync's config."""

    @property
    def name(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def on_removed(self) -> str: ...
    @property
    def max_attempts(self) -> int: ...


class Lane(Protocol):
    """Where a group of operations is sent (an endpoint); opaque to the runner."""

    @property
    def name(self) -> str: ...


class BatchOutcome(Protocol):
    """The final answer to one request, by row id of ``changes``."""

    @property
    def acked(self) -> Sequence[int]: ...
    @property
    def rejected(self) -> Mapping[int, str]: ...
    @property
    def failed(self) -> Mapping[int, str]: ...
    @property
    def notes(self) -> Mapping[int, str]:
        """Details on some acknowledged rows (e.g. a delete of a user the destination did not know)."""
        ...


class SendStats(Protocol):
    """What one :meth:`Sender.deliver` call did."""

    @property
    def requests(self) -> int: ...
    @property
    def halted(self) -> bool: ...
    @property
    def halt_reason(self) -> str | None: ...


class Sender(Protocol):
    """Sends operations; reports each request's final outcome before the next is handled."""

    def deliver(self, lane: Lane, chunks: Chunks, *, on_result: Callable[[BatchOutcome], None],
                progress: Callable[[int], None] | None = None) -> SendStats: ...


class SyncRecords(Protocol):
    """Small JSON records a sync type keeps beside its snapshot (e.g. a segment's
    upload versions), stored wherever the sync's state lives."""

    def read_record(self, name: str) -> dict[str, Any]:
        """The record ``name`` (``{}`` when there is none)."""
        ...
    def write_record(self, name: str, record: dict[str, Any]) -> None:
        """Replace the record ``name``; durable (in the state store) when this returns."""
        ...


class SyncMode(Protocol):
    """How one sync's rows become a destination's operations (see ``diff.compare``)."""

    fields: list[Field]
    tracked: list[Field]
    columns_only: list[Field]
    custom_delivery: bool
    reshapes_rows: bool
    """True: ``prepare`` returns another table than the model's rows."""
    reconciles_resend: bool
    """True: a full resend is diffed against the last acknowledged snapshot (NULLs deleted,
    removed keys get ``on_removed``) instead of against nothing."""

    @property
    def key_label(self) -> str: ...
    @property
    def lanes(self) -> Sequence[tuple[tuple[str, ...], Lane]]:
        """(operations, lane) delivered together, in order."""
        ...
    @property
    def halts_on_invalid(self) -> bool:
        """True: an invalid row stops the run before anything is sent."""
        ...
    @property
    def guards(self) -> RunGuards:
        """The sync's thresholds for refusing or failing a run."""
        ...
    @property
    def allows_empty_model(self) -> bool:
        """True: an empty model may clear or delete every user it removes."""
        ...
    @property
    def digest_holds_key(self) -> bool:
        """True: a row's digest determines its key, so rows may match the snapshot on digests alone."""
        ...

    def fingerprint_parts(self, model: ResolvedModel) -> dict[str, object]:
        """Everything that decides what the snapshot means (a change means a full resend)."""
        ...
    def prepare_model(self, model: ResolvedModel, resolve: ModelResolver) -> ResolvedModel: ...
    def prepare(self, con: duckdb.DuckDBPyConnection, source_table: str, columns: dict[str, str]) -> str: ...
    def before_encode(self, con: duckdb.DuckDBPyConnection, rows_table: str,
                      column_of: Callable[[Field], str | None]) -> None: ...
    def every_row_fields(self) -> Sequence[Field]:
        """Fields whose raw values ``before_encode`` reads on every model row, not only the rows that matter."""
        ...
    def key_sql(self, column_of: Callable[[Field], str], value_of: Callable[[Field], str],
                *, portable: bool = False) -> str: ...
    def row_reasons(self, column_of: Callable[[Field], str], type_of: Callable[[Field], str],
                    value_of: Callable[[Field], str]) -> list[str]: ...
    def encode(self, field: Field, column: str | None, duck_type: str | None) -> EncodedField: ...
    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None: ...
    def prune_sql(self) -> str | None: ...
    def deliver_custom(self, con: duckdb.DuckDBPyConnection, records: SyncRecords,
                       result: SyncResult) -> None: ...


class Destination(Protocol):
    """A destination: a mode and a sender per sync."""

    def mode_for(self, sync: SyncSpec) -> SyncMode: ...
    def sender(self, sync: SyncSpec) -> Sender: ...
    def identity(self) -> dict[str, str]:
        """What makes this destination this one (e.g. partner, base URLs): part of a sync's state."""
        ...

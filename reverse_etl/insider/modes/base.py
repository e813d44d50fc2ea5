"""What every sync mode provides to the engine.

A mode decides which fields a sync encodes, which of them the snapshot tracks,
how a row is keyed, which rows are invalid beyond their fields' own rules, and
how the ``delta`` (rows new or changed since the snapshot) becomes operations
in ``changes``. Diffing, delivery, journaling and folding are shared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from reverse_etl.diff.sqltext import ident, trimmed_text_sql
from reverse_etl.insider.config import InsiderDestinationConfig, SyncConfig
from reverse_etl.insider.fields import EncodedField, Field, encode_field
from reverse_etl.insider.http.endpoints import Endpoint
from reverse_etl.project.model_sql import ResolvedModel
from reverse_etl.run.destination import ModelResolver, RunGuards, SyncRecords
from reverse_etl.run.results import SyncResult
from reverse_etl.state.digests import NULL_DIGEST

Delivery = tuple[tuple[str, ...], str]
"""(operations, Endpoint name) delivered together, in order."""

SNAPSHOT_OPTIONS = ("append_arrays", "treat_email_as_identifier", "treat_phone_as_identifier")
"""Options that change what is sent; toggling skip_hook or halting is no resend."""


class Mode(ABC):
    """Base of the sync modes."""

    deliveries: Sequence[Delivery] = ()

    def __init__(self, sync: SyncConfig) -> None:
        self.sync = sync
        self.destination: InsiderDestinationConfig | None = None
        """Set by :func:`~reverse_etl.insider.modes.mode_for` (modes that send on their own need it)."""
        self.fields: list[Field] = []
        self.tracked: list[Field] = []
        self.key_field: Field | None = None
        self.columns_only: list[Field] = []
        """Fields whose columns are read but not encoded (an event key column)."""

    @property
    def lanes(self) -> list[tuple[tuple[str, ...], Endpoint]]:
        """(operations, endpoint) delivered together, in order."""
        return [(ops, Endpoint[name]) for ops, name in self.deliveries]

    @property
    def halts_on_invalid(self) -> bool:
        """``options.skip_invalid_records: false``: an invalid row stops the run before sending."""
        return not self.sync.options.skip_invalid_records

    @property
    def guards(self) -> RunGuards:
        """``options.fail_on`` and the ratio thresholds."""
        o = self.sync.options
        return RunGuards(fail_on=o.fail_on, max_invalid_ratio=o.max_invalid_ratio,
                         max_rejected_ratio=o.max_rejected_ratio, max_removed_ratio=o.max_removed_ratio)

    @property
    def allows_empty_model(self) -> bool:
        """``options.allow_empty_model``: an empty model may clear or delete every removed user."""
        return self.sync.options.allow_empty_model

    def fingerprint_parts(self, model: ResolvedModel) -> dict[str, object]:
        """What decides the snapshot's meaning: the mapping, the options and the model's SQL.

        An event snapshot is only the set of event keys already sent, so only what
        defines a key counts: the key column, or (digest keys) the identifiers and
        event mapping. Resending events after a model edit would duplicate them.
        """
        sync = self.sync
        relevant: dict[str, Any]
        if sync.mode == "user_events" and sync.event is not None:
            if sync.event.key:
                return {"mode": sync.mode, "event_key": sync.event.key}
            relevant = sync.model_dump(mode="json", include={"mode", "identifiers", "event"})
            relevant["event"].pop("ttl_days", None)
            return relevant
        relevant = sync.model_dump(mode="json", include={"mode", "operation", "identifiers", "attributes"})
        relevant["options"] = sync.options.model_dump(include=set(SNAPSHOT_OPTIONS))
        relevant["model_sql"] = model.sql
        return relevant

    def encode(self, field: Field, column: str | None, duck_type: str | None) -> EncodedField:
        """SQL that encodes and validates ``field`` per Insider's rules."""
        return encode_field(field, column, duck_type)

    @property
    def key_label(self) -> str:
        """How messages name the key."""
        return self.key_field.label if self.key_field else "event key"

    def key_sql(self, column_of: Callable[[Field], str], value_of: Callable[[Field], str],
                *, portable: bool = False) -> str:
        """SQL of a row's key (text) over the model row.

        ``column_of(f)`` is the field's model column; ``value_of(f)`` its raw value
        as exact text (for keys that digest several fields). ``portable``: SQL that
        sqlglot transpiles for another warehouse (see :func:`trimmed_text_sql`).
        """
        assert self.key_field is not None
        return trimmed_text_sql(column_of(self.key_field), portable=portable)

    def row_reasons(self, column_of: Callable[[Field], str], type_of: Callable[[Field], str],
                    value_of: Callable[[Field], str]) -> list[str]:
        """Extra SQL reasons a row is invalid (beyond each field's own rules)."""
        return []

    def prepare(self, con: duckdb.DuckDBPyConnection, source_table: str, columns: dict[str, str]) -> str:
        """The table the fields read: ``source_table`` (the model rows, ``columns`` name → type)
        unless the mode reshapes them first (the ecommerce preset explodes products)."""
        return source_table

    def before_encode(self, con: duckdb.DuckDBPyConnection, rows_table: str,
                      column_of: Callable[[Field], str | None]) -> None:
        """Called once the rows pass 2 encodes are known (``delta_keys``, ``dups``), before ``cur``.

        ``rows_table`` holds every model row's raw values, ``column_of(f)`` names a
        field's column there (None: not mapped). A mode may build the tables its
        :meth:`row_reasons` read, restricted to the rows that matter this run.
        """
        return None  # most modes need nothing more

    def every_row_fields(self) -> Sequence[Field]:
        """The fields whose raw values :meth:`before_encode` reads on every model row.

        The runner may keep only these (and each row's key and digest) for every row,
        and read the other values of the rows that matter alone (``SyncRunner``).
        """
        return ()  # most modes read the rows that matter only

    @abstractmethod
    def build_changes(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create ``changes`` from ``delta``, ``cur`` and ``snap``."""

    def prune_sql(self) -> str | None:
        """Condition over a snapshot row (``s.`` columns) that drops it at fold time."""
        return None

    def prepare_model(self, model: ResolvedModel, resolve: ModelResolver) -> ResolvedModel:
        """The model the sync reads; a mode may add computed columns (audience membership).

        Called once per run before the fingerprint is taken, so whatever the mode
        adds is part of the snapshot's meaning.
        """
        return model

    reconciles_resend = False
    """True: a full resend still diffs against the last acknowledged snapshot (kept as
    knowledge), so values that became NULL are deleted and keys that left get
    ``on_removed``; the mode sends ``delta.resend`` rows in full."""

    reshapes_rows = False
    """True: :meth:`prepare` puts a view over the model's rows, so fields do not read the
    model's own columns (the runner then cannot compute keys and digests as it loads it)."""

    custom_delivery = False
    """True: the runner calls :meth:`deliver_custom` instead of row delivery and commit."""

    @property
    def digest_holds_key(self) -> bool:
        """True when a row's digest determines its key, so the diff may match rows on the digest alone.

        That holds when the key is :meth:`key_sql`'s text of the key field and that field
        is tracked: the digest covers the field's raw text, the key is a function of it,
        and two rows with one digest (barring an md5 collision, the odds every digest
        comparison already takes) have one key. An event's digest is its timestamp only,
        so two events can share one: events keep matching on (key, digest).
        """
        key = self.key_field
        return (type(self).key_sql is Mode.key_sql and key is not None and key.constant is None
                and not self.reshapes_rows and any(f is key for f in self.tracked))

    def deliver_custom(self, con: duckdb.DuckDBPyConnection, records: SyncRecords,
                       result: SyncResult) -> None:
        """Deliver and record state the mode's own way (one request per segment, e.g. FPS).

        ``records`` keeps the mode's own JSON records where the sync's state lives
        (a local directory or an object store); ``result`` is the run's result: set
        its outcome, message and counts.
        """
        raise NotImplementedError


# ----------------------------------------------------------------- helpers
def cur(f: Field) -> str:
    """A delta row's current value of ``f``."""
    return "d." + ident(f.name)


def old(f: Field) -> str:
    """A delta row's snapshot value of ``f`` (NULL when the row is new)."""
    return "d." + ident("s:" + f.name)


def snap(f: Field) -> str:
    """A removed row's snapshot value of ``f``."""
    return "s." + ident(f.name)


def writes(tracked: Sequence[Field], value: Callable[[Field], str], write: Callable[[Field], str]) -> str:
    """The ``v:``/``w:`` columns of ``changes``: what the snapshot takes once acknowledged."""
    return ", ".join(f"{value(f)} AS {ident('v:' + f.name)}, {write(f)} AS {ident('w:' + f.name)}"
                     for f in tracked)


def no_writes(tracked: Sequence[Field]) -> str:
    """``v:``/``w:`` columns that change nothing."""
    return writes(tracked, lambda f: "NULL::VARCHAR", lambda f: "FALSE")


def numbered(con: duckdb.DuckDBPyConnection, ops_sql: str, *, carries_digest: bool = False) -> None:
    """Create ``changes`` from ``ops_sql``, with row ids contiguous per operation (compact journal ranges).

    Each operation also carries its row's ``digest`` (from ``delta``): the fold sets
    it once every operation of the key is acknowledged, also after a crash. With
    ``carries_digest`` every branch of ``ops_sql`` selects it already (``d.digest``,
    NULL for removed keys); otherwise it is joined from ``delta`` by key, a second
    hash join over every operation (~0.8 s of a million-row first run).

    Numbering is one streaming ``row_number()`` per operation over the materialised
    operations, not a window sorted by operation: at a million rows the sort (which
    drags every payload along) cost more than building the payloads.
    """
    with_digest = ops_sql if carries_digest else \
        f"SELECT o.*, d.digest FROM ({ops_sql}) o LEFT JOIN delta d ON d.key = o.key"
    con.execute(f"CREATE OR REPLACE TABLE unnumbered_changes AS {with_digest}")
    counts = con.execute("SELECT op, count(*) FROM unnumbered_changes GROUP BY op ORDER BY op").fetchall()
    con.execute("DROP TABLE IF EXISTS changes")
    if len(counts) <= 1:
        # One operation (a first run): the fresh table's dense rowids are the row ids, no copy.
        con.execute("ALTER TABLE unnumbered_changes ADD COLUMN row_id BIGINT")
        con.execute("UPDATE unnumbered_changes SET row_id = rowid")
        con.execute("ALTER TABLE unnumbered_changes RENAME TO changes")
        return
    con.execute("CREATE TABLE changes AS SELECT 0::BIGINT AS row_id, * FROM unnumbered_changes LIMIT 0")
    offset = 0
    for op, rows in counts:
        con.execute(f"INSERT INTO changes SELECT ({offset} + row_number() OVER () - 1)::BIGINT, * "
                    "FROM unnumbered_changes WHERE op IS NOT DISTINCT FROM ?", [op])
        offset += int(rows)
    con.execute("DROP TABLE unnumbered_changes")


def once_per_row(con: duckdb.DuckDBPyConnection, tracked: Sequence[Field], op_sql: str, payload_sql: str) -> None:
    """``changes`` for modes that act once per new or changed row and forget removed ones."""
    numbered(con, f"""
      SELECT d.key, CASE WHEN d.s_key IS NULL THEN 'added' ELSE 'changed' END AS change,
             {op_sql} AS op, {payload_sql} AS payload,
             {writes(tracked, cur, lambda f: f"({cur(f)} IS NOT NULL)")}, d.digest AS digest
      FROM delta d
      UNION ALL
      {removed_rows(tracked)}
    """, carries_digest=True)


def removed_rows(tracked: Sequence[Field], op_sql: str = "'forget'", payload_sql: str = "NULL") -> str:
    """SELECT of snapshot rows whose key left the model (their ``digest`` is NULL)."""
    return (f"SELECT s.key, 'removed' AS change, {op_sql} AS op, {payload_sql} AS payload, "
            f"{no_writes(tracked)}, {NULL_DIGEST} AS digest FROM snap s SEMI JOIN removed_keys r ON s.key = r.key")

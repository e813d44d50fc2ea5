"""The commit stage: fold what Insider acknowledged into a new snapshot, atomically.

Also crash recovery: a run that died leaves its change set (``pending-<run>``)
and journal; :meth:`Committer.recover` folds them before the next diff.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from reverse_etl.diff import compare as diff
from reverse_etl.diff import rejected
from reverse_etl.diff.fields import Field
from reverse_etl.diff.sqltext import literal, scalar
from reverse_etl.state import SyncState, digests, read_journal, snapshot_files
from reverse_etl.state.store import Meta, Pending

SnapshotFiles = tuple[str, str | None]
"""(base, overlay) names of the snapshot files a ``snap`` was read from."""


class Committer:
    """Writes a sync's snapshot and rejected rows (``new_snap``, ``new_rej``)."""

    def __init__(self, state: SyncState, tracked: Sequence[Field], fingerprint: str,
                 prune_sql: str | None, destination: str | None = None, *,
                 overlay_min_rows: int | None = None) -> None:
        self.state = state
        self.overlay_min_rows = overlay_min_rows
        """Snapshots from this many rows get overlays of changed rows (None: never)."""
        self.destination = destination
        """The destination this run sends to, recorded with the snapshot it acknowledges."""
        self.tracked = list(tracked)
        self.fingerprint = fingerprint
        self.prune_sql = prune_sql

    def commit(self, con: duckdb.DuckDBPyConnection, run_id: str,
               acked: Sequence[tuple[int, int]], *, base: SnapshotFiles | None = None) -> Meta:
        """Fold this run's acknowledged rows and make the result current.

        ``base``: ``snap`` is the current snapshot as read from these files (not a
        full resend's knowledge, not reshaped by an audit), so a run that changed
        few rows may write only those (an overlay, see ``state.snapshot_files``).
        """
        spans = acked_table(con, acked)
        auto = ", ".join(literal(op) for op in diff.AUTO_ACKED_OPS)
        touched = (bool(acked) or bool(scalar(con, f"SELECT count(*) FROM changes WHERE op IN ({auto})"))
                   or bool(scalar(con, "SELECT count(*) FROM delta")))
        unchanged = not touched and self.state.meta().fingerprint == self.fingerprint
        if not unchanged:
            diff.fold(con, self.tracked, "acked", self.prune_sql, acked_spans=spans,
                      touched=self._reads_touched(base))
        rejected.build_new_rejected(con, run_id, with_validation=True, carry_unacked=False)
        return self.write(con, run_id, self.fingerprint, keep_snapshot=unchanged,
                          destination=self.destination, base=None if unchanged else base)

    def write(self, con: duckdb.DuckDBPyConnection, run_id: str, fingerprint: str | None,
              *, keep_snapshot: bool = False, destination: str | None = None,
              base: SnapshotFiles | None = None, fields: Sequence[Field] | None = None,
              with_delta: bool = True) -> Meta:
        """Write ``new_snap`` (or only its changed rows) and ``new_rej``, then make them current atomically.

        ``keep_snapshot``: nothing changed, so the current snapshot files stay (a
        no-change run over millions of rows must not rewrite them). ``base``: the
        files ``snap`` was read from, when it is the current snapshot (see :meth:`commit`);
        ``fields``: the fields folded (default: the tracked ones); ``with_delta``: the fold
        also applied this run's ``delta`` (False: a crashed run's, folded from ``changes`` alone).
        """
        previous = self.state.meta()
        rej_name = f"rejected-{run_id}.parquet"
        overlay: str | None = None
        overlay_rows = 0
        if keep_snapshot and previous.snapshot:
            snap_name, overlay, rows = previous.snapshot, previous.overlay, previous.rows
            overlay_rows = previous.overlay_rows
        elif self._may_overlay(con, previous, fingerprint, base, with_delta=with_delta):
            assert previous.snapshot is not None
            snap_name, overlay = previous.snapshot, f"overlay-{run_id}.parquet"
            old = snapshot_files.parquet(self.state.path(previous.overlay)) if previous.overlay else None
            rows = previous.rows + diff.create_overlay(con, self.tracked if fields is None else fields, old)
            overlay_rows = self._copy(con, "new_overlay", overlay)
        else:
            snap_name = f"snapshot-{run_id}.parquet"
            rows = self._copy(con, "new_snap", snap_name)
        con.execute(f"COPY new_rej TO {literal(str(self.state.path(rej_name)))} (FORMAT parquet)")
        # Files kept keep their checksums (verified at load): no second pass over them.
        kept = {n: previous.checksums[n] for n in (snap_name, overlay)
                if n and n in (previous.snapshot, previous.overlay) and n in previous.checksums}
        meta = Meta(fingerprint=fingerprint, snapshot=snap_name, rejected=rej_name,
                    folded_run=run_id, rows=rows, checksums=kept, destination=destination,
                    overlay=overlay, overlay_rows=overlay_rows)
        self.state.commit(meta)
        return meta

    def _copy(self, con: duckdb.DuckDBPyConnection, view: str, name: str) -> int:
        # COPY answers the rows it wrote: no second pass over the view.
        written = con.execute(f"COPY {view} TO {literal(str(self.state.path(name)))} "
                                    "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)").fetchone()
        return int(written[0]) if written else 0

    def _reads_touched(self, base: SnapshotFiles | None) -> bool:
        """Whether this commit reads the fold's ``fold_touched`` (an overlay write does).

        Not built otherwise: it costs a join of every change with the delta (1.3 s of a
        10M-row first run, which writes no overlay).
        """
        return self._overlay_possible(self.state.meta(), self.fingerprint, base)

    def _overlay_possible(self, previous: Meta, fingerprint: str | None, base: SnapshotFiles | None) -> bool:
        """``snap`` is the current snapshot, under the same mapping, big enough for an overlay."""
        if (base is None or previous.snapshot is None or base != (previous.snapshot, previous.overlay)
                or fingerprint != previous.fingerprint or self.prune_sql is not None
                or self.overlay_min_rows is None or previous.rows < self.overlay_min_rows):
            return False
        # (A base of hex digests, written by an earlier version, is rewritten in today's form.)
        return not digests.holds_hex_digests(self.state.path(previous.snapshot))

    def _may_overlay(self, con: duckdb.DuckDBPyConnection, previous: Meta, fingerprint: str | None,
                     base: SnapshotFiles | None, *, with_delta: bool) -> bool:
        """Write only the changed rows: an overlay is possible (:meth:`_overlay_possible`)
        and stays small (else compact)."""
        if not self._overlay_possible(previous, fingerprint, base):
            return False
        # At most one overlay row per key in changes or (a normal run's) delta.
        delta = " UNION SELECT key FROM delta" if with_delta else ""
        touched = scalar(con, f"SELECT count(*) FROM (SELECT key FROM changes{delta})")
        return previous.overlay_rows + touched <= snapshot_files.OVERLAY_SHARE * previous.rows

    def recover(self, con: duckdb.DuckDBPyConnection) -> int:
        """Fold a crashed run's acknowledged rows into the snapshot; returns rows folded."""
        pending = self.state.pending()
        if pending is None:
            return 0
        if self.state.meta().folded_run == pending.run_id:
            self.state.clear_pending()  # crashed after its commit: nothing left to do
            return 0
        folded = self.fold_pending(con, pending)
        rej_path = self.state.rejected_path()
        rejected.load_rejected(con, str(rej_path) if rej_path else None)
        con.execute(f"CREATE OR REPLACE TABLE held ({rejected.REJECTED_COLUMNS})")
        rejected.build_new_rejected(con, pending.run_id, with_validation=False, carry_unacked=True)
        # The crashed run's acknowledgements belong to the destination it sent to.
        same = pending.fingerprint == self.fingerprint
        folded_over = (None if pending.resend_base or not pending.base_snapshot
                       else (pending.base_snapshot, pending.base_overlay))
        self.write(con, pending.run_id, pending.fingerprint,
                   destination=pending.destination or self.state.meta().destination,
                   base=folded_over, fields=None if same else fields_named(pending.fields), with_delta=False)
        return folded

    def fold_pending(self, con: duckdb.DuckDBPyConnection, pending: Pending) -> int:
        """``new_snap`` from the snapshot, a pending change set and its journal."""
        pending_path, journal_path = self.state.pending_paths(pending.run_id)
        same = pending.fingerprint == self.fingerprint
        fields = self.tracked if same else fields_named(pending.fields)
        # Fold into what that run diffed against: the snapshot it read, or nothing
        # for a full resend (whose unacknowledged rows must then go out again).
        base = self.state.path(pending.base_snapshot) if pending.base_snapshot else None
        overlay = self.state.path(pending.base_overlay) if pending.base_overlay else None
        if base is not None and base.exists():
            source = snapshot_files.relation(base, overlay)
            if pending.resend_base:
                diff.load_resend_snapshot(con, source, fields)
            else:
                diff.load_snapshot(con, source, fields)
        else:
            diff.create_empty_snapshot(con, fields)
        # The pending file holds no payloads (folding needs none).
        con.execute(f"CREATE OR REPLACE TABLE changes AS SELECT *, NULL::VARCHAR AS payload "
                    f"FROM {digests.read_parquet_sql(pending_path, literal(str(pending_path)))}")
        contents = read_journal(journal_path)
        spans = acked_table(con, contents.acked_ranges)
        rejected.outcome_table(con, contents.rejected, contents.failed)
        diff.fold(con, fields, "acked", self.prune_sql if same else None, with_delta=False, acked_spans=spans)
        return sum(last - first + 1 for first, last in contents.acked_ranges)


def fields_named(names: Sequence[str]) -> list[Field]:
    """Stand-in fields for folding a snapshot made under an older mapping (names only matter)."""
    out = []
    for name in names:
        group, _, rest = name.partition(".")
        custom = rest.startswith("custom.")
        out.append(Field(group, rest.removeprefix("custom."), custom, name))  # type: ignore[arg-type]
    return out


def acked_table(con: duckdb.DuckDBPyConnection, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``acked`` (row_id) from inclusive row-id ranges; returns them merged (see :func:`merge_ranges`)."""
    # One range per request (10,000 at 10M rows) but contiguous when Insider accepts
    # everything: merged, they are few. Written as SQL text, never as Arrow: handing
    # DuckDB an Arrow table imports pandas (~1 s and ~80 MB of the run's memory).
    spans = merge_ranges(ranges)
    con.execute("CREATE OR REPLACE TEMP TABLE acked_spans (s BIGINT, e BIGINT)")
    for start in range(0, len(spans), 1000):
        values = ", ".join(f"({int(s)}, {int(e)})" for s, e in spans[start:start + 1000])
        con.execute(f"INSERT INTO acked_spans VALUES {values}")
    con.execute("CREATE OR REPLACE TABLE acked AS SELECT unnest(range(s, e + 1)) AS row_id FROM acked_spans")
    con.execute("DROP TABLE acked_spans")
    return spans


def merge_ranges(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges sorted, with overlapping and adjacent ones joined."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged

"""The DuckDB tables the stages of a run hand to each other, and their columns.

They stay DuckDB tables (not Python objects): joins, spills and Parquet copies
over them are the engine's performance design. A stage reads and writes them by
these names; the column conventions below are the contract between the diff,
the destination's mode (which builds ``changes``), delivery and the fold.
"""

from __future__ import annotations

MODEL_ROWS = "model_rows"
"""The model's rows as the source returned them (dropped once ``cur_raw`` is built), or,
when the source computed pass 1 as it materialised them, with ``ROW_KEY`` and
``ROW_DIGEST`` too (``cur_raw`` is then a view over it)."""

ROW_KEY = "__reverse_etl_key"
ROW_DIGEST = "__reverse_etl_digest"
"""Columns of ``model_rows`` holding each row's key and digest, when pass 1 ran in the model's own pass."""

CHANGED_ROWS = "model_changed_rows"
"""When ``model_rows`` keeps only keys, digests and the mode's every-row fields: the rows pass 2
encodes, read again from the model, as ``cur_raw`` would hold them (``key``, ``digest``, ``col:<name>``)."""

CURRENT_RAW = "cur_raw"
"""Every model row: ``key``, the mapped raw columns (``col:<name>``), ``digest`` of the tracked ones."""

PRESENT = "present"
"""View of ``cur_raw``'s keys: which keys the model still returns."""

SNAPSHOT = "snap"
"""What the destination acknowledged: ``key``, each tracked field (encoded), ``digest``."""

DELTA_KEYS = "delta_keys"
"""Keys that are new or whose digest differs from the snapshot's."""

REMOVED_KEYS = "removed_keys"
"""Snapshot keys the model no longer returns (what the modes' removal operations act on)."""

DUPLICATE_KEYS = "dups"
"""Keys that appear more than once in the model, with their count ``n``."""

CURRENT = "cur"
"""The rows that matter this run (delta, null or duplicate keys): encoded fields and ``reason``."""

DELTA = "delta"
"""Valid rows of ``cur`` with their snapshot values: ``s_key`` and ``s:<field>``."""

CHANGES = "changes"
"""One row per operation, built by the mode: ``row_id``, ``key``, ``change`` (added, changed,
removed), ``op``, ``payload`` (what is sent, NULL for no request), ``digest``, and per tracked
field ``v:<field>`` (value the snapshot takes once acknowledged) and ``w:<field>`` (take it?)."""

NEW_SNAPSHOT = "new_snap"
"""The fold's result (a view, read once by the commit): the snapshot after this run's acknowledged operations."""

OLD_REJECTED = "old_rej"
"""Rows held back by earlier runs (``diff.rejected.REJECTED_COLUMNS``)."""

HELD = "held"
"""Rows of this run held back after ``max_attempts`` (not sent until they change)."""

OUTCOME = "outcome"
"""Per ``row_id`` of ``changes`` that was not acknowledged: ``kind`` (rejected, failed), ``reason``."""

ACKED = "acked"
"""``row_id``s of ``changes`` the destination acknowledged (from the journal)."""

NEW_REJECTED = "new_rej"
"""Rows held back after this run, with the reason for each."""

IDENTITY_CONFLICTS = "id_conflicts"
"""Made by a mode before ``cur``: ``key``, ``reason`` for rows sharing a non-key identifier value
(the destination would merge them into one user)."""

WAREHOUSE_REMOVED = "wh_removed"
"""``engine: warehouse`` only: the snapshot keys the warehouse says left the model (``key``)."""

FOLD_TOUCHED = "fold_touched"
"""The fold's rows for the keys this run touched (a view): the new row, ``live``, ``was_present``."""

TOUCHED = "touched"
"""``fold_touched`` materialised, when the commit writes an overlay (``state.snapshot_files``)."""

NEW_OVERLAY = "new_overlay"
"""The overlay the commit writes instead of a whole snapshot (a view over ``touched``)."""

ALL_TABLES = (WAREHOUSE_REMOVED, MODEL_ROWS, CURRENT_RAW, PRESENT, SNAPSHOT, DELTA_KEYS, REMOVED_KEYS, DUPLICATE_KEYS, CURRENT,
              DELTA, CHANGES, NEW_SNAPSHOT, OLD_REJECTED, HELD, OUTCOME, ACKED, NEW_REJECTED, IDENTITY_CONFLICTS,
              FOLD_TOUCHED, TOUCHED, NEW_OVERLAY)

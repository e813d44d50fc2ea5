"""What a run diffs against: the acknowledged snapshot, or the knowledge a full resend keeps.

A full resend (``--full-refresh``, a changed mapping or model, ``reset``, a lost
``meta.json``) sends every row in full, but it still reconciles: the last snapshot
Insider acknowledged (or the one ``reset`` kept aside as ``previous``) is loaded as
knowledge (``compare.load_resend_snapshot``), so attributes that became NULL are
deleted and keys that left the model get ``on_removed``. Only when nothing is known
does the reason say that those cannot be cleared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from reverse_etl.diff import compare as diff
from reverse_etl.diff.fields import Field
from reverse_etl.run.commit import Committer
from reverse_etl.state import SyncState, snapshot_files

MAPPING_CHANGED = "the sync's mapping or model changed since the last run"
NOTHING_KNOWN = "no earlier snapshot: values that became NULL and users who left cannot be cleared"
FORGOTTEN = "reset --forget-everything"
NEW_DESTINATION = ("first run for this destination: the state of this sync belongs to another "
                   "Insider (partner or base URL), so every row is sent and nothing is cleared")
"""``Meta.folded_run`` of a state that ``reset --forget-everything`` emptied."""


@dataclass(frozen=True)
class Baseline:
    """The ``snap`` a run compares against, and why it is a full resend (if it is)."""

    reason: str | None
    """The full resend reason, or None for an incremental run."""
    snapshot: str | None
    """The state file ``snap`` was read from (a pending change set's base), if any."""
    resend: bool
    """``snap`` is knowledge for a full resend, not an incremental base."""
    foreign: bool = False
    """The state on disk belongs to another destination: none of it applies (rejected rows neither)."""
    overlay: str | None = None
    """The overlay file over ``snapshot`` that ``snap`` was read with, if any."""


def load_baseline(con: duckdb.DuckDBPyConnection, state: SyncState, committer: Committer,
                  tracked: Sequence[Field], fingerprint: str, *, full_refresh: bool,
                  reconcile: bool, plan: bool, destination: str | None = None) -> Baseline:
    """Create ``snap`` and say whether (and why) this run is a full resend.

    ``reconcile``: the mode uses earlier knowledge on a full resend (attribute
    upserts); other modes diff a full resend against nothing, as before. ``plan``:
    a reader without the lock: the state is read once (``SyncState.pin``) and a
    crashed run's change set is folded in memory, to show what a run would do.
    ``destination``: who this run sends to; state another destination acknowledged
    is never used (not even as resend knowledge).
    Raises :class:`~reverse_etl.errors.StateError` for a truncated or corrupted file.
    """
    if plan:
        spill = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
        meta = state.pin(Path(spill))
    else:
        meta = state.meta()
    state.verify(meta)
    if destination is not None and meta.destination not in (None, destination):
        diff.create_empty_snapshot(con, tracked)
        return Baseline(NEW_DESTINATION, None, False, foreign=True)
    snapshot = state.path(meta.snapshot) if meta.snapshot else None
    overlay = state.path(meta.overlay) if meta.overlay else None
    # Half a snapshot (its overlay lost) is no snapshot.
    complete = overlay is None or overlay.exists()
    current = snapshot if snapshot is not None and snapshot.exists() and complete else None
    reason: str | None = None
    if full_refresh:
        reason = "--full-refresh"
    elif meta.snapshot is None:
        if meta.previous:
            reason = "reset: every row is resent, reconciled against the snapshot kept by reset"
        elif state.meta_missing():
            reason = "meta.json missing: every row is resent, reconciled against the newest snapshot file"
        elif meta.folded_run == FORGOTTEN:
            reason = FORGOTTEN
        else:
            reason = "first run" if meta.fingerprint is None else "snapshot missing"
    elif current is None:
        reason = "snapshot missing"
    elif meta.fingerprint != fingerprint:
        reason = MAPPING_CHANGED
    if reason is None:
        assert current is not None
        diff.load_snapshot(con, snapshot_files.relation(current, overlay), tracked)
        pending = state.pending() if plan else None
        if pending is not None:
            committer.fold_pending(con, pending)  # plan shows a crashed run being finished
            diff.replace_snapshot(con, "new_snap")
        return Baseline(None, meta.snapshot, False, overlay=meta.overlay)
    knowledge = _knowledge(state, current, meta.previous)
    if reconcile and knowledge is not None:
        with_overlay = overlay if knowledge == current else None
        try:
            diff.load_resend_snapshot(con, snapshot_files.relation(knowledge, with_overlay), tracked)
            return Baseline(reason, meta.snapshot if with_overlay else knowledge.name, True,
                            overlay=meta.overlay if with_overlay else None)
        except duckdb.Error:  # an unreadable orphan file (meta.json lost): nothing known
            pass
    diff.create_empty_snapshot(con, tracked)
    if reconcile and reason != "first run":
        reason = f"{reason}; {NOTHING_KNOWN}"
    return Baseline(reason, None, False)


def _knowledge(state: SyncState, current: Path | None, previous: str | None) -> Path | None:
    """The newest acknowledged snapshot there is: current, kept by reset, or orphaned."""
    if current is not None:
        return current
    if previous and state.path(previous).exists():
        return state.path(previous)
    if state.meta_missing():
        return state.orphan_snapshot()
    return None

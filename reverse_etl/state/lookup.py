"""What the state holds for one key: its snapshot values, its rejection, and which runs say so.

Read once under no lock (a pinned copy), the way ``rejected`` reads: a run in
progress is not disturbed and the answer is one consistent commit.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reverse_etl.state.ledger import Ledger, RunRecord
from reverse_etl.state.store import SyncState


@dataclass
class KeyLookup:
    """A key as the sync's state knows it."""

    sync: str
    key: str
    in_snapshot: bool = False
    snapshot: dict[str, Any] = field(default_factory=dict)
    """The values Insider acknowledged for this key (mapped field -> value)."""
    snapshot_run: RunRecord | None = None
    """The run that committed the current snapshot: the values above were acknowledged by then."""
    rejected: dict[str, Any] | None = None
    """The row's entry among the rejected rows: kind, reason (Insider's answer), attempts, op, payload."""
    held: bool = False
    """Rejected ``max_attempts`` times with the same payload: not sent again until it changes."""
    last_sent_run: RunRecord | None = None
    """The last run that sent this row and was refused (known for rejected rows)."""

    @property
    def found(self) -> bool:
        """The state knows this key at all."""
        return self.in_snapshot or self.rejected is not None

    @property
    def answer(self) -> str:
        """What Insider answered, in one line."""
        if self.rejected is not None:
            kind = self.rejected.get("kind")
            who = "the validator refused it before sending" if kind == "validation" else (
                "the request kept failing" if kind == "failed" else "Insider rejected it")
            held = "; held back until the row changes" if self.held else ""
            return f"{who}: {self.rejected.get('reason')}{held}"
        if self.in_snapshot:
            return "acknowledged"
        return "not known: never sent, or removed from the model and forgotten"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["found"], out["answer"] = self.found, self.answer
        return out


def lookup_key(state: SyncState, ledger: Ledger, key: str, max_attempts: int) -> KeyLookup:
    """Look ``key`` up in the snapshot and the rejected rows of ``state``."""
    result = KeyLookup(sync=state.sync_name, key=key)
    # Pin beside the state (same file system): hard links, not a copy of a big snapshot.
    beside = state.dir.parent if state.remote is None and state.dir.parent.is_dir() else None
    with tempfile.TemporaryDirectory(prefix=".lookup-", dir=beside) as pinned:
        meta = state.pin(Path(pinned))
        snap, rej = state.snapshot_path(), state.rejected_path()
        overlay = state.path(meta.overlay) if meta.overlay else None
        if snap is not None and snap.exists():
            # An overlay row (or tombstone) replaces the base file's row of its key.
            rows = _rows(overlay, key) if overlay is not None and overlay.exists() else []
            if not rows:
                rows = _rows(snap, key)
            rows = [r for r in rows if not r.pop("dropped", False)]
            if rows:
                row = rows[0]
                row.pop("key", None)
                row.pop("digest", None)
                result.in_snapshot, result.snapshot = True, {k: _decoded(v) for k, v in row.items()}
        if rej is not None and rej.exists():
            rows = _rows(rej, key)
            if rows:
                result.rejected = rows[0]
                result.held = (rows[0].get("kind") == "insider" and int(rows[0].get("attempts") or 0) >= max_attempts)
    records = {r.run_id: r for r in ledger.records(state.sync_name)}
    if meta.folded_run:
        result.snapshot_run = records.get(meta.folded_run)
    if result.rejected is not None and result.rejected.get("last_run"):
        result.last_sent_run = records.get(str(result.rejected["last_run"]))
    return result


def _decoded(value: Any) -> Any:
    """A snapshot value as Insider received it (the snapshot keeps each as JSON text)."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _rows(path: Path, key: str) -> list[dict[str, Any]]:
    # Read the key column first, then only the matching rows' values.
    table = pq.read_table(path, filters=pc.field("key") == key)
    return table.to_pylist()

"""Choosing the state store of a project from ``state:``: local files or an object store.

Everything that opens a sync's state or the run ledger goes through
:func:`open_sync_state` and :func:`open_ledger`, so that ``state: s3://...`` moves
snapshots, journals, pending change sets, rejected rows and the ledger together.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import orjson

from reverse_etl.errors import StateError
from reverse_etl.project.config import StateConfig
from reverse_etl.state.ledger import Ledger, RunRecord
from reverse_etl.state.objectstore import store_for
from reverse_etl.state.remote import SyncMirror
from reverse_etl.state.store import SyncState

LEDGER_PREFIX = "runs/"


def open_sync_state(state_dir: Path, config: StateConfig, sync_name: str) -> SyncState:
    """The state of one sync: ``state_dir`` itself, or its working copy of ``config.url``."""
    url = config.url
    if url is None:
        return SyncState(state_dir, sync_name)
    return SyncState(state_dir, sync_name, remote=SyncMirror(store_for(url), sync_name),
                     lease_seconds=config.lease_seconds)


class ObjectStoreLedger(Ledger):
    """The run ledger in an object store: one object per run (stores cannot append).

    ``runs/<started_at>-<run_id>.json``, so listing them in order is the history.
    """

    def __init__(self, url: str) -> None:
        self.store = store_for(url)
        self.path = Path(f"{self.store.url}/{LEDGER_PREFIX}")  # for messages only

    def append(self, record: RunRecord) -> None:
        """Add a finished run (an :class:`OSError` if the store cannot be reached)."""
        name = f"{LEDGER_PREFIX}{record.started_at.replace(':', '')}-{record.run_id}.json"
        try:
            self.store.put(name, orjson.dumps(asdict(record)))
        except StateError as exc:
            raise OSError(str(exc)) from exc

    def records(self, sync: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Recorded runs, oldest first, optionally of one sync and only the last ``limit``."""
        known = RunRecord.__dataclass_fields__
        out: list[RunRecord] = []
        for name in self.store.list(LEDGER_PREFIX):
            blob = self.store.get(name)
            if blob is None:
                continue
            try:
                data = orjson.loads(blob.data)
            except orjson.JSONDecodeError:
                continue
            if sync is None or data.get("sync") == sync:
                out.append(RunRecord(**{k: v for k, v in data.items() if k in known}))
        return out[-limit:] if limit else out

    def raw_lines(self) -> list[bytes]:
        """Every record as one JSON line (``state copy``)."""
        return [orjson.dumps(asdict(r)) for r in self.records()]


def open_ledger(state_dir: Path, config: StateConfig) -> Ledger:
    """The project's run ledger: ``runs.jsonl`` in ``state_dir``, or objects under the URL."""
    url = config.url
    return Ledger(state_dir) if url is None else ObjectStoreLedger(url)

"""A sync's state on disk: snapshot, pending change set, journal, lock, ledger."""

from __future__ import annotations

from reverse_etl.state.journal import Journal, read_journal
from reverse_etl.state.ledger import Ledger, RunRecord
from reverse_etl.state.lock import SyncLock
from reverse_etl.state.store import SyncState

__all__ = ["Journal", "Ledger", "RunRecord", "SyncLock", "SyncState", "read_journal"]

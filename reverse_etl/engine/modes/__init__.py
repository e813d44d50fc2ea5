"""Sync modes: how a sync's rows become Insider operations."""

from __future__ import annotations

from reverse_etl.config.schema import SyncConfig
from reverse_etl.engine.modes.actions import UserAction
from reverse_etl.engine.modes.attributes import DeleteAttributes, UpsertAttributes
from reverse_etl.engine.modes.base import Mode
from reverse_etl.engine.modes.events import UserEvents

__all__ = ["Mode", "mode_for"]


def mode_for(sync: SyncConfig) -> Mode:
    """The mode object that handles ``sync``."""
    if sync.mode == "user_events":
        return UserEvents(sync)
    if sync.operation in ("upsert", "replace_attributes"):
        return UpsertAttributes(sync)
    if sync.operation == "delete_attributes":
        return DeleteAttributes(sync)
    return UserAction(sync)

"""Sync modes: how a sync's rows become Insider operations."""

from __future__ import annotations

from reverse_etl.insider.config import InsiderDestinationConfig, SyncConfig
from reverse_etl.insider.modes.actions import UserAction
from reverse_etl.insider.modes.attributes import DeleteAttributes, UpsertAttributes
from reverse_etl.insider.modes.base import Mode
from reverse_etl.insider.modes.ecommerce import EcommerceEvents
from reverse_etl.insider.modes.events import UserEvents

__all__ = ["Mode", "mode_for"]


def mode_for(sync: SyncConfig, destination: InsiderDestinationConfig | None = None) -> Mode:
    """The mode object that handles ``sync`` (``destination``: for modes that send on their own)."""
    mode = _mode_for(sync)
    mode.destination = destination
    return mode


def _mode_for(sync: SyncConfig) -> Mode:
    if sync.mode == "user_events":
        assert sync.event is not None
        if sync.event.preset == "ecommerce":
            return EcommerceEvents(sync)
        return UserEvents(sync)
    if sync.audiences or sync.mode in ("user_audiences", "first_party_segment"):
        return _audience_mode(sync)
    if sync.operation in ("upsert", "replace_attributes"):
        return UpsertAttributes(sync)
    if sync.operation == "delete_attributes":
        return DeleteAttributes(sync)
    return UserAction(sync)


def _audience_mode(sync: SyncConfig) -> Mode:
    # Imported here: these modes pull in the segment file server and upload code.
    if sync.mode == "first_party_segment":
        from reverse_etl.insider.segments.mode import FirstPartySegment

        return FirstPartySegment(sync)
    if sync.mode == "user_audiences":
        from reverse_etl.insider.modes.user_audiences import UserAudiences

        return UserAudiences(sync)
    from reverse_etl.insider.modes.audiences import AudienceUpsert

    return AudienceUpsert(sync)

"""Config of computed audiences, ``mode: user_audiences`` and ``mode: first_party_segment``.

Kept apart from ``schema.py`` (which imports it) so the audience rules live in
one place. The checks take the finished ``SyncConfig`` as ``Any`` to avoid an
import cycle; they raise ``ValueError`` so pydantic reports the file and field.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from reverse_etl.insider.rules import INSIDER_NAME
from reverse_etl.project.config import Strict

SEGMENT_NAME_MAX = 40
"""insider-api.md §6: ``segmentName`` is at most 40 characters."""
TD_ATTRIBUTES = ("td_audience_id", "td_audience_name")
"""The two arrays of Treasure Data's user-audiences export (equal length)."""
_SEGMENT_IDENTIFIER = {"em": "email", "pn": "phone_number", "uuid": "uuid"}


def snake_case(name: str) -> str:
    """``High Value Customers`` → ``high_value_customers`` (Segment Engage's rule)."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


class AudienceConfig(Strict):
    """One computed audience: a condition over the sync's model, or a member model."""

    name: str
    """Display name (``High Value Customers``); its snake_case is the boolean attribute."""
    when: str | None = None
    """SQL condition over the model's columns (runs in the warehouse, as part of the model)."""
    model: str | None = None
    """A model whose rows are the members; it returns the sync's key identifier column."""
    id: int | None = None
    """Numeric audience id, required by ``audience_delivery: td_user_audiences``."""

    @model_validator(mode="after")
    def _one_source(self) -> AudienceConfig:
        if (self.when is None) == (self.model is None):
            raise ValueError(f"audience {self.name!r}: set exactly one of `when:` (a SQL condition) "
                             "or `model:` (a model whose rows are the members)")
        if not INSIDER_NAME.match(self.snake):
            raise ValueError(f"audience name {self.name!r} becomes {self.snake!r} in snake_case, which "
                             "must match ^[a-z][a-z0-9_]*$; start the name with a letter")
        return self

    @property
    def snake(self) -> str:
        """The snake_case name: boolean attribute and snapshot column."""
        return snake_case(self.name)


class SegmentConfig(Strict):
    """A first-party segment upload (insider-api.md §6)."""

    name: str = Field(min_length=1)
    """Segment name in Insider (≤ 40 characters, unique in the account)."""
    attribute: str = "em"
    """What the values are: ``em``/``pn``/``uuid`` (email, phone, uuid) or any attribute name
    (default or custom, e.g. ``store_id``; Insider: "either an identifier or any attribute")."""
    attribute_name: str | None = None
    """What to send as ``attributeName`` (default: ``attribute``, the short name)."""
    column: str | None = None
    """The model's column (default: email / phone_number / uuid by ``attribute``, else the attribute)."""
    host: str = "127.0.0.1"
    """Local file server and callback receiver bind here (storage: local)."""
    port: int = Field(0, ge=0, le=65535)
    """Port of the local file server and callback receiver (0: any free port)."""
    public_url: str | None = None
    """Base URL Insider reaches the local server at (default ``http://host:port``)."""
    callback_url: str | None = None
    """Production: your endpoint receiving Insider's callback; the run then does not wait."""
    wait_seconds: float = Field(60.0, ge=0)
    """How long a run waits for the callback before recording the upload as pending."""
    storage: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str = "reverse_etl/segments"
    url_expiry_seconds: int = Field(12 * 3600, ge=60)
    """Lifetime of a presigned S3 URL (Amperity keeps files 12 hours)."""
    max_file_bytes: int = Field(10_000_000, ge=100)
    """Budget per file (Insider's limit is 10 or 50 MB); bigger member sets are split or refused."""
    on_oversize: Literal["split", "refuse"] = "split"

    @model_validator(mode="after")
    def _checks(self) -> SegmentConfig:
        if self.attribute not in _SEGMENT_IDENTIFIER and not INSIDER_NAME.match(self.attribute):
            raise ValueError(f"segment attribute {self.attribute!r} must be em, pn, uuid or an attribute "
                             "name matching ^[a-z][a-z0-9_]*$ (as on Insider's attributes page)")
        if len(self.name) > SEGMENT_NAME_MAX:
            raise ValueError(f"segment name {self.name!r} is {len(self.name)} characters; Insider "
                             f"allows at most {SEGMENT_NAME_MAX}")
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("segment storage s3 needs s3_bucket")
        if self.storage == "local" and (self.callback_url is not None or self.wait_seconds <= 0):
            # The run itself serves the file: it must stay until Insider has fetched it.
            raise ValueError("storage local serves the file from this run, so it must wait for "
                             "Insider's callback: set wait_seconds > 0 and no callback_url, or use storage: s3")
        return self

    @property
    def identifier(self) -> str | None:
        """The Insider identifier kind the values are; ``None`` for an attribute segment."""
        return _SEGMENT_IDENTIFIER.get(self.attribute)


def fill_segment_identifiers(data: Any) -> Any:
    """``mode: first_party_segment`` without ``identifiers:``: derive them from ``segment``."""
    if not isinstance(data, dict) or data.get("mode") != "first_party_segment" or "identifiers" in data:
        return data
    segment = data.get("segment")
    if not isinstance(segment, dict):
        return data
    attribute = segment.get("attribute", "em")
    kind = _SEGMENT_IDENTIFIER.get(attribute) if isinstance(attribute, str) else None
    if kind is None:
        # An attribute segment reads one column, not an identifier; the mapping only
        # names that column (the mode encodes it as the attribute, never as an identifier).
        column = segment.get("column") or (attribute if isinstance(attribute, str) else "value")
        return {**data, "identifiers": {"uuid": column}}
    return {**data, "identifiers": {kind: segment.get("column") or kind}}


def check_audiences(sync: Any) -> None:
    """Cross-field rules of audiences, user_audiences and first_party_segment."""
    mode, operation = sync.mode, sync.operation
    td_ops = ("append", "replace", "remove")
    if mode != "user_audiences" and operation in td_ops:
        raise ValueError(f"operation {operation} belongs to mode user_audiences")
    if sync.audiences:
        if mode != "user_attributes" or operation not in ("upsert", "replace_attributes"):
            raise ValueError("audiences belong to user_attributes syncs with operation upsert or replace_attributes")
        _check_audience_list(sync)
    if mode == "user_audiences":
        if operation not in td_ops:
            raise ValueError("mode user_audiences takes operation append, replace or remove")
        if sorted(sync.attributes) != sorted(TD_ATTRIBUTES):
            raise ValueError("mode user_audiences maps exactly `attributes: {td_audience_id: <column>, "
                             "td_audience_name: <column>}` (numbers and names, equal length)")
    if (mode == "first_party_segment") != (sync.segment is not None):
        raise ValueError("mode first_party_segment needs `segment: {name, attribute}`, and `segment:` "
                         "belongs to that mode only")
    if mode == "first_party_segment":
        if sync.attributes or sync.audiences or sync.event is not None or operation != "upsert":
            raise ValueError("mode first_party_segment takes `segment:` only (no attributes, audiences, "
                             "event or operation)")
        if len(sync.identifiers.columns()) != 1:
            raise ValueError("mode first_party_segment reads one column: set segment.column, not identifiers")


def _check_audience_list(sync: Any) -> None:
    seen: set[str] = set()
    for audience in sync.audiences:
        if audience.snake in seen:
            raise ValueError(f"two audiences are named {audience.snake!r} in snake_case; rename one")
        seen.add(audience.snake)
        if audience.snake in sync.attributes:
            raise ValueError(f"audience {audience.name!r} ({audience.snake}) is also a mapped attribute; rename one")
    if sync.audience_delivery == "array":
        if not INSIDER_NAME.match(sync.audience_attribute):
            raise ValueError(f"audience_attribute {sync.audience_attribute!r} must match ^[a-z][a-z0-9_]*$")
        if sync.audience_attribute in sync.attributes or sync.audience_attribute in seen:
            raise ValueError(f"audience_attribute {sync.audience_attribute!r} is also a mapped attribute or "
                             "audience; the audience array needs its own attribute")
    if sync.audience_delivery == "td_user_audiences":
        missing = [a.name for a in sync.audiences if a.id is None]
        if missing:
            raise ValueError(f"audience_delivery td_user_audiences needs a numeric `id:` on every audience; "
                             f"missing on {', '.join(map(repr, missing))}")
        ids = [a.id for a in sync.audiences]
        if len(set(ids)) != len(ids):
            raise ValueError("audience ids must be unique")
        clash = [n for n in TD_ATTRIBUTES if n in sync.attributes]
        if clash:
            raise ValueError(f"{clash[0]} is written by audience_delivery td_user_audiences; do not map it")

"""The syncs.yml schema: pydantic models, strict (``extra="forbid"``).

Names on the Insider side (attribute, identifier and event parameter names) are
the keys of the mapping dicts; warehouse column names are the values. A list of
column names is shorthand for mapping each to the same (lower-cased) name.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from reverse_etl.errors import UsageError
from reverse_etl.insider.audience_config import (
    AudienceConfig,
    SegmentConfig,
    check_audiences,
    fill_segment_identifiers,
)
from reverse_etl.insider.pull.config import ExportList
from reverse_etl.insider.rules import (
    EVENT_NAME,
    INSIDER_NAME,
)
from reverse_etl.project.config import (
    MAX_NAME_LENGTH,
    SYNC_NAME,
    Project,
    ProjectConfigBase,
    Strict,
)
from reverse_etl.project.schedule import AuditSchedule, Schedule, TagSchedule


# ------------------------------------------------------------------- destination
class RateLimits(Strict):
    """Requests per minute per endpoint family (Insider's documented limits)."""

    upsert_per_minute: int = Field(default=25_000, gt=0, description="shared with attribute delete")
    identity_update_per_minute: int = Field(default=2_000, gt=0)
    identity_delete_per_minute: int = Field(default=25_000, gt=0, description="Insider's reference")
    user_delete_per_minute: int = Field(default=10_000, gt=0)
    anonymize_per_minute: int = Field(default=500, gt=0)
    profile_read_per_minute: int = Field(
        default=1_000, gt=0, description="profile read quota units (a read costs 1, +0.5 with events)")


class InsiderDestinationConfig(Strict):
    """Insider One credentials, hosts and delivery tuning."""

    type: Literal["insider"] = "insider"
    partner: str
    api_key: SecretStr
    api_base_url: str = "https://unification.useinsider.com"
    fps_base_url: str = "https://contact.useinsider.com"
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=8, ge=0)
    max_batch_users: int = Field(default=1_000, ge=1, le=1_000)
    max_batch_bytes: int = Field(default=5_000_000, ge=1_000, le=5_000_000)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    verify_delay_seconds: float = Field(
        default=5.0, ge=0, description="after an ambiguous failure of an appending request, wait this "
        "long for Insider to finish it before reading the profiles back")

    @field_validator("partner")
    @classmethod
    def _lowercase_partner(cls, value: str) -> str:
        if value != value.lower():
            raise ValueError(f"partner name must be lowercase; write {value.lower()!r}")
        if not value:
            raise ValueError("partner name is empty")
        return value

    @field_validator("api_base_url", "fps_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


# ------------------------------------------------------------------------- syncs
class IdentifierMapping(Strict):
    """Insider identifier → model column."""

    uuid: str | None = None
    email: str | None = None
    phone_number: str | None = None
    custom: dict[str, str] = {}

    @field_validator("custom")
    @classmethod
    def _custom_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not INSIDER_NAME.match(name):
                raise ValueError(f"custom identifier name {name!r} must match ^[a-z][a-z0-9_]*$")
        return value

    def columns(self) -> dict[str, str]:
        """Flat map of identifier path (``uuid``, ``custom.loyalty_id``) → column."""
        flat = {k: v for k, v in (("uuid", self.uuid), ("email", self.email),
                                  ("phone_number", self.phone_number)) if v}
        flat.update({f"custom.{k}": v for k, v in self.custom.items()})
        return flat

    @model_validator(mode="after")
    def _at_least_one(self) -> IdentifierMapping:
        if not self.columns():
            raise ValueError("map at least one identifier (uuid, email, phone_number or custom)")
        return self


class SyncOptions(Strict):
    """Per-sync delivery options (Segment / Treasure Data names in comments)."""

    append_arrays: bool = False  # False → "not_append": true: the model holds the whole array
    trigger_data_stream: bool = True  # False → top-level "skip_hook": true
    skip_invalid_records: bool = True  # False → halt at the first invalid row
    treat_email_as_identifier: bool = True
    treat_phone_as_identifier: bool = True
    allow_empty_model: bool = False
    """False: a model that suddenly returns no rows must not clear or delete every user."""
    fail_on: Literal["rejected", "never"] = "rejected"
    """``rejected``: any invalid, rejected, failed or held-back row makes the run partial (exit 3)."""
    max_invalid_ratio: float | None = Field(default=None, ge=0, le=1)
    """Refuse to send when more than this share of the model's rows is invalid."""
    max_rejected_ratio: float | None = Field(default=None, ge=0, le=1)
    """Fail the run when more than this share of the rows sent is rejected or failed."""
    max_removed_ratio: float = Field(default=0.2, ge=0, le=1)
    """Refuse a run whose on_removed would clear or delete more than this share of the synced users."""



Operation = Literal[
    "upsert", "replace_attributes", "delete_attributes", "delete_identifiers", "delete_pii",
    "delete_users", "append", "replace", "remove",
]
"""``append | replace | remove`` belong to ``mode: user_audiences`` (Treasure Data's names)."""


class EventMapping(Strict):
    """How a user_events sync turns model rows into Insider events."""

    name: str | None = None
    """A constant event name (``purchase``), or use ``name_column``."""
    name_column: str | None = None
    timestamp: str = "timestamp"
    """Column with the event time (TIMESTAMP, DATE or RFC 3339 text)."""
    key: str | None = None
    """Column holding a unique event id; default: a digest of the user, name, time and params."""
    params: dict[str, str] = {}
    """Event parameter → column; standard parameters at the root, others under ``custom``."""
    preset: Literal["ecommerce"] | None = None
    """``ecommerce``: map Segment-style e-commerce columns (insider-api.md §9)."""
    ttl_days: int = Field(default=90, ge=1)
    """Insider drops events older than the tenant's TTL; such rows are rejected with a reason."""

    @model_validator(mode="after")
    def _one_name(self) -> EventMapping:
        if self.preset is None and (self.name is None) == (self.name_column is None):
            raise ValueError("set exactly one of name (a constant) or name_column")
        if self.name is not None and not EVENT_NAME.match(self.name):
            raise ValueError(f"event name {self.name!r} must match ^[a-z0-9][a-zA-Z0-9._-]*$")
        for param in self.params:
            if not INSIDER_NAME.match(param):
                raise ValueError(f"event parameter name {param!r} must match ^[a-z][a-z0-9_]*$")
        return self


class SyncConfig(Strict):
    """One sync: a model pushed to Insider in one mode."""

    name: str
    model: str
    mode: Literal["user_attributes", "user_events", "user_audiences", "first_party_segment"] = "user_attributes"
    operation: Operation = "upsert"
    identifiers: IdentifierMapping
    attributes: dict[str, str] = {}
    event: EventMapping | None = None
    on_removed: Literal["ignore", "clear_attributes", "delete_user"] = "ignore"
    max_attempts: int = Field(default=5, ge=1, description="deliveries tried per rejected row")
    tags: list[str] = []
    schedule: Schedule | None = None
    """When ``reverse-etl serve`` runs this sync (cron + time zone; a bare string is UTC)."""
    audit: AuditSchedule | None = None
    """When ``reverse-etl serve`` audits this sync against Insider, and when drift alerts."""
    options: SyncOptions = Field(default_factory=SyncOptions)
    audiences: list[AudienceConfig] = []
    """Computed audiences of a user_attributes upsert sync (membership flips; see config.audiences)."""
    audience_delivery: Literal["boolean", "array", "td_user_audiences"] = "boolean"
    audience_attribute: str = "audiences"
    """The custom array attribute of ``audience_delivery: array``."""
    segment: SegmentConfig | None = None
    """``mode: first_party_segment``: the segment to upload."""

    @model_validator(mode="before")
    @classmethod
    def _segment_identifiers(cls, data: Any) -> Any:
        return fill_segment_identifiers(data)

    @field_validator("name")
    @classmethod
    def _sync_name(cls, value: str) -> str:
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"sync name is {len(value)} characters long; use at most {MAX_NAME_LENGTH}")
        if not SYNC_NAME.match(value):
            raise ValueError("sync name may hold letters, digits, '_', '.', '-' only")
        return value

    @field_validator("model")
    @classmethod
    def _model_name(cls, value: str) -> str:
        # A name, not a path: models/<name>.sql or a dbt model (package.model, model.v2).
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"model name is {len(value)} characters long; use at most {MAX_NAME_LENGTH}")
        if not SYNC_NAME.match(value):
            raise ValueError("model must be a model name (letters, digits, '_', '.', '-'), not a path")
        return value

    @field_validator("attributes", mode="before")
    @classmethod
    def _list_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(column).lower(): str(column) for column in value}
        return value

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not INSIDER_NAME.match(name):
                raise ValueError(
                    f"attribute name {name!r} must match ^[a-z][a-z0-9_]*$ (lowercase, digits, _)"
                )
        return value

    @model_validator(mode="after")
    def _mode_fits(self) -> SyncConfig:
        if self.mode == "user_events":
            if self.event is None:
                raise ValueError("mode user_events needs an `event:` mapping (name or name_column, timestamp)")
            if self.operation != "upsert" or self.attributes:
                raise ValueError("mode user_events takes `event:`, not operation or attributes")
        elif self.event is not None:
            raise ValueError("`event:` belongs to mode user_events")
        if self.operation == "delete_identifiers" and len(self.identifiers.columns()) != 1:
            raise ValueError("operation delete_identifiers maps exactly one identifier: the one to delete")
        if self.operation in ("delete_attributes",) and not self.attributes:
            raise ValueError("operation delete_attributes needs `attributes:` (the ones to delete)")
        if self.operation in ("delete_identifiers", "delete_pii", "delete_users") and self.attributes:
            raise ValueError(f"operation {self.operation} takes no attributes; remove them")
        if self.on_removed != "ignore" and (self.mode != "user_attributes" or self.operation not in
                                           ("upsert", "replace_attributes")):
            raise ValueError("on_removed applies to user_attributes upsert/replace_attributes syncs only")
        check_audiences(self)
        return self


class ProjectConfig(ProjectConfigBase):
    """The whole syncs.yml of a project that syncs to Insider."""

    destination: InsiderDestinationConfig
    syncs: list[SyncConfig]
    exports: ExportList = []
    """Raw data exports pulled back from Insider (``reverse-etl pull NAME``)."""
    schedules: list[TagSchedule] = []
    """Schedules of selected syncs (``select: tag:daily``) for ``reverse-etl serve``."""

    @model_validator(mode="after")
    def _unique_names(self) -> ProjectConfig:
        seen: set[str] = set()
        for sync in self.syncs:
            if sync.name in seen:
                raise ValueError(f"sync name {sync.name!r} is used twice; names must be unique")
            seen.add(sync.name)
        return self




InsiderProject = Project[ProjectConfig]
"""A loaded project whose syncs go to Insider."""


def find_sync(project: InsiderProject, name: str) -> SyncConfig:
    """The sync called ``name``; raises UsageError listing the known names."""
    for sync in project.config.syncs:
        if sync.name == name:
            return sync
    known = ", ".join(s.name for s in project.config.syncs) or "none"
    raise UsageError(f"no sync named {name!r} in {project.config_path.name} (known: {known})")

"""The ``alerts:`` and ``writeback:`` sections of syncs.yml (how unattended runs report).

Both are destination-neutral: they hang off the end of every run, whatever the
syncs send to. The models are strict like the rest of the file (unknown fields
are errors, numbers refuse ``true``/``false``, secrets refuse surrounding
whitespace), but they derive from their own small base so that
:mod:`reverse_etl.project.config` can import them without a cycle.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class _Section(BaseModel):
    """Strict base: unknown fields are errors; secrets may not carry whitespace."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_padded_secret(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            key = field.alias if field.alias in data else name
            value = data.get(key)
            if "SecretStr" in str(field.annotation) and isinstance(value, str) and value != value.strip():
                raise PydanticCustomError("secret_whitespace",
                                          "has leading or trailing whitespace or a newline; strip it",
                                          {"field": key})
        return data


# ------------------------------------------------------------------ alerts
class WebhookAlertConfig(_Section):
    """A generic webhook: one POST with a JSON body per alert."""

    type: Literal["webhook"]
    url: SecretStr
    """Often carries a token in its path or query: a secret (use ``{{ env_var(...) }}``)."""
    headers: dict[str, SecretStr] = {}
    """Extra request headers (e.g. ``Authorization``); their values are secrets."""


class SlackAlertConfig(_Section):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat): ``{"text": ...}``."""

    type: Literal["slack"]
    url: SecretStr


class EmailAlertConfig(_Section):
    """Email through an SMTP server (stdlib :mod:`smtplib`)."""

    type: Literal["email"]
    host: str
    port: StrictInt = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("from_")
    @classmethod
    def _one_address(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"{value[:60]!r} is not an email address; write name@example.com")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not _EMAIL.match(address):
                raise ValueError(f"{address[:60]!r} is not an email address; write name@example.com")
        return value


AlertDestinationConfig = Annotated[
    WebhookAlertConfig | SlackAlertConfig | EmailAlertConfig, Field(discriminator="type")
]


class AlertsConfig(_Section):
    """When to alert and where to.

    ``on_failure``: a run that failed (or was interrupted). ``rejected_ratio``: a
    partial run whose rejected + failed rows exceed this share of the rows sent
    (0 alerts on any partial run; null never). ``stale_after_hours``: a sync
    with no successful run for this long (null: not checked).
    """

    destinations: list[AlertDestinationConfig] = Field(min_length=1)
    on_failure: bool = True
    rejected_ratio: StrictFloat | None = Field(default=0.0, ge=0, le=1)
    stale_after_hours: StrictFloat | None = Field(default=None, gt=0)
    timeout_seconds: StrictFloat = Field(default=5.0, gt=0, le=60)
    """How long one delivery may take (webhooks and SMTP alike); a slow receiver never holds a run."""


# --------------------------------------------------------------- write-back
def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value[:70]!r} is not a plain SQL name; use letters, digits and _ "
                         "(starting with a letter), at most 63 characters")
    return value


class WritebackConfig(_Section):
    """Tables in the source warehouse that receive each run's record, rejected rows and changes.

    Created if missing; a rerun of the write-back for one run id replaces that
    run's rows (never duplicates them).
    """

    schema_: str = Field(default="reverse_etl", alias="schema")
    runs_table: str = "sync_runs"
    rejected_table: str = "sync_rejected_rows"
    changes_table: str = "sync_changes"
    include_payload: bool = False
    """Also write each change's payload (what was sent) to the change log."""

    _names = field_validator("schema_", "runs_table", "rejected_table", "changes_table")(_identifier)

    @field_validator("changes_table")
    @classmethod
    def _distinct(cls, value: str, info: Any) -> str:
        others = {info.data.get("runs_table"), info.data.get("rejected_table")}
        if value in others:
            raise ValueError(f"{value!r} is already used by another write-back table; give each its own name")
        return value

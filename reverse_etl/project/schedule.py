"""``schedule:`` in syncs.yml: when ``reverse-etl serve`` runs a sync on its own.

A schedule is a five-field cron expression and a time zone. The short form
``schedule: "0 * * * *"`` means UTC (said so on every page and in ``validate``);
the long form ``schedule: {cron: "0 6 * * *", timezone: Europe/Istanbul}`` names
the zone, so "6 o'clock" never silently depends on the server's local time.
A project may also schedule every sync of a tag (``schedules:`` at the top level).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from reverse_etl.project.config import Strict


class Schedule(Strict):
    """A cron expression evaluated in an explicit time zone."""

    cron: str
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return {"cron": data} if isinstance(data, str) else data

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter  # type: ignore[import-untyped]

        text = " ".join(value.split())
        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ValueError(f"{value!r} is not a five-field cron expression "
                             "(minute hour day-of-month month day-of-week), e.g. '0 * * * *'")
        return text

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as UTC or "
                             "Europe/Istanbul") from None
        return value

    def describe(self) -> str:
        """``0 * * * * (UTC)``: the expression and its zone, for pages and messages."""
        return f"{self.cron} ({self.timezone})"


class TagSchedule(Schedule):
    """``schedules: [{select: tag:daily, cron: ..., timezone: ...}]``: a schedule for many syncs."""

    select: str

    @field_validator("select")
    @classmethod
    def _selector(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("select must name syncs: a sync name, tag:TAG or model:MODEL")
        return value.strip()


class AuditSchedule(Schedule):
    """``audit:`` of a sync: when ``reverse-etl serve`` audits it, how, and when drift alerts.

    ``sample`` users through the profile endpoint (the default: 500), or, with
    ``segment``, everything through that segment's raw export (a full audit; one
    export per segment per UTC day). Drift alerts (``alerts:``) when the drifted
    share of the users checked is above ``alert_above`` (0: any drift).
    """

    sample: int = Field(default=500, ge=1, le=100_000)
    segment: int | None = Field(default=None, ge=1)
    """A segment id: audit everything through its raw export instead of a sample."""
    alert_above: float = Field(default=0.0, ge=0.0, le=1.0)

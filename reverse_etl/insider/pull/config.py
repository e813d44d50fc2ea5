"""The ``exports:`` section of syncs.yml: Insider raw data exports pulled into the warehouse.

This module imports pydantic only: :mod:`reverse_etl.insider.config` imports it to
build ``ProjectConfig``, so importing that module back here would be a cycle.

::

    exports:
      - name: cart_activity                 # reverse-etl pull cart_activity
        segment_id: 123456789               # a dynamic segment
        attributes: ["*"]                   # or [name, email, tier]; custom ones come back as c_<name>
        events:
          start: -7d                        # ISO date/datetime (UTC unless an offset is given) or -7d/-12h/-30m
          end: now
          wanted:
            - name: item_added_to_cart
              params: [product_id, unit_price, timestamp]
              filter: {key: product_id, operator: eq, values: [P1, P2]}   # or values_url
        format: parquet                     # csv | parquet | json
        destination: {table: insider_cart_activity, mode: replace}      # replace | append
        webhook: {host: 127.0.0.1, port: 8788, public_url: https://me.example/hook, wait_seconds: 3600}
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from reverse_etl.insider.rules import EVENT_NAME, INSIDER_NAME
from reverse_etl.project.config import Strict

EXPORT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# An unquoted warehouse identifier, optionally schema- or database-qualified.
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")
_RELATIVE = re.compile(r"^-\s*(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EVENT_FIELDS = frozenset({"timestamp", "event_name"})


def resolve_time(value: str, now: datetime) -> int:
    """Epoch seconds of an export date: ``now``, ``-7d`` (s, m, h, d, w) or ISO 8601.

    A date is midnight UTC; a datetime without an offset is UTC. Raises ValueError.
    """
    text = value.strip()
    if text == "now":
        return int(now.timestamp())
    relative = _RELATIVE.match(text)
    if relative:
        delta = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        return int((now - delta).timestamp())
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date: use ISO 8601 (2024-05-01, "
                         "2024-05-01T08:00:00Z), 'now' or a relative time like -7d, -12h") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def _time_text(value: Any) -> Any:
    # YAML turns an unquoted 2024-05-01 into a date and 2024-05-01 08:00:00 into a datetime.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


class EventFilter(Strict):
    """The one filter a wanted event may have: ``values`` or ``values_url``, not both."""

    key: str
    operator: Literal["eq", "ne", "lt", "gt", "lteq", "gteq"]
    values: list[str | int | float] | None = None
    values_url: str | None = None
    """An http(s) URL of a headerless one-column file of values."""

    @model_validator(mode="after")
    def _values_xor_url(self) -> EventFilter:
        if (self.values is None) == (self.values_url is None):
            raise ValueError("give exactly one of values (a list) or values_url (a file URL)")
        if self.values is not None:
            if not self.values:
                raise ValueError("values is empty; list at least one value")
            if self.operator not in ("eq", "ne") and len(self.values) != 1:
                raise ValueError(f"operator {self.operator} compares with exactly one value")
        if self.values_url is not None and not re.match(r"^https?://\S+$", self.values_url):
            raise ValueError("values_url must be an http:// or https:// URL")
        if not self.key:
            raise ValueError("key is empty; name the event parameter to filter on")
        return self


class WantedEvent(Strict):
    """An event to export, the parameters to export with it and an optional filter."""

    name: str
    params: list[str] = []
    filter: EventFilter | None = None

    @field_validator("name")
    @classmethod
    def _event_name(cls, value: str) -> str:
        if not EVENT_NAME.match(value):
            raise ValueError(f"event name {value!r} must match {EVENT_NAME.pattern}")
        return value

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: list[str]) -> list[str]:
        for param in value:
            if param not in _EVENT_FIELDS and not INSIDER_NAME.match(param):
                raise ValueError(f"parameter name {param!r} must match {INSIDER_NAME.pattern}")
        return value


class ExportEvents(Strict):
    """Which events to export and the time window they must fall in."""

    start: Annotated[str, Field(description="ISO date/datetime, 'now' or -7d")]
    end: str = "now"
    wanted: list[WantedEvent] = Field(min_length=1)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _time_text(value)

    @field_validator("start", "end")
    @classmethod
    def _parses(cls, value: str) -> str:
        resolve_time(value, datetime.now(UTC))  # raises ValueError with the accepted forms
        return value

    @model_validator(mode="after")
    def _window(self) -> ExportEvents:
        now = datetime.now(UTC)
        start, end = resolve_time(self.start, now), resolve_time(self.end, now)
        if start > end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self

    def epoch_range(self, now: datetime) -> tuple[int, int]:
        """``(start_date, end_date)`` in epoch seconds, relative times taken from ``now``."""
        return resolve_time(self.start, now), resolve_time(self.end, now)


class ExportDestination(Strict):
    """The warehouse table the export lands in."""

    table: str
    mode: Literal["replace", "append"] = "replace"

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not TABLE_NAME.match(value):
            raise ValueError("table must be a plain identifier, optionally qualified "
                             "(schema.table), of letters, digits and _")
        return value


class ExportWebhook(Strict):
    """The local receiver Insider's ``{"url": ...}`` hook is posted to."""

    host: str = "127.0.0.1"
    """Address the receiver binds to (0.0.0.0 to listen on every interface)."""
    port: int = Field(default=0, ge=0, le=65535)
    """0: any free port (fine with the emulator; real Insider needs a fixed, reachable one)."""
    path: str = "/reverse-etl/export-ready"
    public_url: str | None = None
    """The URL sent to Insider; default ``http://<host>:<port><path>``."""
    wait_seconds: float = Field(default=3600, gt=0, le=86400)
    """How long to wait for the hook before giving up."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with /")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://\S+$", value):
            raise ValueError("public_url must be an http:// or https:// URL")
        return value


class ExportConfig(Strict):
    """One raw data export (insider-api.md §7): what to ask for and where it lands."""

    name: str
    segment_id: int = Field(gt=0)
    attributes: list[str] = []
    events: ExportEvents | None = None
    format: Literal["csv", "parquet", "json"] = "parquet"
    destination: ExportDestination
    webhook: ExportWebhook = ExportWebhook()

    @field_validator("name")
    @classmethod
    def _export_name(cls, value: str) -> str:
        if not EXPORT_NAME.match(value):
            raise ValueError(f"export name {value!r} must match {EXPORT_NAME.pattern} "
                             "(lowercase letters, digits, _)")
        return value

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != "*" and not INSIDER_NAME.match(name):
                raise ValueError(f"attribute name {name!r} must be '*' or match "
                                 f"{INSIDER_NAME.pattern}")
        return value

    @model_validator(mode="after")
    def _something_wanted(self) -> ExportConfig:
        if not self.attributes and self.events is None:
            raise ValueError("an export needs attributes (a list, or ['*']) or events, or both")
        return self


def _unique_names(exports: list[ExportConfig]) -> list[ExportConfig]:
    seen: set[str] = set()
    for export in exports:
        if export.name in seen:
            raise ValueError(f"export name {export.name!r} is used twice; names must be unique")
        seen.add(export.name)
    return exports


ExportList = Annotated[list[ExportConfig], AfterValidator(_unique_names)]
"""The ``exports:`` list of ``ProjectConfig``: export names are unique."""

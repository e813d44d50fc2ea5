"""The engine's part of syncs.yml: sources, state, models, dbt, and a loaded project.

The destination adds its own sections (``destination:``, ``syncs:``) by
subclassing :class:`ProjectConfigBase`; this package never imports it.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reverse_etl.errors import StateError
from reverse_etl.project.operate import AlertsConfig, WritebackConfig

SYNC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""Sync and model names: letters, digits, ``_``, ``.``, ``-``."""
MAX_NAME_LENGTH = 100
"""Sync names become directory names in the state directory: keep them short."""
_MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types of a (possibly optional or union) annotation."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _short_path(value: str) -> str:
    """A path whose every part fits a file name (255 bytes), or ValueError."""
    longest = max((len(part.encode()) for part in re.split(r"[/\\]", value)), default=0)
    if longest > 255:
        raise ValueError(f"has a part {longest} bytes long; file names hold at most 255: shorten it")
    if "\x00" in value:
        raise ValueError("holds a NUL character; remove it")
    return value


class Strict(BaseModel):
    """Base for every config model: unknown fields are errors.

    Two checks apply to every field of every subclass (errors carry the field
    name in ``ctx["field"]``, since they are raised for the whole model): a number field refuses
    ``true``/``false`` (pydantic would read ``concurrency: true`` as 1), and a
    secret refuses surrounding whitespace (a pasted key with a newline fails
    authentication far from its cause).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _strict_numbers_and_secrets(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, field in cls.model_fields.items():
            key = field.alias if field.alias in data else name
            if key not in data:
                continue
            value = data[key]
            members = set(_members(field.annotation)) - {type(None)}
            if isinstance(value, bool) and members and members <= {int, float}:
                raise PydanticCustomError(
                    "number_not_bool", f"expected a number, got {str(value).lower()}; write a number",
                    {"field": key})
            if SecretStr in members and isinstance(value, str) and value != value.strip():
                trailing = value != value.rstrip()
                raise PydanticCustomError(
                    "secret_whitespace",
                    f"has {'trailing whitespace or a newline' if trailing else 'leading whitespace'}; strip it",
                    {"field": key})
        return data


# --------------------------------------------------------------------------- sources
class DuckDBSourceConfig(Strict):
    """A DuckDB database file (created if missing) or ``:memory:``."""

    type: Literal["duckdb"]
    path: str = "warehouse.duckdb"
    read_only: bool = False
    engine: Literal["local"] = "local"
    """DuckDB runs models in-process: the local engine is its only engine (``engine: warehouse``
    is for Snowflake and SQLAlchemy sources)."""

    _path = field_validator("path")(_short_path)


class SnowflakeSourceConfig(Strict):
    """Snowflake through snowflake-connector-python (password or key-pair auth)."""

    type: Literal["snowflake"]
    account: str
    user: str
    password: SecretStr | None = None
    private_key_path: str | None = None
    private_key_passphrase: SecretStr | None = None
    role: str | None = None
    warehouse: str | None = None
    database: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    query_tag: str = "reverse_etl"
    login_timeout_seconds: int = Field(default=30, ge=1)
    network_timeout_seconds: int | None = Field(default=None, ge=1)
    # Overrides for a local fakesnow server or a proxy.
    host: str | None = None
    port: int | None = None
    protocol: Literal["https", "http"] | None = None
    engine: Literal["local", "warehouse"] = "local"
    """Where the diff runs: ``local`` (every row into DuckDB) or ``warehouse`` (only changed rows
    travel; see the README's "The warehouse engine")."""
    engine_schema: str = Field(default="reverse_etl", min_length=1)
    """``engine: warehouse``: the schema holding each sync's snapshot table (created if the role may)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_auth(self) -> SnowflakeSourceConfig:
        if self.password is None and self.private_key_path is None:
            raise ValueError("set either password or private_key_path for Snowflake authentication")
        return self


class SQLAlchemySourceConfig(Strict):
    """Any SQLAlchemy URL (Postgres, BigQuery, Redshift, ...)."""

    type: Literal["sqlalchemy"]
    url: SecretStr
    connect_args: dict[str, Any] = {}
    """Passed to the DBAPI driver (e.g. ``{connect_timeout: 10}``)."""
    engine: Literal["local", "warehouse"] = "local"
    """Where the diff runs: ``local`` (every row into DuckDB) or ``warehouse`` (only changed rows
    travel; see the README's "The warehouse engine")."""
    engine_schema: str = Field(default="reverse_etl", min_length=1)
    """``engine: warehouse``: the schema holding each sync's snapshot table (created if the role may)."""


SourceConfig = Annotated[
    DuckDBSourceConfig | SnowflakeSourceConfig | SQLAlchemySourceConfig,
    Field(discriminator="type"),
]


class StateConfig(Strict):
    """Where snapshots, journals, the run ledger and rejected rows live.

    ``path`` is a directory beside syncs.yml (the default ``.reverse_etl``) or an
    object store URL (``s3://bucket/prefix``, ``gs://...``, ``az://...``); with a URL
    the credentials come only from the environment or the provider chain.
    """

    path: str = ".reverse_etl"
    lease_seconds: int = Field(default=60, ge=2, le=3600)
    """Object-store state: how long a run's lease lasts without renewal (renewed every third)."""
    memory_limit: str = "640MB"
    """DuckDB memory for the diff; beyond it DuckDB spills to ``<state>/<sync>/tmp``. The default kept a
    run's peak RSS under 1 GB to 3M rows (1.4 GB at 10M); a larger budget spills less on big models."""
    threads: int | None = Field(default=None, ge=1)
    """DuckDB threads for the diff (default: all cores)."""
    overlay_min_rows: int = Field(default=200_000, ge=0)
    """A snapshot with at least this many rows is not rewritten by a run that changes few
    of them: the changed rows go to an overlay file, merged into a new snapshot once it holds
    a tenth of the rows. Smaller snapshots are rewritten whole (it takes well under 0.2 s)."""

    _path = field_validator("path")(_short_path)

    @field_validator("memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not _MEMORY_LIMIT.match(value):
            raise ValueError(f"{value[:40]!r} is not a size; write a number and a unit, e.g. 2GB or 512MB")
        return value.strip()

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: Any) -> Any:
        if isinstance(data, dict):
            secret = [k for k in data if any(w in str(k).lower() for w in
                                              ("key", "secret", "token", "password", "credential"))]
            if secret:
                raise ValueError(f"state: {secret[0]!r}: credentials never go in syncs.yml; set them in "
                                 "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...) or "
                                 "use the provider chain (instance role, workload identity)")
        return data

    @model_validator(mode="after")
    def _check_url(self) -> StateConfig:
        from reverse_etl.project.state_url import check_state_url, is_remote

        if is_remote(self.path):
            check_state_url(self.path)
        return self

    @property
    def url(self) -> str | None:
        """The object-store URL of the state, or None for a local directory."""
        from reverse_etl.project.state_url import is_remote

        return self.path.rstrip("/") if is_remote(self.path) else None


class ModelsConfig(Strict):
    """Where ``models/<name>.sql`` files live."""

    path: str = "models"

    _path = field_validator("path")(_short_path)


class DbtConfig(Strict):
    """A dbt project whose models syncs may name (resolved via target/manifest.json)."""

    project_dir: str = "."
    target_path: str = "target"
    profile: str | None = None
    """With no ``source:``: the profile of dbt's profiles.yml (default: dbt_project.yml's ``profile``)."""
    target: str | None = None
    """With no ``source:``: the profile output (default: the reverse-etl target, else the profile's)."""
    profiles_dir: str | None = None
    """Where profiles.yml is, relative to syncs.yml (default: $DBT_PROFILES_DIR, the dbt project, ~/.dbt)."""

    _paths = field_validator("project_dir", "target_path")(_short_path)
    block_on_failed_tests: bool = True
    """With --dbt-run-results: skip a sync whose model's dbt tests failed in that run."""


class ProjectConfigBase(Strict):
    """What every project has, whatever it syncs to."""

    version: Literal[1] = 1
    source: SourceConfig
    state: StateConfig = Field(default_factory=StateConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    dbt: DbtConfig | None = None
    alerts: AlertsConfig | None = None
    """Alerts on failed, partial and stale syncs (:mod:`reverse_etl.alerts`)."""
    writeback: WritebackConfig | None = None
    """Run records, rejected rows and change logs written to the source warehouse."""


ConfigT = TypeVar("ConfigT", bound=ProjectConfigBase)


@dataclass(frozen=True)
class Project(Generic[ConfigT]):
    """A loaded project: its parsed config and the directory it lives in."""

    config: ConfigT
    root: Path
    config_path: Path
    target: str | None = None
    """The environment this project was loaded for (``targets:``), None without targets."""
    requested_target: str | None = None
    """The name ``--target``/``REVERSE_ETL_TARGET`` asked for (dbt's profile target)."""

    @property
    def state_dir(self) -> Path:
        """Absolute state directory (with an object-store state: its local working copy);
        :class:`StateError` if it (or a parent) is a file."""
        if self.config.state.url is not None:
            copy = self.root / ".reverse_etl" / "working-copy"
            return (copy / self.target if self.target else copy).resolve()
        path = (self.root / self.config.state.path).resolve()
        for candidate in (path, *path.parents):
            if candidate.exists():
                if not candidate.is_dir():
                    raise StateError(
                        f"{self.config_path.name}: state.path {self.config.state.path!r} "
                        f"{'is' if candidate == path else 'is inside'} a file ({candidate}), not a directory; "
                        "point state.path at a directory"
                    )
                break
        return path

    @property
    def models_dir(self) -> Path:
        """Absolute models directory."""
        return (self.root / self.config.models.path).resolve()

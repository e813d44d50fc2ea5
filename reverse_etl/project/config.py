"""The engine's part of syncs.yml: sources, state, models, dbt, and a loaded project.

The destination adds its own sections (``destination:``, ``syncs:``) by
subclassing :class:`ProjectConfigBase`; this package never imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

SYNC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""Sync and model names: letters, digits, ``_``, ``.``, ``-``."""


class Strict(BaseModel):
    """Base for every config model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- sources
class DuckDBSourceConfig(Strict):
    """A DuckDB database file (created if missing) or ``:memory:``."""

    type: Literal["duckdb"]
    path: str = "warehouse.duckdb"
    read_only: bool = False


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
    memory_limit: str = "2GB"
    """DuckDB memory for the diff; beyond it DuckDB spills to ``<state>/<sync>/tmp``."""
    threads: int | None = Field(default=None, ge=1)
    """DuckDB threads for the diff (default: all cores)."""

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


class DbtConfig(Strict):
    """A dbt project whose models syncs may name (resolved via target/manifest.json)."""

    project_dir: str = "."
    target_path: str = "target"
    block_on_failed_tests: bool = True
    """With --dbt-run-results: skip a sync whose model's dbt tests failed in that run."""


class ProjectConfigBase(Strict):
    """What every project has, whatever it syncs to."""

    version: Literal[1] = 1
    source: SourceConfig
    state: StateConfig = Field(default_factory=StateConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    dbt: DbtConfig | None = None


ConfigT = TypeVar("ConfigT", bound=ProjectConfigBase)


@dataclass(frozen=True)
class Project(Generic[ConfigT]):
    """A loaded project: its parsed config and the directory it lives in."""

    config: ConfigT
    root: Path
    config_path: Path

    @property
    def state_dir(self) -> Path:
        """Absolute state directory (with an object-store state: its local working copy)."""
        if self.config.state.url is not None:
            return (self.root / ".reverse_etl" / "working-copy").resolve()
        return (self.root / self.config.state.path).resolve()

    @property
    def models_dir(self) -> Path:
        """Absolute models directory."""
        return (self.root / self.config.models.path).resolve()

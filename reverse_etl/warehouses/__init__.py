"""Warehouse sources: DuckDB built in; Snowflake and SQLAlchemy behind extras."""

from __future__ import annotations

from reverse_etl.project.config import (
    DuckDBSourceConfig,
    SnowflakeSourceConfig,
    SourceConfig,
    SQLAlchemySourceConfig,
)
from reverse_etl.warehouses.base import Source

__all__ = ["Source", "open_source"]


def open_source(config: SourceConfig, root: str) -> Source:
    """Open the source a project's config names; heavy drivers are imported lazily."""
    if isinstance(config, DuckDBSourceConfig):
        from reverse_etl.warehouses.duckdb_source import DuckDBSource

        return DuckDBSource(config, root)
    if isinstance(config, SnowflakeSourceConfig):
        from reverse_etl.warehouses.snowflake_source import SnowflakeSource

        return SnowflakeSource(config, root)
    if isinstance(config, SQLAlchemySourceConfig):
        from reverse_etl.warehouses.sqlalchemy_source import SQLAlchemySource

        return SQLAlchemySource(config, root)
    raise TypeError(f"unknown source config {type(config).__name__}")

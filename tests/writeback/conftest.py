"""Warehouses to write back to: a throwaway PostgreSQL cluster and a fakesnow server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres_cluster import PostgresCluster


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> str:
    """A fresh database of the session's PostgreSQL cluster, as a SQLAlchemy URL."""
    return postgres.url(postgres.create_database())


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[object]:
    """One fakesnow server on 127.0.0.1 (the source tests' helper)."""
    pytest.importorskip("snowflake.connector")
    pytest.importorskip("fakesnow")
    from sources.fakesnow_helpers import serve_fakesnow

    with serve_fakesnow() as server:
        yield server

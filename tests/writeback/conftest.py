"""Warehouses to write back to: a database of the session's PostgreSQL cluster (fakesnow: tests/conftest.py)."""

from __future__ import annotations

import pytest
from postgres_cluster import PostgresCluster


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> str:
    """A fresh database of the session's PostgreSQL cluster, as a SQLAlchemy URL."""
    return postgres.url(postgres.create_database())

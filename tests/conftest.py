"""Fixtures for every suite: the Insider emulator (a pytest plugin of the package) and one
throwaway PostgreSQL cluster per session (``postgres``; used by the warehouse engine and
the write-back tests, one database per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postgres_cluster import PostgresCluster, session_cluster

pytest_plugins = ["reverse_etl.insider.emulator.pytest_plugin"]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster on 127.0.0.1 and a free port, stopped at the end of the session."""
    with session_cluster(tmp_path_factory) as cluster:
        yield cluster

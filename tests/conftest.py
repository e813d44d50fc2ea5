"""Fixtures for every suite: the Insider emulator (a pytest plugin of the package), one
throwaway PostgreSQL cluster per session (``postgres``) and one fakesnow server per session
(``fakesnow_server``); the suites that use them keep apart by a database per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from postgres_cluster import PostgresCluster, session_cluster

pytest_plugins = ["reverse_etl.insider.emulator.pytest_plugin"]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster on 127.0.0.1 and a free port, stopped at the end of the session."""
    with session_cluster(tmp_path_factory) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[Any]:
    """A fakesnow server on 127.0.0.1 (behind the login gate of tests/sources/fakesnow_helpers);
    the real Snowflake connector talks to it."""
    pytest.importorskip("snowflake.connector")
    pytest.importorskip("fakesnow")
    from sources.fakesnow_helpers import serve_fakesnow

    with serve_fakesnow() as server:
        yield server

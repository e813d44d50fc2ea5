"""Fixtures of the warehouse engine tests: one throwaway PostgreSQL cluster for the session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from pg_helpers import PostgresCluster, running_cluster


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster on 127.0.0.1 and a free port, stopped at the end of the session."""
    pytest.importorskip("psycopg")
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        pytest.skip("initdb/pg_ctl not installed")
    with running_cluster(tmp_path_factory.mktemp("pg")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[Any]:
    """A fakesnow server on 127.0.0.1 for the session (the real Snowflake connector talks to it)."""
    pytest.importorskip("snowflake.connector")
    pytest.importorskip("fakesnow")
    from sources.fakesnow_helpers import serve_fakesnow

    with serve_fakesnow() as server:
        yield server

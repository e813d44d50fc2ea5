"""Fixtures for the source tests: a fakesnow server (see fakesnow_helpers) and unique names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fakesnow_helpers import FakeSnowflake, serve_fakesnow


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[FakeSnowflake]:
    """One fakesnow server on 127.0.0.1 for the session (databases keep tests apart)."""
    pytest.importorskip("snowflake.connector")
    pytest.importorskip("fakesnow")
    with serve_fakesnow() as server:
        yield server


@pytest.fixture
def database() -> str:
    """A database name no other test uses (fakesnow shares one in-memory instance)."""
    return f"DB_{uuid.uuid4().hex[:10].upper()}"

"""Fixtures of the warehouse engine tests (the PostgreSQL cluster, ``postgres``, is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def fakesnow_server() -> Iterator[Any]:
    """A fakesnow server on 127.0.0.1 for the session (the real Snowflake connector talks to it)."""
    pytest.importorskip("snowflake.connector")
    pytest.importorskip("fakesnow")
    from sources.fakesnow_helpers import serve_fakesnow

    with serve_fakesnow() as server:
        yield server

"""Fixtures for the source tests: unique database names (the fakesnow server is in tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def database() -> str:
    """A database name no other test uses (fakesnow shares one in-memory instance)."""
    return f"DB_{uuid.uuid4().hex[:10].upper()}"

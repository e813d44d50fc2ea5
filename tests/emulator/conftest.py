"""Fixtures for the emulator tests: a plain httpx client with Insider headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from emulator_helpers import HEADERS

from reverse_etl.emulator import Emulator


@pytest.fixture
def client(insider_emulator: Emulator) -> Iterator[httpx.Client]:
    """An httpx client on the fixture emulator, authenticated as partner acme."""
    with httpx.Client(base_url=insider_emulator.url, headers=HEADERS, timeout=10) as c:
        yield c


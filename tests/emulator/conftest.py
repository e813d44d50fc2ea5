"""Fixtures for the emulator tests: a plain httpx client with Insider headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from emulator_helpers import HEADERS, Receiver

from reverse_etl.insider.emulator import Emulator


@pytest.fixture
def client(insider_emulator: Emulator) -> Iterator[httpx.Client]:
    """An httpx client on the fixture emulator, authenticated as partner acme."""
    with httpx.Client(base_url=insider_emulator.url, headers=HEADERS, timeout=10) as c:
        yield c



@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local file server and callback/hook receiver on 127.0.0.1."""
    r = Receiver()
    yield r
    r.close()

"""Pytest plugin: the ``insider_emulator`` fixture.

Enable with ``pytest_plugins = ["reverse_etl.insider.emulator.pytest_plugin"]`` in a conftest.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import Emulator


@pytest.fixture
def insider_emulator() -> Iterator[Emulator]:
    """A started emulator (partner ``acme``, api key ``test-key``) on a free port."""
    with Emulator(partner="acme", api_key="test-key") as emu:
        yield emu

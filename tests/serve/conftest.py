"""Fixtures of tests/serve: the project, and the service running on 127.0.0.1 against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alert_receivers import webhook  # the local alert receiver, for the staleness test
from project_factory import ProjectUnderTest
from serve_factory import Served, make_service, two_sync_project

from reverse_etl.insider.emulator import Emulator
from reverse_etl.serve.server import running


@pytest.fixture
def project(tmp_path: Path, insider_emulator: Emulator) -> ProjectUnderTest:
    return two_sync_project(tmp_path / "project", insider_emulator.url)


@pytest.fixture
def served(project: ProjectUnderTest, insider_emulator: Emulator) -> Iterator[Served]:
    service = make_service(project)
    with running(service) as url:
        yield Served(project, service, url, insider_emulator)


@pytest.fixture
def served_scheduled(project: ProjectUnderTest, insider_emulator: Emulator) -> Iterator[Served]:
    """Served with its scheduler on, on a clock frozen at the start (so no slot comes due mid-test)."""
    from datetime import UTC, datetime

    from reverse_etl.serve.clock import ManualClock

    service = make_service(project, ManualClock(datetime.now(UTC)), schedules=True)
    with running(service) as url:
        yield Served(project, service, url, insider_emulator)


__all__ = ["webhook"]

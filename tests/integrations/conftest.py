"""Shared fixtures of the orchestrator and MCP tests (tests/integrations).

Each test module needs one heavy library (Dagster, Airflow, Prefect, mcp) that
the main test venv does not hold, so the main ``pytest -q`` run skips it; .ci/run
runs each module in its own venv with ``REVERSE_ETL_INTEGRATIONS=required``,
where a missing library fails instead of skipping.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest
from project_factory import ProjectUnderTest, make_project

from reverse_etl.insider.emulator import Emulator


def require(module: str) -> ModuleType:
    """Import ``module``; skip the test module without it, fail when CI requires it."""
    if os.environ.get("REVERSE_ETL_INTEGRATIONS") == "required":
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture
def project(tmp_path: Path, insider_emulator: Emulator) -> ProjectUnderTest:
    """Two syncs against the emulator: ``customers`` (tag daily) and ``cities`` (tag weekly).

    The API key is in the project's ``.env``, as a user keeps it, so the
    orchestrator runs the project without being handed secrets.
    """
    made = make_project(tmp_path / "proj", insider_emulator.url, rows=10, tags=["daily"])
    with made.config() as config:
        config["syncs"].append({"name": "cities", "model": "customers", "tags": ["weekly"],
                                "identifiers": {"uuid": "customer_id"},
                                "attributes": {"city": "city"}})
    write_env(made, "test-key")
    return made


def write_env(project: ProjectUnderTest, api_key: str) -> None:
    """Set the project's INSIDER_API_KEY in its .env (a wrong key makes the emulator answer 401)."""
    (project.root / ".env").write_text(f"INSIDER_API_KEY={api_key}\n")

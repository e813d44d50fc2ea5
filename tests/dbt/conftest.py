"""Fixtures for the dbt tests.

dbt invocations take seconds, so ``dbt_artifacts`` runs the three invocations the
dbt tests need once per session and keeps a copy of each run_results.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dbt_helpers import DbtArtifacts, make_dbt_project


@pytest.fixture(scope="session")
def dbt_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtArtifacts]:
    """The fixture project built three ways; the database ends up fully built."""
    project = make_dbt_project(tmp_path_factory.mktemp("dbt"))
    project.dbt("build", "--vars", "{fail_tests: true}", expect_success=False)
    failed_tests = project.keep_run_results("failed_tests")
    project.run_with_broken_model()
    broken = project.keep_run_results("broken")
    # Last, so the manifest and the database reflect a clean build.
    project.dbt("build")
    build = project.keep_run_results("build")
    yield DbtArtifacts(project, build=build, broken=broken, failed_tests=failed_tests)


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[..., Path]:
    """``write_manifest(document) -> project_dir`` with target/manifest.json written."""

    def write(document: dict[str, object], name: str = "project") -> Path:
        project_dir = tmp_path / name
        (project_dir / "target").mkdir(parents=True, exist_ok=True)
        (project_dir / "target" / "manifest.json").write_text(json.dumps(document, indent=2))
        return project_dir

    return write

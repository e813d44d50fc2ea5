"""Hundreds of malformed configs, .env files and models: each refused in one clear line.

The cases live in ``tests/fixtures/malformed/cases.json`` (written by ``generate.py``
beside it). For each: exit code 1, 2 or 4; exactly one ``error:`` line naming a
file; no traceback, no "internal error"; no file created in the project.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from project_factory import ProjectUnderTest, make_project

from reverse_etl.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "malformed"
sys.path.insert(0, str(FIXTURES))
from generate import apply, restore  # noqa: E402

CASES: list[dict[str, Any]] = json.loads((FIXTURES / "cases.json").read_text())
WHERE = re.compile(r"(syncs\.yml|\.env|models/customers\.sql|model 'customers'|sync 'customers'|customers:)")


def test_there_are_at_least_200_cases() -> None:
    assert len(CASES) >= 200


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProjectUnderTest, str]:
    project = make_project(tmp_path_factory.mktemp("malformed") / "p", rows=3)
    return project, (project.root / "syncs.yml").read_text()


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_malformed_input_is_one_clear_line(shared: tuple[ProjectUnderTest, str], case: dict[str, Any]) -> None:
    project, text = shared
    apply(case, project.root)
    before = files(project.root)
    try:
        result = CliRunner().invoke(main, ["-p", str(project.root), case.get("command", "validate")],
                                    env=case.get("env", {"INSIDER_API_KEY": "test-key"}))
        after = files(project.root)
    finally:
        restore(project.root, text)
    err = result.stderr
    assert result.exit_code in (1, 2, 4), (result.exit_code, err, result.stdout)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert WHERE.search(errors[0]), errors[0]
    assert "Traceback" not in err + result.stdout and "internal error" not in err
    assert after == before

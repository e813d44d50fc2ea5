"""The README's orchestrator examples are the files the integration tests run, word for word."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((Path(__file__).resolve().parent / "examples").glob("*.py"))


def test_there_is_an_example_per_integration() -> None:
    assert [p.stem for p in EXAMPLES] == ["airflow_dag", "dagster_defs", "mcp_client", "prefect_flow"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_readme_shows_the_example_the_tests_run(example: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Orchestrators and assistants", 1)[1].split("\n## ", 1)[0]
    assert f"```python\n{example.read_text(encoding='utf-8')}```" in section
    assert len(example.read_text().strip().splitlines()) <= 25  # an example, not a program

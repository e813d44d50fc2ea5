"""Shared pieces of the audit tests: a synced project, drift over the admin API, audits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from project_factory import ProjectUnderTest, make_project

import reverse_etl
from reverse_etl.insider.audit import AuditResult
from reverse_etl.insider.emulator import Emulator

SEGMENT = 123456789
"""The emulator's default every-profile dynamic segment."""


def synced(tmp_path: Path, emu: Emulator, rows: int = 12, **sync: Any) -> ProjectUnderTest:
    """A project whose first run succeeded: the emulator holds exactly the model."""
    project = make_project(tmp_path / "p", emu.url, rows=rows, **sync)
    result = reverse_etl.run(project.root, environ=project.env)
    assert result.exit_code == 0, result.syncs[0].message
    return project


def drift(emu: Emulator, action: str, **body: Any) -> dict[str, Any]:
    """Inject drift through the emulator's admin API, over HTTP."""
    response = httpx.post(f"{emu.url}/_emulator/drift", json={"action": action, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def audit(project: ProjectUnderTest, method: str, **options: Any) -> AuditResult:
    """A sample audit of every user (the sample is larger than the model) or a full one."""
    if method == "sample":
        options.setdefault("sample", 100_000)
    else:
        options.setdefault("segment_id", SEGMENT)
        options.setdefault("force", True)  # several exports in one test: the emulator's clock moves
    return reverse_etl.audit(project.root, "customers", environ=project.env, examples=1000, **options)


def found(result: AuditResult) -> set[tuple[str, str, str | None]]:
    """Every difference reported: (kind, key, field)."""
    return {(kind, ex["key"], ex["field"]) for kind, examples in result.examples.items() for ex in examples}


def next_export_day(emu: Emulator) -> None:
    """Move the emulator a UTC day on: its one raw export of the day is available again."""
    emu.advance_clock(86_400)

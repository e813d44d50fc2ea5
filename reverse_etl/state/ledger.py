"""The run ledger: one JSON line per run, for ``reverse-etl history``."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from reverse_etl.redact import redact_value


@dataclass
class RunRecord:
    """One run of one sync as recorded in the ledger (never holds secrets)."""

    run_id: str
    sync: str
    started_at: str
    finished_at: str = ""
    seconds: float = 0.0
    outcome: str = "running"
    """success | partial | failed | interrupted"""
    counts: dict[str, int] = field(default_factory=dict)
    full_resend_reason: str | None = None
    error: str | None = None
    """The one-line message of a failed, partial or interrupted run."""
    failure: str | None = None
    """The failure kind (config, usage, source, auth, delivery, lock, state, interrupted, internal)."""
    details: dict[str, Any] = field(default_factory=dict)


class Ledger:
    """Append-only ``runs.jsonl`` in the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "runs.jsonl"

    def append(self, record: RunRecord) -> None:
        """Add a finished run; every string in it passes through :func:`~reverse_etl.redact.redact`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            handle.write(orjson.dumps(redact_value(asdict(record))) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self, sync: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Recorded runs, oldest first, optionally of one sync and only the last ``limit``."""
        if not self.path.exists():
            return []
        out: list[RunRecord] = []
        for line in self.path.read_bytes().splitlines():
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if sync is None or data.get("sync") == sync:
                known = RunRecord.__dataclass_fields__
                out.append(RunRecord(**{k: v for k, v in data.items() if k in known}))
        return out[-limit:] if limit else out

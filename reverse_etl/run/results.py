"""Typed results of the Python API; the CLI renders them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SyncResult:
    """What one sync's run (or plan) did."""

    sync: str
    run_id: str
    outcome: str
    """success | partial (some rows rejected or failed) | failed | skipped | planned"""
    counts: dict[str, int] = field(default_factory=dict)
    """added, changed, removed, unchanged, invalid, held_back, sent, acked, rejected, failed, recovered"""
    seconds: dict[str, float] = field(default_factory=dict)
    """per stage: source, diff, deliver, commit, total"""
    full_resend_reason: str | None = None
    samples: dict[str, list[str]] = field(default_factory=dict)
    """a few payloads per kind of operation, e.g. ``"upsert (changed)"`` (plan only)"""
    rejected_samples: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    """why it failed or was skipped"""
    requests: int = 0

    @property
    def ok(self) -> bool:
        """True when everything that had to be sent was acknowledged."""
        return self.outcome in ("success", "planned", "skipped")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class RunResult:
    """Results of every selected sync, in order."""

    syncs: list[SyncResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The documented exit code: the worst of the syncs'.

        0 ok · 1 config/usage · 2 source (warehouse) · 3 partial delivery (rows
        rejected or failed; the rest committed) · 4 fatal (delivery refused, state).
        """
        codes = [0]
        for result in self.syncs:
            if result.outcome == "partial":
                codes.append(3)
            elif result.outcome == "failed":
                if result.counts.get("config_failed"):
                    codes.append(1)
                elif result.counts.get("source_failed"):
                    codes.append(2)
                else:
                    codes.append(4)
        return max(codes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--json``)."""
        return {"exit_code": self.exit_code, "syncs": [s.to_dict() for s in self.syncs]}

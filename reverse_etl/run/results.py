"""Typed results of the Python API; the CLI renders them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

EXIT_CODES: dict[str, int] = {
    "config": 1, "usage": 1, "source": 2, "partial": 3, "delivery": 4, "auth": 4, "state": 4,
    "lock": 4, "refused": 4, "internal": 4, "interrupted": 130,
}
"""Exit code of each failure kind (``partial`` is the outcome of a run whose rows were refused)."""


@dataclass
class SyncResult:
    """What one sync's run (or plan) did."""

    sync: str
    run_id: str
    outcome: str
    """success | partial (some rows rejected or failed) | failed | interrupted | skipped | planned"""
    counts: dict[str, int] = field(default_factory=dict)
    """added, changed, removed, unchanged, invalid, held_back, sent, acked, rejected, failed, recovered"""
    seconds: dict[str, float] = field(default_factory=dict)
    """per stage: source, diff, deliver, commit, total"""
    full_resend_reason: str | None = None
    samples: dict[str, list[str]] = field(default_factory=dict)
    """a few payloads per kind of operation, e.g. ``"upsert (changed)"`` (plan only)"""
    rejected_samples: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None
    """why it failed, was partial or was skipped (one line)"""
    requests: int = 0
    retries: int = 0
    """Requests retried (429, 5xx, timeouts)."""
    rate_limit_wait_seconds: float = 0.0
    """Seconds spent waiting on rate limits (the client's and Insider's Retry-After)."""
    request_seconds: list[float] = field(default_factory=list, repr=False)
    """Latency of each HTTP attempt (for metrics hooks; left out of :meth:`to_dict`)."""
    failure: str | None = None
    """What kind of failure ended it (a key of :data:`EXIT_CODES`), None when it did not fail."""
    notes: list[str] = field(default_factory=list)
    """Things the user should know that did not fail the run (e.g. Insider's notes on a batch)."""

    @property
    def ok(self) -> bool:
        """True when everything that had to be sent was acknowledged."""
        return self.outcome in ("success", "planned", "skipped")

    @property
    def exit_code(self) -> int:
        """This sync's exit code: from its failure kind, or 3 for a partial run."""
        if self.outcome == "partial":
            return EXIT_CODES["partial"]
        if self.outcome in ("failed", "interrupted"):
            return EXIT_CODES.get(self.failure or "internal", 4)
        return 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        del out["request_seconds"]
        return out


@dataclass
class RunResult:
    """Results of every selected sync, in order."""

    syncs: list[SyncResult] = field(default_factory=list)
    target: str | None = None
    """The environment the syncs ran in (``targets:`` in syncs.yml), None without targets."""

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C (or SIGTERM) stopped the run."""
        return any(s.outcome == "interrupted" for s in self.syncs)

    @property
    def exit_code(self) -> int:
        """The documented exit code: 130 when interrupted, else the worst of the syncs'.

        0 ok · 1 config/usage · 2 source (warehouse) · 3 partial delivery (rows
        rejected or failed; the rest committed) · 4 fatal (delivery refused, state,
        lock) · 130 interrupted.
        """
        if self.interrupted:
            return EXIT_CODES["interrupted"]
        return max([0, *(s.exit_code for s in self.syncs)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--json``)."""
        return {"exit_code": self.exit_code, "target": self.target,
                "syncs": [s.to_dict() for s in self.syncs]}

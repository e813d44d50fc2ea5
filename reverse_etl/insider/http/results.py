"""What a delivery reports: per-request outcomes and run totals."""

from __future__ import annotations

from dataclasses import dataclass, field

from reverse_etl.insider.http.endpoints import Endpoint


@dataclass
class BatchResult:
    """The final outcome of one request (after retries and bisection).

    Every row id of the request is in exactly one of ``acked``, ``rejected`` or
    ``failed``. ``notes`` adds detail to some acked rows (an anonymize of a user
    Insider does not know is acked with the note ``"not found: ..."``).
    """

    endpoint: Endpoint
    acked: list[int] = field(default_factory=list)
    rejected: dict[int, str] = field(default_factory=dict)
    """Row id -> Insider's reason; row-level failures, never retried within the run."""
    failed: dict[int, str] = field(default_factory=dict)
    """Row id -> last reason after retries ran out; the engine retries them next run."""
    notes: dict[int, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """How many rows this result settles."""
        return len(self.acked) + len(self.rejected) + len(self.failed)


@dataclass
class DeliveryStats:
    """Totals of one :meth:`InsiderClient.deliver` call.

    ``status_counts`` counts HTTP answers by status code; key ``0`` counts
    attempts that got no answer (timeout, refused or dropped connection).
    ``halted`` is True when ``halt_on_reject`` stopped the delivery early; rows
    not yet settled then were not reported and should be sent again.
    """

    requests: int = 0
    retries: int = 0
    rows_acked: int = 0
    rows_rejected: int = 0
    rows_failed: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    status_counts: dict[int, int] = field(default_factory=dict)
    rate_limit_wait_seconds: float = 0.0
    """Time spent waiting on the client's rate limiter and on Insider's Retry-After answers."""
    request_seconds: list[float] = field(default_factory=list)
    """Latency of each HTTP attempt that got an answer or timed out (for /metrics)."""
    halted: bool = False
    halt_reason: str | None = None

    @property
    def rows(self) -> int:
        """Rows settled (acked + rejected + failed)."""
        return self.rows_acked + self.rows_rejected + self.rows_failed

    @property
    def rows_per_second(self) -> float:
        """Settled rows per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def count_status(self, status: int) -> None:
        """Record one attempt's HTTP status (0 for no answer)."""
        self.status_counts[status] = self.status_counts.get(status, 0) + 1

    def add(self, result: BatchResult) -> None:
        """Fold one final outcome into the totals."""
        self.rows_acked += len(result.acked)
        self.rows_rejected += len(result.rejected)
        self.rows_failed += len(result.failed)

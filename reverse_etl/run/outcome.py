"""The one owner of a sync run: whatever happens becomes one result and one ledger record.

Config errors found at run time, warehouse failures, refused credentials, a held
lock, a broken state directory, Ctrl-C, or a bug: each ends the run here with an
outcome, a failure kind (which decides the exit code, see
:data:`~reverse_etl.run.results.EXIT_CODES`) and a one-line message, under the
run id the run started with. The ledger, ``--json`` and ``history`` therefore
always agree.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from reverse_etl.errors import (
    AuthenticationError,
    ConfigError,
    DeliveryError,
    LockedError,
    ReverseEtlError,
    SourceError,
    StateError,
    UsageError,
)
from reverse_etl.run.events import Hooks, RunFinished, RunStarted
from reverse_etl.run.results import SyncResult
from reverse_etl.state.ledger import Ledger, RunRecord

log = logging.getLogger("reverse_etl.run")

INTERRUPTED_MESSAGE = "interrupted; acknowledged rows are journaled and the next run resumes"


def new_run_id() -> str:
    """Sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def utc_now() -> str:
    """Now, as RFC 3339 text in UTC (the ledger's timestamps)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_kind(exc: BaseException) -> str:
    """The failure kind of an exception (most specific class first)."""
    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (KeyboardInterrupt, "interrupted"), (UsageError, "usage"), (ConfigError, "config"),
        (SourceError, "source"), (LockedError, "lock"), (StateError, "state"),
        (AuthenticationError, "auth"), (DeliveryError, "delivery"), (ReverseEtlError, "internal"),
    )
    return next((kind for cls, kind in kinds if isinstance(exc, cls)), "internal")


def fail(result: SyncResult, kind: str, message: str) -> None:
    """Mark ``result`` as ended by a failure of ``kind``."""
    result.outcome = "interrupted" if kind == "interrupted" else "failed"
    result.failure = kind
    result.message = message


class RunOwner:
    """Runs a body for one sync and owns how it ends.

    ``ledger`` is None for dry runs (plan records nothing). Hooks see
    :class:`RunStarted` and :class:`RunFinished` with the final result.
    """

    def __init__(self, sync: str, *, ledger: Ledger | None, hooks: Hooks | None = None,
                 dry_run: bool = False) -> None:
        self.result = SyncResult(sync=sync, run_id=new_run_id(),
                                 outcome="planned" if dry_run else "running")
        self.ledger = ledger
        self.hooks = hooks or Hooks()
        self.dry_run = dry_run

    def run(self, body: Callable[[SyncResult], None]) -> SyncResult:
        """Call ``body(result)``; return the result, however the body ended.

        Deliberate errors and Ctrl-C end in the result; a bug is recorded, then
        raised again so the caller can show it (with ``--debug``, its traceback).
        """
        result = self.result
        started, started_at = time.perf_counter(), utc_now()
        self.hooks.emit(RunStarted(sync=result.sync, run_id=result.run_id, started_at=started_at,
                                   dry_run=self.dry_run))
        bug: Exception | None = None
        try:
            body(result)
        except KeyboardInterrupt:
            fail(result, "interrupted", INTERRUPTED_MESSAGE)
        except ReverseEtlError as exc:
            fail(result, failure_kind(exc), str(exc))
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            fail(result, "internal", f"internal error ({type(exc).__name__}: {first}); "
                                     "rerun with --debug and report it")
            bug = exc
        if result.outcome == "running":  # a body that returned without deciding
            fail(result, "internal", "the run ended without an outcome; report it")
        result.seconds["total"] = round(time.perf_counter() - started, 3)
        self._record(result, started_at)
        self.hooks.emit(RunFinished(result=result))
        if bug is not None:
            raise bug
        return result

    def _record(self, result: SyncResult, started_at: str) -> None:
        if self.ledger is None or self.dry_run:
            return
        record = RunRecord(
            run_id=result.run_id, sync=result.sync, started_at=started_at, finished_at=utc_now(),
            seconds=result.seconds.get("total", 0.0), outcome=result.outcome, counts=dict(result.counts),
            full_resend_reason=result.full_resend_reason, error=result.message, failure=result.failure,
            details={"requests": result.requests, "seconds": result.seconds, "notes": result.notes,
                     "retries": result.retries, "rate_limit_wait_seconds": result.rate_limit_wait_seconds})
        try:
            self.ledger.append(record)
        except OSError as exc:  # the run's outcome stands; say why it is not in the ledger
            log.error("could not record run %s in %s: %s", result.run_id, self.ledger.path, exc)

"""Retry policy for transient answers, built on tenacity.

Exponential backoff with full jitter (``wait_random_exponential``), except
that a ``Retry-After`` given by Insider is honoured as is (capped, so a
misbehaving proxy cannot park a run for hours). Only :class:`RetryableError`
is retried; anything else (credentials refused, a rejection) passes through
on the first attempt.

An :class:`AmbiguousError` (the request was sent but its answer never came:
a read timeout, a connection dropped after sending) is retried like any other
only when the request is idempotent; for one that appends (arrays, events) the
caller passes ``retry_ambiguous=False`` and verifies before sending again.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from reverse_etl.errors import Transient


class RetryableError(Transient, Exception):
    """A transient failure of one attempt: 429, 5xx, timeout, dropped connection."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class AmbiguousError(RetryableError):
    """The request was sent and may have been applied: its answer was lost."""


class wait_retry_after(wait_base):
    """Wait what ``Retry-After`` said when it said something, else ``fallback``."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return min(error.retry_after, self.cap)
        return float(self.fallback(retry_state))


def make_retrying(
    *,
    max_retries: int,
    wait_base: float,
    wait_max: float,
    retry_after_cap: float,
    on_retry: Callable[[RetryCallState], None] | None = None,
    retry_ambiguous: bool = True,
) -> AsyncRetrying:
    """A fresh tenacity controller: ``max_retries`` retries after the first attempt.

    A fresh one per request keeps concurrent requests from sharing tenacity's
    statistics object. When retries run out the last :class:`RetryableError`
    is re-raised for the caller to turn into failed rows. ``retry_ambiguous=False``
    re-raises the first :class:`AmbiguousError` at once.
    """
    def retryable(error: BaseException) -> bool:
        if not isinstance(error, RetryableError):
            return False
        return retry_ambiguous or not isinstance(error, AmbiguousError)

    return AsyncRetrying(
        retry=retry_if_exception(retryable),
        stop=stop_after_attempt(max_retries + 1),
        wait=wait_retry_after(
            wait_random_exponential(multiplier=wait_base, max=wait_max), retry_after_cap
        ),
        before_sleep=on_retry,
        reraise=True,
    )

"""Retry policy for transient answers, built on tenacity.

Exponential backoff with full jitter (``wait_random_exponential``), except
that a ``Retry-After`` given by Insider is honoured as is (capped, so a
misbehaving proxy cannot park a run for hours). Only :class:`RetryableError`
is retried; anything else (credentials refused, a rejection) passes through
on the first attempt.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
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
) -> AsyncRetrying:
    """A fresh tenacity controller: ``max_retries`` retries after the first attempt.

    A fresh one per request keeps concurrent requests from sharing tenacity's
    statistics object. When retries run out the last :class:`RetryableError`
    is re-raised for the caller to turn into failed rows.
    """
    return AsyncRetrying(
        retry=retry_if_exception_type(RetryableError),
        stop=stop_after_attempt(max_retries + 1),
        wait=wait_retry_after(
            wait_random_exponential(multiplier=wait_base, max=wait_max), retry_after_cap
        ),
        before_sleep=on_retry,
        reraise=True,
    )

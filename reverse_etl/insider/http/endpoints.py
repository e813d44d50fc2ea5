"""Insider's write endpoints, their rate families and the per-family limiters.

Each :class:`Endpoint` carries its HTTP method, path and :class:`RateFamily`.
Insider documents limits per minute; the limiters here spread each budget
over short buckets (about a second's worth) so a run never bursts a whole
minute's allowance at once, and never exceeds it in any sliding minute, which
is the safer reading of "N per minute".
"""

from __future__ import annotations

import enum

from aiolimiter import AsyncLimiter

from reverse_etl.insider.config import RateLimits


class RateFamily(enum.Enum):
    """A group of endpoints sharing one rate budget; the value names the RateLimits field."""

    UPSERT = "upsert_per_minute"
    IDENTITY_UPDATE = "identity_update_per_minute"
    IDENTITY_DELETE = "identity_delete_per_minute"
    USER_DELETE = "user_delete_per_minute"
    ANONYMIZE = "anonymize_per_minute"
    PROFILE_READ = "profile_read_per_minute"

    def per_minute(self, limits: RateLimits) -> int:
        """This family's budget in requests per minute."""
        return int(getattr(limits, self.value))


class Endpoint(enum.Enum):
    """An Insider write endpoint; value = (HTTP method, path, rate family)."""

    UPSERT = ("POST", "/api/user/v1/upsert", RateFamily.UPSERT)
    ATTRIBUTE_DELETE = ("POST", "/api/user/v1/attribute/delete", RateFamily.UPSERT)
    IDENTITY_UPDATE = ("PATCH", "/api/user/v1/identity", RateFamily.IDENTITY_UPDATE)
    IDENTITY_DELETE = ("DELETE", "/api/user/v1/identity", RateFamily.IDENTITY_DELETE)
    USER_DELETE = ("POST", "/api/user/v1/delete", RateFamily.USER_DELETE)
    ANONYMIZE = ("POST", "/api/user/v1/anonymize", RateFamily.ANONYMIZE)
    PROFILE_READ = ("POST", "/api/user/v1/profile", RateFamily.PROFILE_READ)
    """Read-only: used to verify an appending request whose answer was lost."""

    @property
    def method(self) -> str:
        """HTTP method."""
        return str(self.value[0])

    @property
    def path(self) -> str:
        """Path below ``api_base_url``."""
        return str(self.value[1])

    @property
    def family(self) -> RateFamily:
        """The rate budget this endpoint draws from."""
        family: RateFamily = self.value[2]
        return family

    @property
    def bulk(self) -> bool:
        """True when a request carries ``{"users": [...]}``; False for one item per request."""
        return self in _BULK

    @property
    def not_found_is_result(self) -> bool:
        """True when 404 "no such user" is an answer, not an error.

        Anonymize, user delete and identifier delete aim at a state ("this user's PII /
        profile / identifier is gone"); a user Insider does not know is already there,
        and a retried delete whose first attempt succeeded must not become a rejection.
        """
        return self in (Endpoint.ANONYMIZE, Endpoint.USER_DELETE, Endpoint.IDENTITY_DELETE)


_BULK = frozenset({Endpoint.UPSERT, Endpoint.ATTRIBUTE_DELETE})


def limiter_for(per_minute: int) -> AsyncLimiter:
    """A leaky-bucket limiter that never lets more than ``per_minute`` requests into any minute.

    The bucket holds one second's worth of requests (at least one), so bursts
    stay small. A leaky bucket of capacity ``C`` draining at ``r`` per second
    admits up to ``C + 60 r`` requests in a sliding minute, so it drains at
    ``(per_minute - C) / 60`` per second: the budget holds in every window,
    not just on average.
    """
    if per_minute <= 0:
        raise ValueError("a rate limit must be positive")
    capacity = max(1.0, per_minute / 60.0)
    if per_minute <= capacity:  # a budget of one a minute: one request, then a minute's wait
        return AsyncLimiter(max_rate=capacity, time_period=60.0)
    rate_per_second = (per_minute - capacity) / 60.0
    return AsyncLimiter(max_rate=capacity, time_period=capacity / rate_per_second)


def build_limiters(limits: RateLimits) -> dict[RateFamily, AsyncLimiter]:
    """One limiter per rate family, so endpoints of a family share a budget."""
    return {family: limiter_for(family.per_minute(limits)) for family in RateFamily}

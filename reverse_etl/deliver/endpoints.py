"""Insider's write endpoints, their rate families and the per-family limiters.

Each :class:`Endpoint` carries its HTTP method, path and :class:`RateFamily`.
Insider documents limits per minute; the limiters here spread each budget
over short buckets (at least one second long) so a run never bursts a whole
minute's allowance at once, which is the safer reading of "N per minute".
"""

from __future__ import annotations

import enum

from aiolimiter import AsyncLimiter

from reverse_etl.config.schema import RateLimits


class RateFamily(enum.Enum):
    """A group of endpoints sharing one rate budget; the value names the RateLimits field."""

    UPSERT = "upsert_per_minute"
    IDENTITY_UPDATE = "identity_update_per_minute"
    IDENTITY_DELETE = "identity_delete_per_minute"
    USER_DELETE = "user_delete_per_minute"
    ANONYMIZE = "anonymize_per_minute"

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
        """True when 404 "no such user" is an answer (the user is already gone), not an error."""
        return self is Endpoint.ANONYMIZE


_BULK = frozenset({Endpoint.UPSERT, Endpoint.ATTRIBUTE_DELETE})


def limiter_for(per_minute: int) -> AsyncLimiter:
    """A leaky-bucket limiter allowing ``per_minute`` requests a minute.

    The bucket holds one second's worth of requests (or one request, for
    budgets under 60/min, with a correspondingly longer period), so bursts
    stay small while the long-run rate equals the budget.
    """
    if per_minute <= 0:
        raise ValueError("a rate limit must be positive")
    period = max(1.0, 60.0 / per_minute)
    return AsyncLimiter(max_rate=per_minute * period / 60.0, time_period=period)


def build_limiters(limits: RateLimits) -> dict[RateFamily, AsyncLimiter]:
    """One limiter per rate family, so endpoints of a family share a budget."""
    return {family: limiter_for(family.per_minute(limits)) for family in RateFamily}

"""Endpoints, rate families and the limiter arithmetic."""

from __future__ import annotations

import pytest

from reverse_etl.insider.config import RateLimits
from reverse_etl.insider.http import Endpoint, RateFamily
from reverse_etl.insider.http.endpoints import build_limiters, limiter_for


def test_endpoint_values() -> None:
    assert Endpoint.UPSERT.value == ("POST", "/api/user/v1/upsert", RateFamily.UPSERT)
    assert Endpoint.ATTRIBUTE_DELETE.family is Endpoint.UPSERT.family
    assert (Endpoint.IDENTITY_UPDATE.method, Endpoint.IDENTITY_DELETE.method) == ("PATCH", "DELETE")
    assert [e for e in Endpoint if e.bulk] == [Endpoint.UPSERT, Endpoint.ATTRIBUTE_DELETE]
    assert len({e.family for e in Endpoint}) == 6


@pytest.mark.parametrize("per_minute", [1, 7, 30, 59, 60, 61, 120, 500, 1_000, 25_000])
def test_limiter_never_exceeds_the_budget_in_a_sliding_minute(per_minute: int) -> None:
    limiter = limiter_for(per_minute)
    burst = limiter.max_rate
    drained_per_minute = 60 * limiter.max_rate / limiter.time_period
    assert burst >= 1
    if per_minute > 1:
        assert burst + drained_per_minute == pytest.approx(per_minute)
    assert burst <= max(1, per_minute / 60) + 1e-9


def test_families_share_limiters() -> None:
    limits = build_limiters(RateLimits.model_validate({"anonymize_per_minute": 60}))
    assert set(limits) == set(RateFamily)
    assert limits[RateFamily.ANONYMIZE].max_rate == 1

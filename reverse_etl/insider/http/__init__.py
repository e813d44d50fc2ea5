"""Delivery: sending encoded user objects to Insider One.

The engine calls :class:`InsiderClient.deliver` with an :class:`Endpoint` and
lazily produced ``(row_ids, items)`` chunks; each request's final outcome
arrives as a :class:`BatchResult`, and the call returns :class:`DeliveryStats`.

Modules: ``endpoints`` (endpoints, rate families, limiters), ``batching``
(packing items into bodies), ``responses`` (reading Insider's answers),
``retrying`` (tenacity policy), ``results`` (outcome types), ``client`` (the
asyncio driver).
"""

from __future__ import annotations

from reverse_etl.insider.http.client import InsiderClient
from reverse_etl.insider.http.endpoints import Endpoint, RateFamily
from reverse_etl.insider.http.results import BatchResult, DeliveryStats

__all__ = ["BatchResult", "DeliveryStats", "Endpoint", "InsiderClient", "RateFamily"]

"""A sample audit's reads: one ``POST /api/user/v1/profile`` per sampled user.

Reads share the tenant's profile-read quota (``rate_limits.profile_read_per_minute``,
1,000 units a minute by default; a read without events costs 1), so they go
through the same leaky-bucket limiter as the delivery client's read-backs, over
``concurrency`` keep-alive connections, retried on 429/5xx/no answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from reverse_etl.errors import AuthenticationError, DeliveryError
from reverse_etl.insider.config import InsiderDestinationConfig
from reverse_etl.insider.http.endpoints import Endpoint, limiter_for
from reverse_etl.insider.http.responses import profile_read_answer
from reverse_etl.insider.http.retrying import RetryableError, make_retrying
from reverse_etl.insider.http.useragent import USER_AGENT
from reverse_etl.redact import redact

from .compare import Compared


@dataclass
class ProfileReads:
    """What the reads cost."""

    reads: int = 0
    """Profile reads answered (200 or 404)."""
    quota_units: float = 0.0
    seconds: float = 0.0


def read_body(key: Compared, kv: str, fields: Sequence[Compared]) -> dict[str, Any]:
    """The profile read for the user whose key identifier is ``kv``."""
    f = key.field
    identifiers: dict[str, Any] = {"custom": {f.insider_name: kv}} if f.custom else {f.insider_name: kv}
    names = sorted({c.read_name for c in fields if c.read_name is not None})
    return {"identifiers": identifiers, "attributes": names}


def read_profiles(config: InsiderDestinationConfig, key: Compared, kvs: Sequence[str],
                  fields: Sequence[Compared], *, wait_base: float = 0.5) -> tuple[list[dict[str, Any]], ProfileReads]:
    """Read each user's attributes back: one row per ``kv`` (``kv``, ``found``, field name → JSON text)."""
    answers, stats = read_answers(config, [(kv, read_body(key, kv, fields), 1.0) for kv in kvs],
                                  wait_base=wait_base)
    rows: list[dict[str, Any]] = []
    for kv, answer in answers:
        row: dict[str, Any] = {"kv": kv, "found": answer is not None}
        held = (answer or {}).get("attributes") or {}
        for c in fields:
            if c.read_name is None:
                continue
            # The key is what the user was looked up by (a read answers attributes).
            value = (kv if c is key else held.get(c.read_name)) if answer is not None else None
            row[c.field.name] = None if value is None else orjson.dumps(value).decode()
        rows.append(row)
    return rows, stats


def read_answers(config: InsiderDestinationConfig, bodies: Sequence[tuple[str, dict[str, Any], float]], *,
                 wait_base: float = 0.5) -> tuple[list[tuple[str, dict[str, Any] | None]], ProfileReads]:
    """Send each (kv, profile-read body, quota cost): (kv, answer or None for no such user) each."""
    return asyncio.run(_read_all(config, bodies, wait_base))


async def _read_all(config: InsiderDestinationConfig, bodies: Sequence[tuple[str, dict[str, Any], float]],
                    wait_base: float) -> tuple[list[tuple[str, dict[str, Any] | None]], ProfileReads]:
    stats = ProfileReads()
    started = time.perf_counter()
    limiter = limiter_for(config.rate_limits.profile_read_per_minute)
    endpoint = Endpoint.PROFILE_READ
    headers = {"X-PARTNER-NAME": config.partner, "X-REQUEST-TOKEN": config.api_key.get_secret_value(),
               "Content-Type": "application/json", "User-Agent": USER_AGENT}
    rows: list[tuple[str, dict[str, Any] | None]] = []
    queue: asyncio.Queue[tuple[str, dict[str, Any], float]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)

    async def read_one(client: httpx.AsyncClient, kv: str, body: dict[str, Any], cost: float) -> dict[str, Any] | None:
        payload = orjson.dumps(body)

        async def attempt() -> dict[str, Any] | None:
            await limiter.acquire(min(cost, limiter.max_rate))
            try:
                response = await client.request(endpoint.method, endpoint.path, content=payload)
            except httpx.TransportError as error:
                raise RetryableError(f"profile read: {type(error).__name__}") from None
            if response.status_code in (401, 403):
                raise AuthenticationError(redact(f"Insider refused the profile read (HTTP {response.status_code}): "
                                                 f"check destination.partner and api_key"))
            return profile_read_answer(
                response, lambda line: DeliveryError(redact(line.replace("profile read", f"profile read for {kv!r}", 1))))

        retrying = make_retrying(max_retries=config.max_retries, wait_base=wait_base, wait_max=30.0,
                                 retry_after_cap=120.0)
        try:
            answer: dict[str, Any] | None = await retrying(attempt)
        except RetryableError as error:
            raise DeliveryError(f"profile read for {kv!r} failed after {config.max_retries} retries: "
                                f"{error}") from None
        stats.reads += 1
        stats.quota_units += cost
        return answer

    async def lane() -> None:
        async with httpx.AsyncClient(base_url=config.api_base_url, headers=headers,
                                     timeout=httpx.Timeout(config.timeout_seconds)) as client:
            while not queue.empty():
                kv, body, cost = queue.get_nowait()
                rows.append((kv, await read_one(client, kv, body, cost)))

    lanes = max(1, min(config.concurrency, len(bodies)))
    try:
        async with asyncio.TaskGroup() as tasks:
            for _ in range(lanes):
                tasks.create_task(lane())
    except BaseExceptionGroup as group:  # the first lane's error, as one line
        raise group.exceptions[0] from None
    stats.seconds = round(time.perf_counter() - started, 3)
    return rows, stats


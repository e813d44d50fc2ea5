"""Shared helpers for the delivery tests: configs, encoded users, result collection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from reverse_etl.insider.config import InsiderDestinationConfig
from reverse_etl.insider.http import BatchResult, InsiderClient

PARTNER = "acme"
API_KEY = "test-key"


def config(url: str, **overrides: Any) -> InsiderDestinationConfig:
    """A destination config pointing at ``url`` (the emulator or a fake)."""
    values: dict[str, Any] = {
        "partner": PARTNER,
        "api_key": API_KEY,
        "api_base_url": url,
        "concurrency": 4,
        "timeout_seconds": 10.0,
        "max_retries": 4,
    }
    values.update(overrides)
    return InsiderDestinationConfig(**values)


def client(url: str, **overrides: Any) -> InsiderClient:
    """A client with tiny backoff waits, so retries cost milliseconds."""
    return InsiderClient(config(url, **overrides), wait_base=0.001, wait_max=0.01)


def user(i: int) -> str:
    """The encoded upsert object of test user ``u<i>``."""
    return orjson.dumps(
        {"identifiers": {"uuid": f"u{i}"}, "attributes": {"name": f"name {i}", "custom": {"n": i}}}
    ).decode()


def user_chunks(
    n: int, size: int = 100_000, start: int = 0
) -> Iterator[tuple[list[int], list[str]]]:
    """``(row_ids, items)`` chunks for users ``u<start>`` .. ``u<start+n-1>``; row id = i."""
    for first in range(start, start + n, size):
        ids = list(range(first, min(start + n, first + size)))
        yield ids, [user(i) for i in ids]


@dataclass
class Collector:
    """An ``on_result`` callback that keeps every final outcome."""

    results: list[BatchResult] = field(default_factory=list)

    def __call__(self, result: BatchResult) -> None:
        self.results.append(result)

    @property
    def acked(self) -> list[int]:
        return [r for res in self.results for r in res.acked]

    @property
    def rejected(self) -> dict[int, str]:
        return {k: v for res in self.results for k, v in res.rejected.items()}

    @property
    def failed(self) -> dict[int, str]:
        return {k: v for res in self.results for k, v in res.failed.items()}

    @property
    def notes(self) -> dict[int, str]:
        return {k: v for res in self.results for k, v in res.notes.items()}


def uuids_in_ok_requests(log: list[dict[str, Any]]) -> list[str]:
    """uuid of every user in every request the emulator answered 200, repeats kept."""
    out: list[str] = []
    for entry in log:
        body = entry.get("body")
        if entry.get("status") == 200 and isinstance(body, dict):
            out.extend(u["identifiers"]["uuid"] for u in body.get("users", []))
    return out
